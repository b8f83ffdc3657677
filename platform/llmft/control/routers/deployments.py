"""Deployments: deploy a version (blue/green), change traffic mode, roll back; served by the serving stage."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from llmft.control.auth import Principal
from llmft.control.deps import control, require
from llmft.control.paths import check_spec_locations
from llmft.control.schemas import JobCreate, Rollback, TrafficChange, page
from llmft.errors import SpecError

router = APIRouter(tags=["deployments"])


def _manager(request: Request):  # noqa: ANN202
    from llmft.serving.rollout.deployment_manager import DeploymentManager

    ctl = control(request)
    return DeploymentManager(store=ctl.store, registry=ctl.registry)


@router.post("/tenants/{tenant}/deployments", status_code=201)
def deploy(tenant: str, body: JobCreate, request: Request, who: Principal = Depends(require("approver"))) -> dict:
    """Deploy `spec.model` to the standby colour, warm and smoke-test it (flip per `spec.traffic`)."""
    from llmft.config import DeploymentSpec, spec_from_dict

    data = dict(body.spec)
    if data.setdefault("tenant", tenant) != tenant:
        raise SpecError(f"spec.tenant: {data['tenant']!r} does not match the tenant in the path")
    check_spec_locations("deployment", tenant, data)
    spec = spec_from_dict(DeploymentSpec, data)
    return _manager(request).deploy(spec, who.actor)


@router.get("/tenants/{tenant}/deployments")
def list_deployments(tenant: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict:
    return page(_manager(request).list(tenant), 100, None, key=lambda d: d["name"])


@router.get("/tenants/{tenant}/deployments/{name}")
def get_deployment(tenant: str, name: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict:
    return _manager(request).status(tenant, name)


@router.post("/tenants/{tenant}/deployments/{name}/traffic")
def traffic(tenant: str, name: str, body: TrafficChange, request: Request,
            who: Principal = Depends(require("approver"))) -> dict:
    """Set the traffic mode: blue_green, canary (with canary_percent), shadow, or flip to the standby."""
    if body.mode == "canary" and body.canary_percent is None:
        raise SpecError("canary_percent: required for mode canary")
    return _manager(request).set_traffic(tenant, name, body.mode, body.canary_percent, body.reason, who.actor)


@router.post("/tenants/{tenant}/deployments/{name}/rollback")
def rollback(tenant: str, name: str, body: Rollback, request: Request,
             who: Principal = Depends(require("developer"))) -> dict:
    """Send all traffic back to the previous colour (kept hot): on-call developers may do this."""
    return _manager(request).rollback(tenant, name, body.reason, who.actor)
