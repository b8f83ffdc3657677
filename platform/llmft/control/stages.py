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
    """The store-backed DeploymentManager (deploy, list, status, set_traffic, rollback)."""
    return _attr("llmft.serving.deployments", "DeploymentManager", "serving (deployments)")(store=store, registry=registry)
