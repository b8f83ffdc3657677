"""VllmEngine on vLLM's CPU build (no Ray): greedy output equals the PEFT engine's (fp32) over a batch
mixing three adapters of different ranks and the base; streaming, stop sequences, seeds, usage; a
tampered adapter is refused before vLLM sees it; guided JSON always parses and matches its schema.
One vLLM engine for the module (start-up ~25-60 s here)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from llmft.serving.engine.interface import GenerationRequest, RequestError, SamplingParams

pytestmark = pytest.mark.vllm

PROMPTS = ["Hello, how do I", "My invoice shows", "Reset the password for", "The order arrived"]
RANKS = (4, 8, 16)
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["intent", "urgent", "team"],
          "properties": {"intent": {"enum": ["refund", "reset", "other"]}, "urgent": {"type": "boolean"},
                         "team": {"type": "string", "pattern": "^[a-z]{1,8}$"}}}


@pytest.fixture(scope="module")
def ranked(tiny_base_dir, tmp_path_factory):
    """Three registry-style adapters (ranks 4, 8, 16) published with manifests: {rank: ResolvedAdapter}."""
    from llmft.demo.random_adapters import make_adapter
    from llmft.serving.engine.adapters import DirectoryAdapterSource

    root = tmp_path_factory.mktemp("vllm-adapters")
    source = DirectoryAdapterSource(root / "source")
    out = {}
    for i, r in enumerate(RANKS):
        src = make_adapter(tiny_base_dir, root / f"r{r}", seed=7 + i, r=r, scale=0.5)
        out[r] = source.publish("acme", f"rank{r}", "1", src, base_model=str(tiny_base_dir))
    return out


@pytest.fixture(scope="module")
def vllm_engine(tiny_base_dir):
    from llmft.serving.engine.vllm_engine import VllmEngine

    engine = VllmEngine(str(tiny_base_dir), max_adapters=4, max_loras=4, max_lora_rank=16, dtype="float32",
                        kv_cache_gib=1)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def peft_engine(tiny_base_dir):
    from llmft.serving.engine.peft_engine import PeftEngine

    return PeftEngine(str(tiny_base_dir), max_adapters=4)


def test_greedy_mixed_batch_equals_peft(vllm_engine, peft_engine, ranked):
    rows = [None, ranked[4], ranked[8], ranked[16]]
    batch = [GenerationRequest(p, rows[(i + j) % 4], SamplingParams(max_tokens=12))
             for i, p in enumerate(PROMPTS) for j in range(2)]
    got = vllm_engine.generate(batch)
    want = peft_engine.generate(batch)
    assert not any(isinstance(r, Exception) for r in got + want), (got, want)
    for g, w, req in zip(got, want, batch):
        assert (g.text, g.finish_reason) == (w.text, w.finish_reason), req
        assert (g.prompt_tokens, g.adapter_version, g.base_revision) == (w.prompt_tokens, w.adapter_version,
                                                                         w.base_revision)
        assert g.completion_tokens == w.completion_tokens
    texts = {r.adapter_id: r.text for r, req in zip(got, batch) if req.prompt == PROMPTS[0]}
    assert len(set(texts.values())) == len(texts)  # adapters change the output
    assert set(vllm_engine.cache.resident()) == {a.adapter_id for a in ranked.values()}


def test_stream_stop_seed_and_usage(vllm_engine, ranked):
    adapter = ranked[8]
    full = vllm_engine.generate([GenerationRequest(PROMPTS[1], adapter, SamplingParams(max_tokens=16))])[0]
    events = list(vllm_engine.stream(GenerationRequest(PROMPTS[1], adapter, SamplingParams(max_tokens=16))))
    assert "".join(e["text"] for e in events[:-1]) == full.text and len(events) > 2
    final = events[-1]
    assert final["usage"]["completion_tokens"] == full.completion_tokens and final["adapter_version"] == "1"
    assert final["usage"]["total_tokens"] == full.prompt_tokens + full.completion_tokens
    stop = full.text.strip()[3:6]  # a string from the middle of the greedy answer
    cut = vllm_engine.generate([GenerationRequest(PROMPTS[1], adapter, SamplingParams(max_tokens=16, stop=(stop,)))])[0]
    assert cut.finish_reason == "stop" and stop not in cut.text and full.text.startswith(cut.text)
    streamed = list(vllm_engine.stream(GenerationRequest(PROMPTS[1], adapter, SamplingParams(max_tokens=16,
                                                                                            stop=(stop,)))))
    assert "".join(e.get("text", "") for e in streamed) == cut.text and streamed[-1]["finish_reason"] == "stop"
    sampled = SamplingParams(max_tokens=12, temperature=1.0, seed=3)
    a, b = vllm_engine.generate([GenerationRequest(PROMPTS[2], None, sampled)] * 2)
    c = vllm_engine.generate([GenerationRequest(PROMPTS[2], None, replace(sampled, seed=4))])[0]
    assert a.text == b.text and a.text != c.text
    too_long = vllm_engine.generate([GenerationRequest("hi " * 400, None, SamplingParams(max_tokens=8))])[0]
    assert isinstance(too_long, RequestError) and too_long.code == "context_length_exceeded"


def test_tampered_adapter_refused_before_vllm_sees_it(vllm_engine, ranked, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(ranked[4].path, copy)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    bad = replace(ranked[4], version="9", path=str(copy))
    loaded_before = vllm_engine._call(vllm_engine.llm.list_loras())
    out = vllm_engine.generate([GenerationRequest("Hello", bad, SamplingParams(max_tokens=4)),
                                GenerationRequest("Hello", None, SamplingParams(max_tokens=4))])
    assert isinstance(out[0], RequestError) and out[0].code == "adapter_unavailable" and "sha256" in str(out[0])
    assert not isinstance(out[1], Exception)
    assert bad.adapter_id not in vllm_engine.cache.resident()
    assert vllm_engine._call(vllm_engine.llm.list_loras()) == loaded_before


@pytest.mark.parametrize("engine_name", ["vllm", "peft"])
def test_guided_json_parses_and_matches_schema(engine_name, vllm_engine, peft_engine, ranked):
    import jsonschema

    engine = vllm_engine if engine_name == "vllm" else peft_engine
    schema = json.dumps(SCHEMA, sort_keys=True)
    reqs = [GenerationRequest(p, adapter, SamplingParams(max_tokens=128, temperature=1.0, seed=s, json_schema=schema))
            for s, (p, adapter) in enumerate([(p, a) for p in PROMPTS for a in (None, ranked[16])])]
    reqs.append(GenerationRequest(messages=({"role": "user", "content": "Classify: refund please"},),
                                  params=SamplingParams(max_tokens=128, json_schema=schema)))
    results = engine.generate(reqs)
    for res in results:
        assert not isinstance(res, Exception), res
        assert res.finish_reason == "stop", res.text
        jsonschema.validate(json.loads(res.text), SCHEMA)
    obj = engine.generate([GenerationRequest(PROMPTS[0], None, SamplingParams(max_tokens=24,
                                                                              json_schema='{"type": "object"}'))])[0]
    assert obj.text.startswith("{")
    if obj.finish_reason == "stop":
        assert isinstance(json.loads(obj.text), dict)
