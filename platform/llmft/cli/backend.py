"""CLI parity: each action goes to the control plane when `LLMFT_API_URL` is set, else to the library.

Both paths return the same shapes (the API's JSON), so a command prints the same thing either
way. With the API, `LLMFT_API_KEY` authenticates and the key's tenant scoping and role apply;
the library path acts as `--actor` on the local store.
"""

from __future__ import annotations

import os
from typing import Any

from llmft.errors import NotFoundError


def remote() -> Any:
    """An ApiClient when LLMFT_API_URL is set, else None (library mode)."""
    if not os.environ.get("LLMFT_API_URL"):
        return None
    from llmft.control.client import ApiClient

    return ApiClient.from_env()


def _store() -> Any:
    from llmft.store import Store

    return Store()


def _registry() -> Any:
    from llmft.registry import ModelRegistry

    return ModelRegistry()


# -- tenants and keys ---------------------------------------------------------------------------------
def tenants_create(name: str, epsilon_budget: float | None, actor: str) -> dict:
    if (api := remote()) is not None:
        return api.post("/tenants", {"name": name, "epsilon_budget": epsilon_budget})
    return {"tenant": _store().create_tenant(name, actor, epsilon_budget).as_dict()}


def tenants_list() -> list[dict]:
    if (api := remote()) is not None:
        return api.get("/tenants")["data"]
    return [t.as_dict() for t in _store().list_tenants()]


def tenants_show(name: str) -> dict:
    if (api := remote()) is not None:
        return api.get(f"/tenants/{name}")
    store = _store()
    return {**store.get_tenant(name).as_dict(), "privacy": store.privacy_summary(name).as_dict()}


def keys_create(tenant: str, role: str, actor: str) -> dict:
    if (api := remote()) is not None:
        return api.post(f"/tenants/{tenant}/keys", {"role": role})
    plaintext, rec = _store().create_api_key(tenant, role, actor)
    return {**rec.as_dict(), "key": plaintext}


def keys_list(tenant: str) -> list[dict]:
    if (api := remote()) is not None:
        return api.all(f"/tenants/{tenant}/keys")
    return [k.as_dict() for k in _store().list_api_keys(tenant)]


def keys_revoke(key_id: str, actor: str, tenant: str | None = None) -> dict:
    if (api := remote()) is not None:
        from llmft.errors import SpecError

        tenant = tenant or os.environ.get("LLMFT_TENANT")
        if not tenant:
            raise SpecError("--tenant (or LLMFT_TENANT) is needed to revoke a key through the API")
        return api.post(f"/tenants/{tenant}/keys/{key_id}/revoke")
    return _store().revoke_api_key(key_id, actor).as_dict()


# -- datasets -----------------------------------------------------------------------------------------
def data_list(tenant: str, dataset: str | None = None) -> list[dict]:
    if (api := remote()) is not None:
        return api.all(f"/tenants/{tenant}/datasets", dataset=dataset)
    from llmft.control.routers.datasets import snapshot_object

    return [snapshot_object(s) for s in _store().list_snapshots(tenant, dataset)]


def data_show(tenant: str, ref: str) -> dict:
    if (api := remote()) is not None:
        return api.get(f"/tenants/{tenant}/datasets/{ref}")
    from llmft.control.routers.datasets import snapshot_object

    return snapshot_object(_store().get_snapshot(tenant, ref))


# -- jobs (kind: curation | training | sweep | evaluation) -------------------------------------------
def _job(store: Any, tenant: str, kind: str, ref: str) -> Any:
    try:
        job = store.get_job(tenant, ref)
    except NotFoundError:
        job = store.find_job(tenant, kind, ref)
    if job is None or job.kind != kind:
        raise NotFoundError(f"{kind} job {ref!r} not found for tenant {tenant!r}")
    return job


def job_status(tenant: str, kind: str, ref: str) -> dict:
    if (api := remote()) is not None:
        return api.get(api.job_path(tenant, kind, ref))
    from llmft.control.schemas import job_object

    return job_object(_job(_store(), tenant, kind, ref))


def job_list(tenant: str, kind: str) -> list[dict]:
    if (api := remote()) is not None:
        return api.all(api.job_path(tenant, kind))
    from llmft.control.schemas import job_object

    return [job_object(j) for j in _store().list_jobs(tenant, kind)]


def job_events(tenant: str, kind: str, ref: str) -> list[dict]:
    if (api := remote()) is not None:
        return api.all(f"{api.job_path(tenant, kind, ref)}/events")
    from llmft.control.schemas import event_object

    store = _store()
    return [event_object(e) for e in store.list_job_events(_job(store, tenant, kind, ref).id)]


def job_checkpoints(tenant: str, kind: str, ref: str) -> list[dict]:
    if (api := remote()) is not None:
        return api.all(f"{api.job_path(tenant, kind, ref)}/checkpoints")
    from llmft.control.schemas import checkpoint_object

    store = _store()
    return [checkpoint_object(c) for c in store.list_checkpoints(_job(store, tenant, kind, ref).id)]


def job_cancel(tenant: str, kind: str, ref: str, actor: str) -> dict:
    if (api := remote()) is not None:
        return api.post(f"{api.job_path(tenant, kind, ref)}/cancel")
    from llmft.control.schemas import job_object
    from llmft.jobs import cancel_job
    from llmft.jobs.runners import default_runner

    store = _store()
    return job_object(cancel_job(store, default_runner(store), _job(store, tenant, kind, ref), actor))


# -- models -------------------------------------------------------------------------------------------
def _api_version(api: Any, tenant: str, ref: str) -> tuple[str, str]:
    """(name, version) for `name`, `name:N`, `name:semver` or `name@alias` through the API."""
    name, at, alias = ref.partition("@")
    if at:
        current = api.get(f"/tenants/{tenant}/models/{name}")["aliases"]
        if alias not in current:
            raise NotFoundError(f"{ref}: model {name!r} has no {alias!r} version")
        return name, str(current[alias])
    name, colon, version = ref.partition(":")
    if not colon:
        version = str(api.get(f"/tenants/{tenant}/models/{name}")["versions"][-1]["version"])
    return name, version


def models_list(tenant: str, name: str | None = None) -> list[dict]:
    if (api := remote()) is not None:
        return api.get(f"/tenants/{tenant}/models", name=name, limit=500)["data"]
    return _registry().list_versions(tenant, name)


def models_show(tenant: str, ref: str) -> dict:
    if (api := remote()) is not None:
        name, version = _api_version(api, tenant, ref)
        return api.get(f"/tenants/{tenant}/models/{name}/versions/{version}")
    return _registry().show(tenant, ref)


def models_lineage(tenant: str, ref: str) -> dict:
    if (api := remote()) is not None:
        name, version = _api_version(api, tenant, ref)
        return api.get(f"/tenants/{tenant}/models/{name}/versions/{version}/lineage")
    return _registry().lineage(tenant, ref)


def models_promote(tenant: str, ref: str, alias: str, reason: str, actor: str) -> dict:
    if (api := remote()) is not None:
        name, version = _api_version(api, tenant, ref)
        return api.post(f"/tenants/{tenant}/models/{name}/promote",
                        {"version": version, "alias": alias, "reason": reason})
    reg = _registry()
    reg.verify(tenant, ref)
    return {"object": "model.alias_move", **reg.promote(tenant, ref, alias, reason=reason, actor=actor).as_dict()}


# -- deployments --------------------------------------------------------------------------------------
def _deployments() -> Any:
    from llmft.serving.rollout.deployment_manager import DeploymentManager

    return DeploymentManager(store=_store(), registry=_registry())


def deploy_status(tenant: str, name: str) -> dict:
    if (api := remote()) is not None:
        return api.get(f"/tenants/{tenant}/deployments/{name}")
    return _deployments().status(tenant, name)


def deploy_rollback(tenant: str, name: str, reason: str, actor: str) -> dict:
    if (api := remote()) is not None:
        return api.post(f"/tenants/{tenant}/deployments/{name}/rollback", {"reason": reason})
    return _deployments().rollback(tenant, name, reason, actor)
