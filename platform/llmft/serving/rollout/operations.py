"""What `llmft serve` and `llmft deploy` do: build the Serve config from a DeploymentSpec, apply it,
and drive rollouts with an audited, short-lived admin key."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from typing import Any, Iterator
from urllib.parse import urlparse

from llmft.errors import LlmftError
from llmft.serving.app_config import AppArgs, serve_config
from llmft.serving.gateway.traffic import TrafficPolicy


def app_args(spec: Any) -> AppArgs:
    return AppArgs(base_model=spec.base_model, adapter_source=spec.adapter_source,
                   max_adapters=spec.max_adapters_per_replica, max_batch_size=spec.max_batch_size,
                   replicas=spec.replicas, replica_cpus=spec.replica_cpus, replica_gpus=spec.replica_gpus,
                   route_by_adapter=spec.route_by_adapter)


def split_model(model: str) -> tuple[str, str | None, str | None]:
    """`name`, `name@alias` or `name:version` -> (name, alias, version)."""
    name, at, alias = model.partition("@")
    if at:
        return name, alias, None
    name, colon, version = model.partition(":")
    return name, None, version if colon else None


def resolve_spec_version(spec: Any) -> tuple[str, str]:
    """(`tenant/name`, concrete version) of the adapter the spec deploys."""
    from llmft.serving.app_config import make_source

    name, alias, version = split_model(spec.model)
    adapter = make_source(spec.adapter_source).resolve(spec.tenant, name, version=version, alias=alias)
    return f"{spec.tenant}/{name}", adapter.version


def up_config(spec: Any, existing: dict | None = None) -> dict:
    """The full Serve config after `serve up`: this app added or replaced, other apps kept as deployed."""
    key, version = resolve_spec_version(spec)
    traffic = TrafficPolicy(live=spec.traffic.live,
                            colours={c: {"pins": {key: version}, "ready": c == spec.traffic.live}
                                     for c in ("blue", "green")}).to_dict()
    config = serve_config(spec.name, app_args(spec), traffic, host=spec.http.host, port=spec.http.port)
    if existing:
        kept = [a for a in existing.get("applications", []) if a["name"] != spec.name]
        config["applications"] = kept + config["applications"]
    return config


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=1):
            return True
    except OSError:
        return False


def ensure_cluster(dashboard_url: str) -> bool:
    """Start a local Ray head for a local dashboard URL that nothing answers; True if one was started."""
    if _reachable(dashboard_url):
        return False
    parsed = urlparse(dashboard_url)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise LlmftError(f"Ray dashboard {dashboard_url} is not reachable (is the cluster up?)")
    subprocess.run(["ray", "start", "--head", "--dashboard-host", "127.0.0.1",
                    "--dashboard-port", str(parsed.port or 8265)], check=True, capture_output=True)
    return True


def serve_up(spec: Any) -> dict:
    from llmft.serving.rollout.serve_backend import deployed_config, serve_client

    started = ensure_cluster(spec.dashboard_url)
    existing = None if started else deployed_config(spec.dashboard_url)
    config = up_config(spec, existing)
    serve_client(spec.dashboard_url).deploy_applications(config)
    return {"app": spec.name, "base_url": f"http://{spec.http.host}:{spec.http.port}", "started_cluster": started,
            "applications": [a["name"] for a in config["applications"]]}


def serve_down(name: str, dashboard_url: str) -> dict:
    from llmft.serving.rollout.serve_backend import deployed_config, serve_client

    config = deployed_config(dashboard_url)
    kept = [a for a in config["applications"] if a["name"] != name]
    if len(kept) == len(config["applications"]):
        raise LlmftError(f"no Serve application named {name!r} is deployed")
    client = serve_client(dashboard_url)
    if kept:
        client.deploy_applications({**config, "applications": kept})
    else:
        client.delete_applications()
    return {"removed": name, "remaining": [a["name"] for a in kept]}


def serve_status(dashboard_url: str) -> dict:
    from llmft.serving.rollout.serve_backend import serve_client

    details = serve_client(dashboard_url).get_serve_details()
    return {name: {"status": app.get("status"), "route_prefix": app.get("route_prefix"),
                   "deployments": {d: dep.get("status") for d, dep in (app.get("deployments") or {}).items()}}
            for name, app in (details.get("applications") or {}).items()}


@contextlib.contextmanager
def rollout_manager(*, tenant: str, app: str, base_url: str, dashboard_url: str, actor: str) -> Iterator[Any]:
    """A RolloutManager over the running app; it acts with an admin key minted now and revoked after."""
    from llmft.serving.rollout.manager import RolloutManager
    from llmft.serving.rollout.serve_backend import ServeBackend
    from llmft.store import Store

    store = Store()
    key, record = store.create_api_key(tenant, "admin", actor)
    try:
        backend = ServeBackend(base_url=base_url, dashboard_url=dashboard_url, app_name=app, api_key=key)

        def audit(action: str, payload: dict) -> None:
            store.audit.append(actor, tenant, action, f"deployment/{app}", payload)

        yield RolloutManager(backend, audit=audit)
    finally:
        store.revoke_api_key(record.id, actor)
