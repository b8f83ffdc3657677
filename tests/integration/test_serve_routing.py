"""Serve multiplexed routing by adapter id: with two replicas per colour and `route_by_adapter`, every
request for an adapter lands on the replica that already holds it (no second cold load elsewhere)."""

import socket
import time
from collections import defaultdict

import pytest

pytestmark = pytest.mark.integration

MODELS = ["support", "billing", "legal", "sales"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def routed(serving_adapters, tmp_path_factory):
    import ray
    from ray import serve

    from llmft.serving.app_config import AppArgs, serve_config
    from llmft.serving.deployments import wait_ready
    from llmft.serving.serve_backend import serve_client
    from llmft.store import Store

    home = tmp_path_factory.mktemp("routed-home")
    store = Store(f"sqlite:///{home / 'llmft.db'}")
    store.create_tenant("acme", "test")
    key = store.create_api_key("acme", "developer", "test")[0]
    dash, port = _free_port(), _free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_port=dash, log_to_driver=False)
    args = AppArgs(base_model=str(serving_adapters["base"]), base_name="tiny",
                   adapter_source=f"dir:{serving_adapters['root']}", db_url=store.url, max_adapters=4,
                   replicas=2, replica_cpus=0.25, route_by_adapter=True, shadow_log=str(home / "shadow.jsonl"))
    traffic = {"colours": {"blue": {"pins": {}, "ready": True}, "green": {"pins": {}}}}
    config = serve_config("llm", args, traffic, port=port)
    config["applications"][0]["deployments"][0]["ray_actor_options"] = {"num_cpus": 0.25}
    serve_client(f"http://127.0.0.1:{dash}").deploy_applications(config)
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(base_url, 240)
    yield {"base_url": base_url, "key": key}
    serve.shutdown()
    ray.shutdown()


def test_requests_follow_their_adapter(routed):
    from openai import OpenAI

    client = OpenAI(base_url=routed["base_url"] + "/v1", api_key=routed["key"], max_retries=0, timeout=60)
    replicas = defaultdict(list)
    for _ in range(4):
        for model in MODELS:
            raw = client.completions.with_raw_response.create(model=model, prompt="Hello", max_tokens=2,
                                                              temperature=0)
            assert raw.parse().model_extra["llmft"]["replica"] == raw.headers["x-llmft-replica"]
            replicas[model].append(raw.headers["x-llmft-replica"])
            time.sleep(0.3)  # replicas report what they hold to Serve's routers asynchronously
    for model, served_by in replicas.items():
        assert len(set(served_by[1:])) == 1, (model, served_by)  # after the first load, always the same replica
        assert served_by[0] == served_by[1], (model, served_by)
    stream = client.completions.create(model="support", prompt="Hello", max_tokens=2, temperature=0, stream=True)
    last = list(stream)[-1]
    assert last.model_extra["llmft"]["replica"] == replicas["support"][-1]
