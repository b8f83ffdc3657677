"""The local OpenAI-compatible endpoint and the batched client, on the tiny base (real HTTP, real model)."""

from __future__ import annotations

import pytest

from llmft.evaluation.client import EndpointClient, EndpointError, run_sync

from tests.http_server import http_server


@pytest.fixture(scope="module")
def endpoint(tiny_base_dir, tiny_adapters):
    from llmft.serving.endpoint import LocalEndpoint

    with LocalEndpoint(tiny_base_dir, {"a0": tiny_adapters["dirs"][0]}, max_batch=16) as ep:
        yield ep


PROMPTS = [f"How do I reset my password on device {i}?" for i in range(12)]


def test_base_and_adapter_through_http_batched_and_greedy(endpoint):
    import httpx

    base = EndpointClient(endpoint.url, "base", concurrency=12)
    adapter = EndpointClient(endpoint.url, "a0", concurrency=12)

    async def both():
        import asyncio

        return await asyncio.gather(base.generate(PROMPTS, max_tokens=8), adapter.generate(PROMPTS, max_tokens=8))

    before = len(endpoint.batch_sizes())
    b, a = run_sync(both())
    assert b.failed == 0 and a.failed == 0 and len(b.outputs) == len(PROMPTS)
    assert max(endpoint.batch_sizes()[before:]) > 1  # concurrent requests were batched (mixed adapters)
    assert b.outputs != a.outputs  # the adapter changes the answers
    again = run_sync(base.generate(PROMPTS[:3], max_tokens=8))
    assert again.outputs == b.outputs[:3]  # greedy: same answer alone or in a mixed batch
    assert b.served[0]["base_revision"] and a.served[0]["adapter"] == "local/a0:1"
    assert b.prompts_per_s > 0 and b.completion_tokens > 0
    raw = run_sync(base.generate(["The backup encryption key is"], max_tokens=4, api="completions"))
    assert raw.failed == 0
    models = httpx.get(f"{endpoint.url}/models").json()
    assert [m["id"] for m in models["data"]] == ["base", "a0"]


def test_unknown_model_is_a_404_not_retried(endpoint):
    client = EndpointClient(endpoint.url, "nope", retries=3)
    with pytest.raises(EndpointError, match="failed 1 of 1 requests; first error: HTTP 404"):
        run_sync(client.generate(["hi"], max_tokens=2))


def test_client_retries_5xx_then_succeeds():
    """A real flaky server: the first two calls answer 503, later ones 200."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app, calls = FastAPI(), {"n": 0}

    @app.post("/v1/chat/completions")
    def chat() -> JSONResponse:
        calls["n"] += 1
        if calls["n"] <= 2:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        return JSONResponse({"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}})

    with http_server(app, lifespan="off") as url:
        run = run_sync(EndpointClient(url, "m", concurrency=1, retries=3).generate(["q"], max_tokens=2))
        assert run.outputs == ["ok"] and run.retries == 2 and calls["n"] == 3
        calls["n"] = -10  # now it fails more often than the client retries
        with pytest.raises(EndpointError, match="HTTP 503"):
            run_sync(EndpointClient(url, "m", retries=1).generate(["q"], max_tokens=2))


def test_llm_judge_through_an_openai_compatible_endpoint(endpoint):
    """The judge path end to end with the `openai` client; the tiny model's replies are not A/B, so ties are noted."""
    from llmft.evaluation.judges import Comparison, LlmJudge, summarize

    judge = LlmJudge(endpoint.url, "base", max_tokens=3)
    pairs = [Comparison(str(i), "Capital of France?", "Paris.", "Paris.", "London.") for i in range(2)]
    verdicts = judge.judge(pairs)
    assert len(verdicts) == 2 and all(v.outcome in ("win", "tie", "loss") for v in verdicts)
    assert all(v.note for v in verdicts)
    assert summarize(verdicts)["n"] == 2
