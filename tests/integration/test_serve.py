"""Serve end to end on a free port: the openai client, tenancy, streaming, a flip and a rollback under
load with 0 failed requests, and an automatic SLO rollback. One app for the module (~2-3 min)."""

import threading
import time
from contextlib import contextmanager

import pytest

from tests.serve_fixtures import serve_app

pytestmark = pytest.mark.integration


ENGINES = {"peft": {}, "vllm": {"engine": "vllm", "vllm": {"kv_cache_gib": 0.5, "max_num_seqs": 32}}}


@pytest.fixture(scope="module", params=["peft", pytest.param("vllm", marks=pytest.mark.vllm)])
def served(request, ray_cluster, serving_adapters, tmp_path_factory):
    """The app on each engine in turn (every test here runs on both): PEFT, then vLLM's AsyncLLM."""
    from llmft.serving.rollout.serve_backend import ServeBackend

    traffic = {"colours": {"blue": {"pins": {"acme/support": "1"}, "ready": True},
                           "green": {"pins": {"acme/support": "1"}, "ready": True}}}
    with serve_app(ray_cluster, serving_adapters, tmp_path_factory.mktemp("serve-home"), traffic,
                   tenants=("acme", "globex"),
                   max_adapters=4, replica_cpus=0.5, **ENGINES[request.param]) as app:
        backend = ServeBackend(base_url=app["base_url"], dashboard_url=app["dashboard_url"], app_name="llm",
                               api_key=app["keys"]["admin"])
        yield {**app, "backend": backend}


def _client(served, key="acme"):
    from openai import OpenAI

    return OpenAI(base_url=served["base_url"] + "/v1", api_key=served["keys"][key], max_retries=0, timeout=60)


def _resident(colour):
    from ray import serve

    return serve.get_deployment_handle(colour, app_name="llm").info.remote().result()["resident_adapters"]


def test_openai_client_unchanged(served):
    import openai

    client = _client(served)
    assert {m.id for m in client.models.list()} == {"tiny", "support", "billing", "legal", "sales", "hr"}
    raw = client.completions.with_raw_response.create(model="support", prompt="Hello, how do I", max_tokens=6,
                                                      temperature=0)
    done = raw.parse()
    assert done.choices[0].text and done.usage.completion_tokens <= 6
    assert raw.headers["x-llmft-adapter-version"] == "1" and raw.headers["x-llmft-colour"] == "blue"
    assert raw.headers["x-llmft-base-revision"] and done.model_extra["llmft"]["base_revision"]
    chat = client.chat.completions.create(model="billing:1", messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=5, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    pieces = [c.choices[0].text for c in client.completions.create(
        model="support", prompt="Hello, how do I", max_tokens=6, temperature=0, stream=True)]
    assert "".join(pieces) == done.choices[0].text
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="support", prompt="x", temperature=9)
    assert err.value.body["code"] == "invalid_value"


def test_structured_output_through_the_openai_client(served):
    """response_format json_schema (chat) and json_object (completions): the answer parses and fits."""
    import json

    import jsonschema

    schema = {"type": "object", "additionalProperties": False, "required": ["intent", "urgent"],
              "properties": {"intent": {"enum": ["refund", "reset", "other"]}, "urgent": {"type": "boolean"}}}
    client = _client(served)
    for seed in range(3):
        chat = client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": "Classify: my card was charged twice"}],
            max_tokens=64, temperature=1.0, seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "ticket", "schema": schema}})
        assert chat.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(chat.choices[0].message.content), schema)
    obj = client.completions.create(model="support", prompt="Hello", max_tokens=8, temperature=0,
                                    extra_body={"response_format": {"type": "json_object"}})
    assert obj.choices[0].text.startswith("{")


def test_cross_tenant_refused_without_loading(served):
    import openai

    before = {c: _resident(c) for c in ("blue", "green")}
    client = _client(served, "globex")
    with pytest.raises(openai.PermissionDeniedError):
        client.completions.create(model="acme/support", prompt="Hello", max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="billing", prompt="Hello", max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        _client(served).with_options(api_key="llmft_x_bad").models.list()
    assert {c: _resident(c) for c in ("blue", "green")} == before
    assert not any(a.startswith("globex/") or "billing" in a for a in before["green"])


def test_metrics_reach_the_prometheus_endpoint(served):
    """The gateway's ray.util.metrics land on the node's Prometheus endpoint with their tags."""
    import httpx

    _client(served).completions.create(model="support", prompt="Hello", max_tokens=3, temperature=0)
    deadline, text = time.monotonic() + 90, ""
    while time.monotonic() < deadline:  # Ray exports on an interval (a few seconds)
        text = httpx.get(served["metrics_url"], timeout=10).text
        if "ray_llmft_request_latency_ms_bucket" in text and "ray_llmft_tokens_total" in text:
            break
        time.sleep(2)
    requests = [line for line in text.splitlines() if line.startswith("ray_llmft_requests_total{")]
    assert requests, "no llmft request counter on " + served["metrics_url"]
    served_line = next(line for line in requests if 'adapter_version="1"' in line and 'model="support"' in line)
    for tag in ('colour="blue"', 'tenant="acme"', "base_revision=", 'adapter_version="1"'):
        assert tag in served_line, (tag, served_line)
    assert float(served_line.rsplit(" ", 1)[1]) >= 1
    assert any(line.startswith("ray_llmft_tokens_total{") and 'kind="completion"' in line for line in text.splitlines())
    assert any(line.startswith("ray_llmft_request_latency_ms_bucket{") for line in text.splitlines())


def _load(served, stop, results, rate=8.0, attempts=1):
    """Steady completions; with attempts > 1 the client retries 5xx and connection errors with backoff,
    as the openai client does. Each result: {"t", "first": outcome, "final": outcome}, an outcome being
    (status or 0, colour, adapter version, body or error text)."""
    import httpx

    with httpx.Client(base_url=served["base_url"], timeout=30,
                      headers={"Authorization": f"Bearer {served['keys']['acme']}"}) as http:
        while not stop.is_set():
            t0, first, final = time.perf_counter(), None, None
            for attempt in range(attempts):
                try:
                    r = http.post("/v1/completions", json={"model": "support", "prompt": "Hello", "max_tokens": 4,
                                                           "temperature": 0})
                    outcome = (r.status_code, r.headers.get("x-llmft-colour"),
                               r.headers.get("x-llmft-adapter-version"), r.text[:200])
                except httpx.HTTPError as exc:
                    outcome = (0, None, None, f"{type(exc).__name__}: {exc}")
                first = first or outcome
                final = outcome
                if 0 < outcome[0] < 500:
                    break
                time.sleep(0.5 * 2 ** attempt)
            results.append({"t": time.time(), "first": first, "final": final})
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))


@contextmanager
def _under_load(served, rate=8.0, attempts=1, clients=2):
    """Two client threads sending `_load` traffic for the duration of the block; yields their results."""
    stop, results = threading.Event(), []
    workers = [threading.Thread(target=_load, args=(served, stop, results, rate, attempts)) for _ in range(clients)]
    for w in workers:
        w.start()
    try:
        yield results
    finally:
        stop.set()
        for w in workers:
            w.join()


def test_flip_and_rollback_under_load_lose_nothing(served):
    from llmft.serving.rollout.manager import RolloutManager
    from llmft.serving.rollout.slo import Slo

    audit = []
    mgr = RolloutManager(served["backend"], audit=lambda a, p: audit.append((a, p)))
    with _under_load(served) as results:
        time.sleep(2)
        report = mgr.deploy("acme/support", "2", model="support", smoke_prompts=["Hello"], slo=Slo(),
                            shadow_s=2.0)
        flipped_at = time.time()
        time.sleep(2)
        rollback_s = mgr.rollback("test rollback")
        rolled_at = time.time()
        time.sleep(2)
    failed = [r for r in results if r["final"][0] != 200]
    assert len(results) > 30 and not failed, failed[:5]
    after_flip = [r["final"] for r in results if flipped_at + 1 < r["t"] < rolled_at - 0.5]
    assert after_flip and all(r[1] == "green" and r[2] == "2" for r in after_flip)
    after_rb = [r["final"] for r in results if r["t"] > rolled_at + 1]
    assert after_rb and all(r[1] == "blue" and r[2] == "1" for r in after_rb)
    assert report.flipped and report.flip_s < 5 and rollback_s < 5
    assert [a for a, _ in audit][-2:] == ["deploy.flip", "deploy.rollback"]
    assert "deploy.shadow" in [a for a, _ in audit]
    shadow = (served["home"] / "shadow.jsonl").read_text().splitlines()
    assert shadow, "shadow comparisons were logged"


def test_slo_watcher_rolls_back_automatically(served):
    from llmft.serving.rollout.manager import RolloutManager
    from llmft.serving.rollout.slo import Slo, SloWatcher

    mgr = RolloutManager(served["backend"])
    policy = mgr.policy()
    if policy.live == "blue":
        mgr.flip("make green live", force=True)
    client = _client(served)
    for _ in range(4):
        client.completions.create(model="support", prompt="Hello", max_tokens=2)
    watcher = SloWatcher(mgr, Slo(p95_latency_ms_max=0.001, min_requests=3, window_s=30), "support",
                         interval_s=0.2)
    result = watcher.watch(10)
    assert result["rolled_back"] and "p95 latency" in result["reason"] and result["from"] == "green"
    assert mgr.policy().live == "blue"
    assert mgr.policy().history[-1]["reason"].startswith("SLO breach on green")


def _gateway_replicas():
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "serve" and "SERVE_REPLICA" in a["name"] and "Gateway" in a["name"])


def test_gateway_restarted_during_a_flip(served):
    """Catalogue: the gateway replica is killed while a flip is being applied. The flip still lands
    (Serve restarts the gateway from the declared config, which already holds the new policy), the
    policy afterwards is exactly the flipped one (old or new, never a mix), no request is lost to a
    retrying client, every answer is a consistent (colour, version) pair, and the audit chain holds."""
    import ray

    from llmft.serving.rollout.manager import RolloutManager

    store = served["store"]
    mgr = RolloutManager(served["backend"],
                         audit=lambda a, p: store.audit.append("operator", "acme", a, "deployment/llm", p))
    before = mgr.policy()
    expected = mgr.policy()
    expected.flip("flip during a gateway restart")
    pairs = {c: str(before.colours[c]["pins"]["acme/support"]) for c in ("blue", "green")}
    old_replicas = _gateway_replicas()
    assert len(old_replicas) == 1

    flip_out = {}

    def do_flip():
        try:
            flip_out["seconds"] = mgr.flip("flip during a gateway restart")
        except Exception as exc:  # surfaced by the assertion below
            flip_out["error"] = exc

    with _under_load(served, rate=6.0, attempts=6) as results:
        time.sleep(1.5)
        flipper = threading.Thread(target=do_flip)
        flipper.start()
        time.sleep(0.1)  # the declarative deploy is on its way to the controller
        killed_at = time.time()
        ray.kill(ray.get_actor(old_replicas[0], namespace="serve"), no_restart=True)
        flipper.join(120)
        recovered_at = time.time()
        time.sleep(3)
    assert not flipper.is_alive() and "error" not in flip_out, flip_out

    new_replicas = _gateway_replicas()
    assert len(new_replicas) == 1 and new_replicas != old_replicas  # Serve really started a new gateway
    after = mgr.policy()
    assert after.to_dict() | {"history": []} == expected.to_dict() | {"history": []}
    assert after.live != before.live and after.generation == before.generation + 1
    lost = [r for r in results if r["final"][0] != 200]
    assert len(results) > 20 and not lost, lost[:3]
    for r in results:  # every answer names one colour and that colour's version: never a mixed policy
        status, colour, version, _ = r["final"]
        assert version == pairs[colour], r
    late = [r for r in results if r["t"] > recovered_at + 1]
    assert late and all(r["final"][1] == after.live for r in late)
    failed_first = [r for r in results if r["first"][0] != 200]
    # what did fail on a first attempt did so around the restart, as a 5xx or a dropped connection
    assert all(r["first"][0] == 0 or r["first"][0] >= 500 for r in failed_first)
    assert all(killed_at - 1 < r["t"] < recovered_at + 35 for r in failed_first)
    verdict = store.audit.verify()
    assert verdict.ok, verdict.as_dict()
    flips = [e for e in store.audit.records("acme") if e["action"] == "deploy.flip"]
    assert flips and flips[-1]["payload"]["generation"] == after.generation
    print(f"\ngateway restart during flip: {len(results)} requests, {len(failed_first)} failed a first attempt, "
          f"0 lost; flip effective {flip_out['seconds']:.2f}s; {[r['first'] for r in failed_first][:3]}")
