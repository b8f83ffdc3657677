"""The OpenAI-compatible gateway without Ray: auth, tenancy, bad input, labels, traffic modes."""

import json

import pytest

from llmft.serving.engine.adapters import DirectoryAdapterSource
from llmft.serving.engine.peft_engine import PeftEngine
from llmft.serving.engine.replica import LocalColour, ReplicaCore
from llmft.serving.gateway.core import GatewayCore
from llmft.serving.gateway.http import create_app


@pytest.fixture(scope="module")
def engines(serving_adapters):
    base = str(serving_adapters["base"])
    return {c: PeftEngine(base, max_adapters=4, base_name="tiny") for c in ("blue", "green")}


@pytest.fixture
def gw(engines, serving_adapters, store, tmp_path):
    from fastapi.testclient import TestClient

    for e in engines.values():
        for aid in e.cache.resident():
            e.unload_adapter(aid)
    store.create_tenant("acme", "t")
    store.create_tenant("globex", "t")
    keys = {"acme": store.create_api_key("acme", "developer", "t")[0],
            "acme_admin": store.create_api_key("acme", "admin", "t")[0],
            "globex": store.create_api_key("globex", "developer", "t")[0]}
    core = GatewayCore(store=store, source=DirectoryAdapterSource(serving_adapters["root"]),
                       backends={c: LocalColour(ReplicaCore(e, c)) for c, e in engines.items()},
                       bases=["tiny"], shadow_log=tmp_path / "shadow.jsonl")
    core.configure({"traffic": {"colours": {"blue": {"pins": {"acme/support": "1"}, "ready": True},
                                            "green": {"pins": {"acme/support": "2"}, "ready": True}}}})
    client = TestClient(create_app(core))
    client.__enter__()  # one event loop for the whole test: shadow tasks outlive their request

    def post(path, body, key="acme", headers=None):
        h = {"Authorization": f"Bearer {keys[key]}"} if key else {}
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return client.post(path, content=data, headers={**h, **(headers or {})})

    yield {"core": core, "client": client, "post": post, "keys": keys, "engines": engines, "tmp": tmp_path}
    client.__exit__(None, None, None)


def _loaded(engines):
    return sum(e.cache.stats.misses for e in engines.values())


def test_completion_labels_and_pins(gw):
    r = gw["post"]("/v1/completions", {"model": "support", "prompt": "Hello", "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["usage"]["completion_tokens"] <= 4
    assert body["llmft"]["colour"] == "blue" and body["llmft"]["adapter_version"] == "1"
    assert r.headers["x-llmft-colour"] == "blue" and r.headers["x-llmft-adapter-version"] == "1"
    assert r.headers["x-llmft-base-revision"] == gw["engines"]["blue"].base_revision
    r = gw["post"]("/v1/completions", {"model": "support:2", "prompt": "Hello", "max_tokens": 4, "temperature": 0})
    assert r.json()["llmft"]["adapter_version"] == "2"
    r = gw["post"]("/v1/completions", {"model": "support@production", "prompt": "Hello", "max_tokens": 2})
    assert r.json()["llmft"]["adapter_version"] == "1"
    r = gw["post"]("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
                                            "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"
    assert r.json()["llmft"]["adapter"] is None


def test_models_lists_only_the_tenants_adapters(gw):
    ids = {m["id"] for m in gw["client"].get("/v1/models", headers={
        "Authorization": f"Bearer {gw['keys']['globex']}"}).json()["data"]}
    assert ids == {"tiny", "support", "ops"}


@pytest.mark.parametrize("body,key,status,code", [
    ({"model": "globex/ops", "prompt": "x"}, "acme", 403, "model_not_permitted"),
    ({"model": "ops", "prompt": "x"}, "acme", 404, "model_not_found"),
    ({"model": "__init__", "prompt": "x"}, "acme", 404, "model_not_found"),
    ({"model": "support:9", "prompt": "x"}, "acme", 404, "model_not_found"),
    ({"model": "support", "prompt": "x", "temperature": 5}, "acme", 400, "invalid_value"),
    ({"model": "support", "prompt": "x", "top_p": 0}, "acme", 400, "invalid_value"),
    ({"model": "support", "prompt": "x", "max_tokens": 0}, "acme", 400, "invalid_value"),
    ({"model": "support", "prompt": "x", "n": 3}, "acme", 400, "invalid_value"),
    ({"model": "support", "prompt": "x"}, None, 401, "missing_api_key"),
    (b"{not json", "acme", 400, "invalid_json"),
    ([1, 2], "acme", 400, "invalid_json"),
    ({"model": "support", "prompt": "hello " * 600, "max_tokens": 4}, "acme", 400, "context_length_exceeded"),
])
def test_bad_requests_are_4xx_and_load_nothing(gw, body, key, status, code):
    before = _loaded(gw["engines"])
    r = gw["post"]("/v1/completions", body, key=key)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "type" in err
    assert _loaded(gw["engines"]) == before
    ok = gw["post"]("/v1/completions", {"model": "tiny", "prompt": "Hello", "max_tokens": 2})
    assert ok.status_code == 200, ok.text  # the replica is unharmed


def test_bad_key_and_forced_colour(gw):
    r = gw["client"].get("/v1/models", headers={"Authorization": "Bearer llmft_nope_x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    body = {"model": "support", "prompt": "Hello", "max_tokens": 2}
    assert gw["post"]("/v1/completions", body, headers={"x-llmft-colour": "green"}).status_code == 403
    r = gw["post"]("/v1/completions", body, key="acme_admin", headers={"x-llmft-colour": "green"})
    assert r.json()["llmft"]["colour"] == "green" and r.json()["llmft"]["adapter_version"] == "2"
    assert gw["client"].get("/nope").json()["error"]["code"] == "not_found"


def test_streaming_sse(gw):
    body = {"model": "support", "prompt": "Hello, how do I", "max_tokens": 6, "temperature": 0}
    plain = gw["post"]("/v1/completions", body).json()["choices"][0]["text"]
    r = gw["post"]("/v1/completions", {**body, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == plain
    assert chunks[-1]["llmft"]["adapter_version"] == "1" and chunks[-1]["choices"][0]["finish_reason"]


def test_canary_is_sticky_and_shadow_is_logged(gw):
    import time

    core = gw["core"]
    core.policy.start_canary(50)
    colours = {}
    for user in [f"u{i}" for i in range(12)]:
        seen = {gw["post"]("/v1/completions", {"model": "support", "prompt": "Hi", "max_tokens": 1, "user": user}
                           ).json()["llmft"]["colour"] for _ in range(2)}
        assert len(seen) == 1  # sticky
        colours[user] = seen.pop()
    assert set(colours.values()) == {"blue", "green"}
    core.policy.end_trial()
    core.policy.start_shadow()
    r = gw["post"]("/v1/completions", {"model": "support", "prompt": "Hello", "max_tokens": 3, "temperature": 0})
    assert r.json()["llmft"]["colour"] == "blue"
    deadline = time.time() + 20
    log = gw["tmp"] / "shadow.jsonl"
    while time.time() < deadline and not log.exists():
        time.sleep(0.1)
    entry = json.loads(log.read_text().splitlines()[0])
    assert entry["primary"]["colour"] == "blue" and entry["shadow"]["colour"] == "green"
    assert entry["shadow"]["adapter_version"] == "2" and entry["shadow"]["latency_ms"] > 0


def test_a_colour_receives_one_typed_request(gw):
    """The gateway resolves the adapter once and hands the colour one `GenerationRequest` carrying it
    (with its recorded digest); chat messages travel as they are and the engine renders them."""
    from llmft.serving.engine.interface import GenerationRequest

    blue, seen = gw["core"].backends["blue"], []

    class Recording:
        async def generate(self, request):
            seen.append(request)
            return await blue.generate(request)

    gw["core"].backends["blue"] = Recording()
    r = gw["post"]("/v1/chat/completions", {"model": "support", "messages": [{"role": "user", "content": "Hi"}],
                                            "max_tokens": 3, "temperature": 0})
    assert r.status_code == 200, r.text
    (request,) = seen
    assert isinstance(request, GenerationRequest) and not request.stream and request.prompt is None
    assert request.adapter.adapter_id == "acme/support:1" and request.adapter.digest
    assert request.messages == ({"role": "user", "content": "Hi"},)
    assert r.json()["llmft"]["adapter"] == request.adapter_id


def test_one_adapter_lru_per_replica(gw):
    """Resident adapters are bounded by the engine's cache, the replica's only LRU."""
    engine = gw["engines"]["blue"]
    for model in ("support", "billing", "legal", "sales", "hr"):
        r = gw["post"]("/v1/completions", {"model": model, "prompt": "Hello", "max_tokens": 1})
        assert r.status_code == 200, r.text
    assert len(engine.cache.resident()) == engine.cache.capacity == 4
    assert engine.cache.stats.evictions >= 1 and "acme/support:1" not in engine.cache.resident()
