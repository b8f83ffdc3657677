"""The stage libraries the routes call, found lazily; a stage not written yet answers 501 naming what is expected."""

from __future__ import annotations

import importlib
from typing import Any

from llmft.control.jobs import StageMissing


def _attr(module: str, name: str, stage: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise StageMissing(f"{stage} stage is not available: the API expects {module}.{name} ({exc})") from None


def model_registry(store: Any) -> Any:
    return _attr("llmft.registry", "ModelRegistry", "registry")(store=store)


def register_dataset(spec: Any, store: Any, actor: str) -> tuple[Any, dict]:
    return _attr("llmft.data.snapshots", "register", "data")(spec, store, actor)


def deployments(store: Any, registry: Any) -> Any:
    """Expected (not written yet; serving has RolloutManager + operations.rollout_manager, but no store-backed
    record of which tenant owns which deployment at which URLs): llmft.serving.rollout.DeploymentManager(store=,
    registry=) with
    deploy(spec, actor) -> dict, list(tenant) -> list[dict], status(tenant, name) -> dict,
    set_traffic(tenant, name, mode, percent, reason, actor) -> dict, rollback(tenant, name, reason, actor) -> dict;
    each raising NotFoundError for another tenant's deployment."""
    return _attr("llmft.serving.rollout", "DeploymentManager", "serving (deployments)")(store=store, registry=registry)
