"""Registered model versions: register, list, show, lineage, verify, aliases and promotion."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request

from llmft.control.auth import Principal
from llmft.control.deps import control, require, require_role
from llmft.control.paths import check_location
from llmft.control.schemas import ModelRegister, Promote, page
from llmft.errors import NotFoundError, SpecError

router = APIRouter(tags=["models"])


@router.post("/tenants/{tenant}/models", status_code=201)
def register_model(tenant: str, body: ModelRegister, request: Request,
                   who: Principal = Depends(require("developer"))) -> dict:
    """A new immutable version from a training job's output (or a directory under the tenant's storage)."""
    ctl = control(request)
    if (body.source is None) == (body.source_job is None):
        raise SpecError("give exactly one of source or source_job")
    if body.source_job is not None:  # the job's recorded checkpoint, re-verified; lineage from the job record
        from llmft.jobs.release import register_job_output

        rec = register_job_output(ctl.registry, tenant, body.name, actor=who.actor, job_ref=body.source_job,
                                  description=body.description)
    else:
        source = str(check_location(tenant, body.source, "source"))
        if not Path(source).is_dir():
            raise NotFoundError(f"source: {body.source!r} is not a directory under the tenant's inbox")
        rec = ctl.registry.register(tenant, body.name, source, actor=who.actor, description=body.description)
    return ctl.registry.show(tenant, rec.ref)


@router.get("/tenants/{tenant}/models")
def list_models(tenant: str, request: Request, name: str | None = None, limit: int = Query(50, ge=1, le=500),
                after: str | None = None, who: Principal = Depends(require("viewer"))) -> dict:
    return page(control(request).registry.list_versions(tenant, name), limit, after, key=lambda v: v["ref"])


@router.get("/tenants/{tenant}/models/{name}")
def get_model(tenant: str, name: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict:
    reg = control(request).registry
    versions = reg.list_versions(tenant, name)
    if not versions:
        raise NotFoundError(f"model {name!r} not found for tenant {tenant!r}")
    return {"object": "model", "name": name, "versions": versions,
            "aliases": reg.store.current_aliases(tenant, name)}


@router.get("/tenants/{tenant}/models/{name}/versions/{version}")
def get_version(tenant: str, name: str, version: str, request: Request,
                who: Principal = Depends(require("viewer"))) -> dict:
    return control(request).registry.show(tenant, f"{name}:{version}")


@router.get("/tenants/{tenant}/models/{name}/versions/{version}/lineage")
def lineage(tenant: str, name: str, version: str, request: Request,
            who: Principal = Depends(require("viewer"))) -> dict:
    return control(request).registry.lineage(tenant, f"{name}:{version}")


@router.get("/tenants/{tenant}/models/{name}/versions/{version}/verify")
def verify(tenant: str, name: str, version: str, request: Request,
           who: Principal = Depends(require("viewer"))) -> dict:
    """Re-hash every file against the registered manifest; `changed` names tampered files."""
    return control(request).registry.verify_report(tenant, f"{name}:{version}")


@router.get("/tenants/{tenant}/models/{name}/aliases")
def aliases(tenant: str, name: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict:
    reg = control(request).registry
    history = [m.as_dict() for m in reg.alias_history(tenant, name)]
    return {"name": name, "current": reg.store.current_aliases(tenant, name), "history": history}


@router.post("/tenants/{tenant}/models/{name}/promote")
def promote(tenant: str, name: str, body: Promote, request: Request,
            who: Principal = Depends(require("developer"))) -> dict:
    """Move an alias; `production` needs an approver, staging/production a passed evaluation, all intact files."""
    if body.alias == "production":
        require_role(request, who, "approver")
    reg = control(request).registry
    ref = f"{name}:{body.version}"
    reg.verify(tenant, ref)  # a tampered version is never promoted (409 naming the file)
    move = reg.promote(tenant, ref, body.alias, reason=body.reason, actor=who.actor)
    return {"object": "model.alias_move", **move.as_dict()}
