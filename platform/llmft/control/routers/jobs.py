"""Curation, training, sweep and evaluation jobs: submit, list, show, events, checkpoints, cancel."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from llmft.control.auth import Principal
from llmft.control.deps import control, require
from llmft.control.paths import check_spec_locations
from llmft.control.schemas import JobCreate, checkpoint_object, event_object, job_object, page
from llmft.errors import NotFoundError, SpecError
from llmft.jobs import cancel_job, kind as job_kind, open_job
from llmft.store import TERMINAL

router = APIRouter(tags=["jobs"])

# route segment -> job kind (llmft.jobs.KINDS knows each kind's spec type, preflight and run)
SEGMENTS = {"curation-jobs": "curation", "training-jobs": "training", "sweeps": "sweep", "evaluations": "evaluation"}


def _spec(kind: str, tenant: str, body: JobCreate) -> Any:
    from llmft import config

    data = copy.deepcopy(body.spec)
    for node in (data.get("training") if kind == "sweep" else data,):
        if isinstance(node, dict):
            if node.setdefault("tenant", tenant) != tenant:
                raise SpecError(f"spec.tenant: {node['tenant']!r} does not match the tenant in the path")
    if data.setdefault("kind", kind) != kind:
        raise SpecError(f"spec.kind: expected {kind!r}, got {data['kind']!r}")
    check_spec_locations(kind, tenant, data)
    return config.spec_from_dict(job_kind(kind).spec_type, data, origin="api")  # never `module:callable`


def _name(kind: str, spec: Any, body: JobCreate) -> str:
    if body.name:
        if getattr(spec, "name", body.name) != body.name:
            raise SpecError(f"name: {body.name!r} differs from spec.name {spec.name!r}")
        return body.name
    if getattr(spec, "name", None):
        return spec.name
    stem = getattr(spec, "output", None) or str(getattr(spec, "model", kind)).replace("@", "-").replace(":", "-")
    return f"{stem[:40]}-{secrets.token_hex(3)}".lower()


def find(ctl: Any, tenant: str, kind: str, ref: str) -> Any:
    """A job of this tenant and kind by id or by name; anything else is 404."""
    try:
        job = ctl.store.get_job(tenant, ref)
    except NotFoundError:
        job = ctl.store.find_job(tenant, kind, ref)
    if job is None or job.kind != kind:
        raise NotFoundError(f"{kind} job {ref!r} not found for tenant {tenant!r}")
    return ctl.runner.sync(job)


def _routes(segment: str, kind: str) -> None:
    def submit(tenant: str, body: JobCreate, request: Request, who: Principal = Depends(require("developer"))) -> dict:
        ctl = control(request)
        spec = _spec(kind, tenant, body)
        ctl.runner.check(kind)
        run = open_job(kind, spec, ctl.store, who.actor, name=_name(kind, spec, body),
                       preflight=request.app.state.preflight)  # refused -> nothing created
        return job_object(ctl.runner.submit(run.job, who.actor))

    def list_(tenant: str, request: Request, status: str | None = None, limit: int = Query(20, ge=1, le=100),
              after: str | None = None, who: Principal = Depends(require("viewer"))) -> dict:
        ctl = control(request)
        jobs = [ctl.runner.sync(j) if j.status not in TERMINAL else j for j in ctl.store.list_jobs(tenant, kind)]
        rows = [job_object(j) for j in jobs if status is None or j.status == status]
        return page(rows, limit, after)

    def get(tenant: str, job: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict:
        return job_object(find(control(request), tenant, kind, job))

    def events(tenant: str, job: str, request: Request, limit: int = Query(100, ge=1, le=1000),
               after: str | None = None, who: Principal = Depends(require("viewer"))) -> dict:
        ctl = control(request)
        rec = find(ctl, tenant, kind, job)
        return page([event_object(e) for e in ctl.store.list_job_events(rec.id)], limit, after,
                    key=lambda e: e["id"])

    def checkpoints(tenant: str, job: str, request: Request, limit: int = Query(100, ge=1, le=1000),
                    after: str | None = None, who: Principal = Depends(require("viewer"))) -> dict:
        ctl = control(request)
        rec = find(ctl, tenant, kind, job)
        return page([checkpoint_object(c) for c in ctl.store.list_checkpoints(rec.id)], limit, after)

    def cancel(tenant: str, job: str, request: Request, who: Principal = Depends(require("developer"))) -> dict:
        ctl = control(request)
        return job_object(cancel_job(ctl.store, ctl.runner, find(ctl, tenant, kind, job), who.actor))

    base = f"/tenants/{{tenant}}/{segment}"
    tag = [segment]
    op = segment.replace("-", "_")
    router.add_api_route(base, submit, methods=["POST"], status_code=201, name=f"{op}_submit", tags=tag,
                         summary=f"Submit a {kind} job")
    router.add_api_route(base, list_, methods=["GET"], name=f"{op}_list", tags=tag, summary=f"List {kind} jobs")
    router.add_api_route(f"{base}/{{job}}", get, methods=["GET"], name=f"{op}_get", tags=tag,
                         summary=f"Show a {kind} job (by id or name)")
    router.add_api_route(f"{base}/{{job}}/events", events, methods=["GET"], name=f"{op}_events", tags=tag)
    router.add_api_route(f"{base}/{{job}}/checkpoints", checkpoints, methods=["GET"], name=f"{op}_checkpoints",
                         tags=tag)
    router.add_api_route(f"{base}/{{job}}/cancel", cancel, methods=["POST"], name=f"{op}_cancel", tags=tag)


for _segment, _kind in SEGMENTS.items():
    _routes(_segment, _kind)
