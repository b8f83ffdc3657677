"""What the vLLM engine refuses at deploy time (no vLLM needed), the engine field of the spec, and the
OpenAI `response_format` mapped onto the engine's sampling parameters."""

from __future__ import annotations

import json

import pytest

from llmft.serving.engine.lora_support import vllm_refusal


def _adapter(tmp_path, name="a", **cfg):
    path = tmp_path / name
    path.mkdir()
    base = {"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"], "use_dora": False,
            "modules_to_save": None}
    (path / "adapter_config.json").write_text(json.dumps({**base, **cfg}))
    return path


@pytest.mark.parametrize("cfg, reason", [
    ({}, None),
    ({"use_dora": True}, "DoRA adapters are not supported by vLLM"),
    ({"r": 32}, "rank 32 exceeds max_lora_rank 16"),
    ({"rank_pattern": {"q_proj": 64}}, "rank 64 exceeds max_lora_rank 16"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save (lm_head) are not supported by vLLM"),
    ({"target_modules": ["q_proj", "embed_tokens"]}, "target modules embed_tokens have no vLLM LoRA kernel"),
    ({"peft_type": "IA3"}, "peft_type IA3 is not LoRA"),
])
def test_vllm_refusals_name_the_reason(tmp_path, cfg, reason):
    assert vllm_refusal(_adapter(tmp_path, **cfg), 16) == reason


def test_deploy_on_vllm_refuses_an_adapter_it_cannot_run(tmp_path):
    from llmft.config.deployment import DeploymentSpec
    from llmft.errors import SpecError
    from llmft.serving.engine.adapters import DirectoryAdapterSource
    from llmft.serving.rollout.operations import resolve_spec_version

    source = DirectoryAdapterSource(tmp_path / "src")
    source.publish("acme", "dora", "1", _adapter(tmp_path, "dora", use_dora=True))
    source.publish("acme", "plain", "1", _adapter(tmp_path, "plain"))
    spec = dict(name="llm", tenant="acme", base_model="tiny", adapter_source=f"dir:{source.root}")
    assert resolve_spec_version(DeploymentSpec(**spec, model="dora:1")) == ("acme/dora", "1")  # peft runs DoRA
    with pytest.raises(SpecError) as err:
        resolve_spec_version(DeploymentSpec(**spec, model="dora:1", engine="vllm"))
    assert str(err.value) == ("model dora:1: adapter acme/dora:1 cannot run on engine vllm: "
                              "DoRA adapters are not supported by vLLM")
    assert resolve_spec_version(DeploymentSpec(**spec, model="plain:1", engine="vllm")) == ("acme/plain", "1")
    with pytest.raises(Exception, match="max_lora_rank=12: vLLM accepts 1, 8, 16"):
        DeploymentSpec(**spec, model="plain:1", engine="vllm", vllm={"max_lora_rank": 12})


def test_engine_reaches_the_app_args():
    from llmft.config.deployment import DeploymentSpec
    from llmft.serving.rollout.operations import app_args

    spec = DeploymentSpec(name="llm", tenant="acme", base_model="tiny", model="support", engine="vllm",
                          vllm={"max_loras": 2, "max_lora_rank": 32, "dtype": "bfloat16"})
    args = app_args(spec)
    assert args.engine == "vllm" and args.vllm.max_lora_rank == 32 and args.vllm.dtype == "bfloat16"
    assert app_args(DeploymentSpec(name="llm", tenant="acme", base_model="tiny", model="support")).engine == "peft"


def test_response_format_maps_to_a_schema():
    from llmft.serving.gateway.protocol import ApiError, ChatRequest, CompletionRequest, parse

    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = parse(ChatRequest, {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 9,
                               "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}})
    params = chat.sampling()
    assert json.loads(params.json_schema) == schema and params.max_tokens == 9
    assert params.group_key() != parse(ChatRequest, {"model": "m", "messages": [{"role": "user", "content": "x"}]}
                                       ).sampling().group_key()
    obj = parse(CompletionRequest, {"model": "m", "prompt": "x", "response_format": {"type": "json_object"}})
    assert json.loads(obj.sampling().json_schema) == {"type": "object"}
    assert parse(CompletionRequest, {"model": "m", "prompt": "x", "response_format": {"type": "text"}}
                 ).sampling().json_schema is None
    for bad in ({"type": "xml"}, {"type": "json_schema", "json_schema": {"name": "t"}}):
        with pytest.raises(ApiError) as err:
            parse(CompletionRequest, {"model": "m", "prompt": "x", "response_format": bad})
        assert err.value.status == 400 and err.value.param == "response_format"
