"""PeftEngine: mixed-adapter batches equal single requests, LRU bounds, hash checks, stops, streaming."""

import shutil

import pytest

from llmft.errors import IntegrityError
from llmft.serving.engine.interface import GenerationRequest, RequestError, SamplingParams
from llmft.serving.engine.peft_engine import PeftEngine

GREEDY = SamplingParams(max_tokens=8)


@pytest.fixture(scope="module")
def engine(serving_adapters):
    return PeftEngine(str(serving_adapters["base"]), max_adapters=8)


def _ads(serving_adapters, *ids):
    return [serving_adapters["adapters"][i] for i in ids]


def test_mixed_batch_equals_single_requests(engine, serving_adapters):
    a, b, c = _ads(serving_adapters, "acme/support:1", "acme/billing:1", "globex/ops:1")
    prompts = ["Hello, how do I", "My printer is broken and", "Q: how do I reset my password", "Thanks for"]
    reqs = [GenerationRequest(prompts[0], a, GREEDY), GenerationRequest(prompts[1], None, GREEDY),
            GenerationRequest(prompts[2], b, SamplingParams(max_tokens=5)), GenerationRequest(prompts[3], c, GREEDY),
            GenerationRequest(prompts[0], None, GREEDY)]
    mixed = engine.generate(reqs)
    single = [engine.generate([r])[0] for r in reqs]
    assert [m.text for m in mixed] == [s.text for s in single]
    assert [m.completion_tokens for m in mixed] == [s.completion_tokens for s in single]
    assert mixed[2].completion_tokens <= 5
    # adapters change outputs: the same prompts under adapter a and under the base differ
    probe = [GenerationRequest(p, ad, GREEDY) for p in prompts for ad in (a, None)]
    texts = [r.text for r in engine.generate(probe)]
    assert any(texts[i] != texts[i + 1] for i in range(0, len(texts), 2))
    assert mixed[0].adapter_version == "1" and mixed[1].adapter_id is None
    assert mixed[0].base_revision == engine.base_revision


def test_lru_evicts_least_recently_used(serving_adapters):
    eng = PeftEngine(str(serving_adapters["base"]), max_adapters=2)
    a, b, c = _ads(serving_adapters, "acme/support:1", "acme/legal:1", "acme/sales:1")
    ref = eng.generate([GenerationRequest("Hello", a, GREEDY)])[0].text
    eng.generate([GenerationRequest("Hello", b, GREEDY)])
    eng.generate([GenerationRequest("Hello", a, GREEDY)])  # a is now most recent
    eng.generate([GenerationRequest("Hello", c, GREEDY)])  # evicts b
    assert eng.cache.resident() == [a.adapter_id, c.adapter_id]
    assert eng.cache.stats.evictions == 1 and eng.cache.stats.hits == 1
    assert b.peft_name not in eng.peft.peft_config
    # a batch needing 3 adapters with capacity 2 is split, still correct
    out = eng.generate([GenerationRequest("Hello", x, GREEDY) for x in (a, b, c)])
    assert out[0].text == ref and all(not isinstance(o, Exception) for o in out)
    assert len(eng.cache.resident()) == 2
    # evicting everything then generating still works (PEFT keeps a stale active name otherwise)
    for aid in eng.cache.resident():
        assert eng.unload_adapter(aid)
    assert eng.unload_adapter(a.adapter_id) is False  # idempotent
    assert eng.generate([GenerationRequest("Hello", a, GREEDY)])[0].text == ref


def test_tampered_adapter_is_refused(serving_adapters, tmp_path):
    from dataclasses import replace

    (a,) = _ads(serving_adapters, "acme/hr:1")
    copy = tmp_path / "hr"
    shutil.copytree(a.path, copy)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    eng = PeftEngine(str(serving_adapters["base"]), max_adapters=2)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        eng.load_adapter(replace(a, path=str(copy)))
    out = eng.generate([GenerationRequest("Hello", replace(a, path=str(copy)), GREEDY), GenerationRequest("Hello", None, GREEDY)])
    assert isinstance(out[0], RequestError) and out[0].code == "adapter_unavailable"
    assert not isinstance(out[1], Exception)
    assert eng.cache.resident() == []


def test_overlong_prompt_refused_before_loading(serving_adapters):
    eng = PeftEngine(str(serving_adapters["base"]), max_adapters=2)
    (a,) = _ads(serving_adapters, "acme/support:2")
    long_prompt = "hello " * eng.context_length
    (res,) = eng.generate([GenerationRequest(long_prompt, a, GREEDY)])
    assert isinstance(res, RequestError) and res.code == "context_length_exceeded"
    assert eng.cache.resident() == [] and eng.cache.stats.misses == 0


def test_stop_sequences_and_sampling(engine, serving_adapters):
    (a,) = _ads(serving_adapters, "acme/support:1")
    full = engine.generate([GenerationRequest("Hello, how do I", a, SamplingParams(max_tokens=12))])[0]
    assert full.finish_reason == "length" and full.completion_tokens == 12
    stop = next(ch for ch in full.text[2:] if ch.strip())
    cut = engine.generate([GenerationRequest("Hello, how do I", a, SamplingParams(max_tokens=12, stop=(stop,)))])[0]
    assert cut.text == full.text[: full.text.index(stop)] and cut.finish_reason == "stop"
    sp = SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=7)
    s1 = engine.generate([GenerationRequest("Hello", a, sp)])[0].text
    s2 = engine.generate([GenerationRequest("Hello", a, sp)])[0].text
    assert s1 == s2  # seeded sampling is reproducible


def test_stream_equals_generate(engine, serving_adapters):
    (a,) = _ads(serving_adapters, "globex/support:1")
    req = GenerationRequest("My printer is broken and", a, SamplingParams(max_tokens=10))
    expected = engine.generate([req])[0]
    events = list(engine.stream(req))
    assert "".join(e.get("text", "") for e in events[:-1]) == expected.text
    assert events[-1]["finish_reason"] == expected.finish_reason
    assert events[-1]["usage"]["completion_tokens"] == expected.completion_tokens
    assert events[-1]["adapter_version"] == "1"
