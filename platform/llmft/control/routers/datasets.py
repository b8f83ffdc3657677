"""Dataset snapshots: register a location under the tenant's inbox, list and show versions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from llmft.control.auth import Principal
from llmft.control.deps import control, require
from llmft.control.paths import check_location
from llmft.control.schemas import DatasetCreate, page
from llmft.errors import SpecError

router = APIRouter(tags=["datasets"])


def snapshot_object(rec) -> dict:  # noqa: ANN001
    return {"object": "dataset.snapshot", "ref": rec.ref, **rec.as_dict()}


@router.post("/tenants/{tenant}/datasets", status_code=201)
def register_dataset(tenant: str, body: DatasetCreate, request: Request, response: Response,
                     who: Principal = Depends(require("developer"))) -> dict:
    """Snapshot files under the tenant's inbox; the same bytes again return the existing version (200)."""
    from pydantic import ValidationError

    from llmft.config import DatasetSpec
    from llmft.config.base import format_validation_error

    ctl = control(request)
    source = check_location(tenant, body.source, "source")
    try:
        spec = DatasetSpec(**{**body.model_dump(), "tenant": tenant, "source": str(source)})
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, "dataset")) from None
    from llmft.data.snapshots import register

    record, summary = register(spec, ctl.store, who.actor)
    if not summary.get("created", True):
        response.status_code = 200
    return {**snapshot_object(record), "summary": summary}


@router.get("/tenants/{tenant}/datasets")
def list_datasets(tenant: str, request: Request, dataset: str | None = None,
                  limit: int = Query(20, ge=1, le=100), after: str | None = None,
                  who: Principal = Depends(require("viewer"))) -> dict:
    rows = [snapshot_object(r) for r in control(request).store.list_snapshots(tenant, dataset)]
    return page(rows, limit, after)


@router.get("/tenants/{tenant}/datasets/{ref}")
def get_dataset(tenant: str, ref: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict:
    """`name` (latest), `name:N` or a snapshot id."""
    return snapshot_object(control(request).store.get_snapshot(tenant, ref))
