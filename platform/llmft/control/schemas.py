"""Request and response bodies of the REST API (pydantic): unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmft.store import ROLES

NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # 1e309 / Infinity / "inf" / NaN refused


class TenantCreate(Body):
    name: str = Field(..., pattern=NAME, description="New tenant's name.")
    epsilon_budget: float | None = Field(None, ge=0, description="Differential-privacy budget (default 10).")


class KeyCreate(Body):
    role: Literal[ROLES] = Field(..., description="viewer | developer | approver | admin (at most the caller's).")  # type: ignore[valid-type]


class DatasetCreate(Body):
    name: str = Field(..., pattern=NAME, description="Dataset name within the tenant.")
    source: str = Field(..., min_length=1, max_length=4096, description="Location under the tenant's inbox.")
    format: str = Field("jsonl", description="Reader: jsonl, csv, parquet, text ...")
    classification: str = Field("confidential", description="public | internal | confidential | restricted.")
    license_class: str = Field("proprietary", description="License class recorded as provenance.")
    purpose: str = Field("fine-tuning", description="Purpose of use recorded as provenance.")
    text_field: str = Field("text", description="Column holding free text.")
    description: str = Field("", max_length=2000, description="Shown in listings.")


class JobCreate(Body):
    name: str | None = Field(None, pattern=NAME, description="Job name (default: the spec's name).")
    spec: dict[str, Any] = Field(..., description="The stage's spec (same schema as the YAML files).")


class ModelRegister(Body):
    name: str = Field(..., pattern=NAME, description="Registered model name.")
    source: str | None = Field(None, max_length=4096, description="Adapter directory under the tenant's storage.")
    source_job: str | None = Field(None, max_length=64, description="Training job id whose output to register.")
    description: str = Field("", max_length=2000, description="Free text.")


class Promote(Body):
    version: str = Field(..., min_length=1, max_length=64, description="Version number or semver.")
    alias: Literal["candidate", "staging", "production"] = Field(..., description="Alias to move.")
    reason: str = Field(..., min_length=1, max_length=2000, description="Why (recorded in the audit log).")


class TrafficChange(Body):
    mode: Literal["blue_green", "canary", "shadow", "flip"] = Field(..., description="Traffic mode to set.")
    canary_percent: float | None = Field(None, gt=0, lt=100, description="Share sent to the standby (canary).")
    reason: str = Field(..., min_length=1, max_length=2000, description="Why.")


class Rollback(Body):
    reason: str = Field(..., min_length=1, max_length=2000, description="Why.")


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobObject(BaseModel):
    """OpenAI-style job: `fine_tuning.job` for training, `<kind>.job` otherwise; times are unix seconds."""

    id: str
    object: str
    kind: str
    name: str
    tenant: str
    status: str
    created_at: int
    started_at: int | None
    finished_at: int | None
    error: ErrorDetail | None
    result: dict
    spec_digest: str
    ray_job_id: str | None
    created_by: str


class ListObject(BaseModel):
    object: Literal["list"] = "list"
    data: list[Any]
    has_more: bool = False


def unix(ts: datetime | None) -> int | None:
    return int(ts.timestamp()) if ts is not None else None


def job_object(job: Any) -> dict:
    return JobObject(
        id=job.id, object="fine_tuning.job" if job.kind == "training" else f"{job.kind}.job", kind=job.kind,
        name=job.name, tenant=job.tenant, status=job.status, created_at=unix(job.created_at),
        started_at=unix(job.started_at), finished_at=unix(job.finished_at),
        error=ErrorDetail(type="job_failed", message=job.error) if job.error else None, result=job.result or {},
        spec_digest=job.spec_digest, ray_job_id=job.ray_job_id, created_by=job.created_by).model_dump()


def event_object(ev: Any) -> dict:
    return {"object": "fine_tuning.job.event", "id": ev.id, "created_at": unix(ev.created_at), "level": ev.level,
            "message": ev.message, "data": ev.data}


def checkpoint_object(cp: Any) -> dict:
    return {"object": "fine_tuning.job.checkpoint", "id": cp.id, "step_number": cp.step, "uri": cp.uri,
            "sha256": cp.sha256, "metrics": cp.metrics, "created_at": unix(cp.created_at)}


def page(items: list, limit: int, after: str | None, key=lambda x: x["id"]) -> dict:  # noqa: ANN001
    """Cursor pagination: items after the one whose id is `after`, at most `limit` of them."""
    start = 0
    if after is not None:
        ids = [str(key(i)) for i in items]
        if after not in ids:
            from llmft.errors import NotFoundError

            raise NotFoundError(f"after: {after!r} is not in this list")
        start = ids.index(after) + 1
    chunk = items[start:start + limit]
    return ListObject(data=chunk, has_more=start + limit < len(items)).model_dump()
