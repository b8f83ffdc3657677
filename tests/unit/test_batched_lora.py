"""BatchedLora: the one-pass multi-adapter path computes what PEFT's per-adapter path computes.

Adapters here differ in rank and in target modules on purpose: the concatenated blocks must
line up with each row's own adapter, and a layer an adapter does not touch must add nothing.
"""

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from llmft.models.loading import load_base
from llmft.serving.engine.adapters import DirectoryAdapterSource
from llmft.serving.engine.batched_lora import BatchedLora
from llmft.demo.random_adapters import make_adapter
from llmft.serving.engine.interface import GenerationRequest, SamplingParams
from llmft.serving.engine.peft_engine import PeftEngine

PROMPTS = ["Hello, how do I", "My printer is broken and", "Q: how do I reset my password", "Thanks for", "Hi"]


@pytest.fixture(scope="module")
def uneven_adapters(tiny_base_dir, tmp_path_factory):
    """Three adapters: rank 4 on q/v/o, rank 2 on q/v, rank 8 on the MLP only."""
    root = tmp_path_factory.mktemp("uneven")
    shapes = {"r4": (4, ("q_proj", "v_proj", "o_proj")), "r2": (2, ("q_proj", "v_proj")),
              "mlp8": (8, ("gate_proj", "up_proj", "down_proj"))}
    return {name: make_adapter(tiny_base_dir, root / name, seed=i, r=r, target_modules=targets)
            for i, (name, (r, targets)) in enumerate(shapes.items())}


@pytest.fixture(scope="module")
def peft_model(tiny_base_dir, uneven_adapters):
    model, tokenizer, _ = load_base(tiny_base_dir, padding_side="left")
    names = list(uneven_adapters)
    peft = PeftModel.from_pretrained(model, uneven_adapters[names[0]], adapter_name=names[0])
    for name in names[1:]:
        peft.load_adapter(uneven_adapters[name], adapter_name=name)
    peft.eval()
    return peft, tokenizer


@pytest.mark.parametrize("rows", [
    ["r4", None, "r2", "mlp8", "r4"],  # mixed, with a base row
    ["r2", "r2", "r2", "r2", "r2"],  # one adapter (the unmasked path)
    ["mlp8", None, None, "mlp8", None],
])
def test_logits_match_peft_mixed_batch(peft_model, rows):
    peft, tokenizer = peft_model
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    batched = BatchedLora(peft)
    assert batched.supports({r for r in rows if r})
    with torch.no_grad():
        reference = peft(**enc, adapter_names=[r or "__base__" for r in rows]).logits
        with batched.apply(rows):
            fast = peft(**enc).logits
        with peft.disable_adapter():
            base = peft(**enc).logits
    assert torch.allclose(fast, reference, atol=1e-4), (fast - reference).abs().max()
    for i, row in enumerate(rows):  # adapters really act, base rows really do not
        changed = not torch.allclose(reference[i], base[i], atol=1e-4)
        assert changed == (row is not None)
    # hooks are gone after the block: the model is back to its normal PEFT behaviour
    assert not any(m._forward_hooks for _, m in batched.layers())


def test_wrong_batch_size_is_refused(peft_model):
    peft, tokenizer = peft_model
    enc = tokenizer(PROMPTS[:2], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad(), BatchedLora(peft).apply(["r4", "r2", None]), pytest.raises(RuntimeError, match="set up for 3 rows"):
        peft(**enc)


def test_dora_adapter_falls_back_to_peft(tiny_base_dir, serving_adapters, tmp_path):
    """A DoRA adapter cannot be expressed as A/B blocks: the engine must use PEFT's path and still agree."""
    model, _, _ = load_base(tiny_base_dir)
    dora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True))
    with torch.no_grad():
        for name, param in dora.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(7)))
    dora.save_pretrained(tmp_path / "dora")
    source = DirectoryAdapterSource(tmp_path / "source")
    dora_adapter = source.publish("acme", "dora", "1", tmp_path / "dora")
    plain = serving_adapters["adapters"]["acme/support:1"]
    reqs = [GenerationRequest(PROMPTS[0], dora_adapter, SamplingParams(max_tokens=6)),
            GenerationRequest(PROMPTS[1], plain, SamplingParams(max_tokens=6)),
            GenerationRequest(PROMPTS[2], None, SamplingParams(max_tokens=6))]
    engine = PeftEngine(str(tiny_base_dir))
    got = engine.generate(reqs)  # PEFT itself refuses DoRA in adapter_names: this batch must be split
    assert engine.batched is not None and not engine.batched.supports({dora_adapter.peft_name})
    assert engine.batched.supports({plain.peft_name})
    assert all(not isinstance(r, Exception) for r in got), got
    alone = [engine.generate([r])[0] for r in reqs]
    assert [r.text for r in got] == [r.text for r in alone]
    base = engine.generate([GenerationRequest(PROMPTS[0], None, SamplingParams(max_tokens=6))])[0]
    assert got[0].text != base.text and got[0].adapter_id == "acme/dora:1"
    streamed = "".join(e.get("text", "") for e in engine.stream(reqs[0]))
    assert streamed == got[0].text


def test_engine_batched_equals_peft_path_across_evictions(serving_adapters):
    """Loading and evicting adapters drops the cached blocks: outputs stay equal to PEFT's path."""
    ads = [serving_adapters["adapters"][i] for i in ("acme/support:1", "acme/legal:1", "acme/sales:1")]
    fast = PeftEngine(str(serving_adapters["base"]), max_adapters=2)
    slow = PeftEngine(str(serving_adapters["base"]), max_adapters=2, batched_lora=False)
    for pair in [(ads[0], ads[1]), (ads[1], ads[2]), (ads[2], ads[0]), (ads[0], None)]:
        reqs = [GenerationRequest(p, a, SamplingParams(max_tokens=6)) for p, a in zip(PROMPTS, pair * 2)]
        assert [r.text for r in fast.generate(reqs)] == [r.text for r in slow.generate(reqs)]
    assert fast.cache.stats.evictions >= 2
