"""What `llmft serve` and `llmft deploy` do: build the Serve config from a DeploymentSpec, apply it,
and drive rollouts with an audited, short-lived admin key."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from typing import Any, Iterator
from urllib.parse import urlparse

from llmft.errors import LlmftError, SpecError
from llmft.serving.app_config import AppArgs, serve_config
from llmft.serving.gateway.traffic import TrafficPolicy


def app_args(spec: Any) -> AppArgs:
    return AppArgs(base_model=spec.base_model, adapter_source=spec.adapter_source,
                   max_adapters=spec.max_adapters_per_replica, max_batch_size=spec.max_batch_size,
                   replicas=spec.replicas, replica_cpus=spec.replica_cpus, replica_gpus=spec.replica_gpus,
                   route_by_adapter=spec.route_by_adapter, engine=spec.engine, vllm=spec.vllm)


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
    if spec.engine == "vllm":  # refused here, at deploy time, not by a replica mid-flip
        from pathlib import Path

        from llmft.serving.engine.lora_support import vllm_refusal

        reason = Path(adapter.path).is_dir() and vllm_refusal(adapter.path, spec.vllm.max_lora_rank)
        if reason:
            raise SpecError(f"model {spec.model}: adapter {adapter.adapter_id} cannot run on engine vllm: {reason}")
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


def ensure_cluster(dashboard_url: str) -> None:
    """Refuse in one line when nothing answers at the cluster's dashboard (the CLI starts a local head first)."""
    if not _reachable(dashboard_url):
        raise LlmftError(f"no Ray cluster answers at {dashboard_url}: start one (`llmft cluster up`) or set the "
                         f"spec's dashboard_url")


def serve_up(spec: Any, dashboard_url: str | None = None, wait_s: float = 0.0) -> dict:
    """Deploy the app (other apps kept); with `wait_s`, wait until it is RUNNING or say why it cannot be."""
    from llmft.serving.rollout.serve_backend import deployed_config, serve_client

    dashboard = dashboard_url or spec.dashboard_url
    ensure_cluster(dashboard)
    config = up_config(spec, deployed_config(dashboard))
    serve_client(dashboard).deploy_applications(config)
    if wait_s > 0:
        wait_running(dashboard, spec.name, wait_s)
    return {"app": spec.name, "base_url": f"http://{spec.http.host}:{spec.http.port}", "dashboard_url": dashboard,
            "applications": [a["name"] for a in config["applications"]]}


_PENDING = re.compile(r"Resources required for each replica: (.*?), total resources available: (.*?)\. Use")


def wait_running(dashboard_url: str, name: str, timeout_s: float) -> None:
    """Poll Serve until app `name` is RUNNING; a deployment that cannot be placed or failed is named in one line."""
    from llmft.serving.rollout.serve_backend import serve_client

    client = serve_client(dashboard_url)
    deadline = time.monotonic() + timeout_s
    last = "not deployed yet"
    while time.monotonic() < deadline:
        app = (client.get_serve_details().get("applications") or {}).get(name) or {}
        status = app.get("status")
        if status == "RUNNING":
            return
        deployments = app.get("deployments") or {}
        for dep_name, dep in deployments.items():
            pending = _PENDING.search(dep.get("message") or "")
            if pending:
                raise LlmftError(f"Serve app {name!r}: deployment {dep_name!r} cannot be placed: each replica needs "
                                 f"{pending.group(1)}, the cluster has {pending.group(2)} free (lower replica_cpus, "
                                 f"or give the head more CPUs: `llmft cluster up --num-cpus N`)")
        if status == "DEPLOY_FAILED" or any(d.get("status") == "DEPLOY_FAILED" for d in deployments.values()):
            failed = {d: dep.get("message", "") for d, dep in deployments.items() if dep.get("status") != "HEALTHY"}
            detail = "; ".join(f"{d}: {_last_line(m)}" for d, m in failed.items()) or _last_line(app.get("message", ""))
            raise LlmftError(f"Serve app {name!r} failed to deploy: {detail}")
        last = f"{status}: " + ", ".join(f"{d} {dep.get('status')}" for d, dep in deployments.items())
        time.sleep(1.0)
    raise LlmftError(f"Serve app {name!r} not RUNNING after {timeout_s:.0f}s ({last})")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no message"


def serve_down(name: str, dashboard_url: str) -> dict:
    from llmft.serving.rollout.serve_backend import deployed_config, serve_client

    ensure_cluster(dashboard_url)
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

    ensure_cluster(dashboard_url)
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
