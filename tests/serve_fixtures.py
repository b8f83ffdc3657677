"""A real Serve app of the llmft serving application on free ports, for the Serve integration tests."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(cluster: dict, serving_adapters: dict, home: Path, traffic: dict, *,
              tenants: tuple[str, ...] = ("acme",), **app_args) -> Iterator[dict]:
    """The app deployed declaratively on the integration tier's Ray (`cluster`: its dashboard and metrics
    URLs); yields its URLs, the store and API keys: a developer key per tenant and an `admin` key of the
    first tenant. Serve is shut down after; the cluster stays for the next test."""
    from ray import serve

    from llmft.serving.app_config import AppArgs, serve_config
    from llmft.serving.rollout.deployment_manager import wait_ready
    from llmft.serving.rollout.operations import wait_running
    from llmft.serving.rollout.serve_backend import serve_client
    from llmft.store import Store

    store = Store(f"sqlite:///{home / 'llmft.db'}")
    for tenant in tenants:
        store.create_tenant(tenant, "test")
    keys = {t: store.create_api_key(t, "developer", "test")[0] for t in tenants}
    keys["admin"] = store.create_api_key(tenants[0], "admin", "test")[0]
    port = free_port()
    try:
        args = AppArgs(base_model=str(serving_adapters["base"]), base_name="tiny",
                       adapter_source=f"dir:{serving_adapters['root']}", db_url=store.url,
                       shadow_log=str(home / "shadow.jsonl"), **app_args)
        config = serve_config("llm", args, traffic, port=port)
        config["applications"][0]["deployments"][0]["ray_actor_options"] = {"num_cpus": 0.25}  # the gateway
        dashboard_url, base_url = cluster["dashboard_url"], f"http://127.0.0.1:{port}"
        serve_client(dashboard_url).deploy_applications(config)
        wait_ready(base_url, 240)  # raises, naming the URL, if the app is not healthy in time
        wait_running(dashboard_url, "llm", 600)  # every replica up (a vLLM replica starts its engine first)
        yield {"base_url": base_url, "dashboard_url": dashboard_url, "keys": keys, "store": store, "home": home,
               "metrics_url": cluster["metrics_url"]}
    finally:
        serve.shutdown()
