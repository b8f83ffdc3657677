"""Serve multiplexed routing by adapter id: with two replicas per colour and `route_by_adapter`, every
request for an adapter lands on the replica that already holds it (no second cold load elsewhere)."""

import time
from collections import defaultdict

import pytest

from tests.serve_fixtures import serve_app

pytestmark = pytest.mark.integration

MODELS = ["support", "billing", "legal", "sales"]


@pytest.fixture(scope="module")
def routed(ray_cluster, serving_adapters, tmp_path_factory):
    traffic = {"colours": {"blue": {"pins": {}, "ready": True}, "green": {"pins": {}}}}
    with serve_app(ray_cluster, serving_adapters, tmp_path_factory.mktemp("routed-home"), traffic, max_adapters=4,
                   replicas=2, replica_cpus=0.25, route_by_adapter=True) as app:
        yield app


def test_requests_follow_their_adapter(routed):
    from openai import OpenAI

    client = OpenAI(base_url=routed["base_url"] + "/v1", api_key=routed["keys"]["acme"], max_retries=0, timeout=60)
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
