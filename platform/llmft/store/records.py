"""Plain, detached views of stored rows handed out by the Store (no ORM session needed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

R = TypeVar("R")


def from_row(cls: type[R], row: Any, **extra: Any) -> R:
    values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in extra and hasattr(row, f.name)}
    return cls(**values, **extra)


class Record:
    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TenantRecord(Record):
    name: str
    epsilon_budget: float
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyRecord(Record):
    id: str
    tenant: str
    role: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class SnapshotRecord(Record):
    id: str
    tenant: str
    dataset: str
    version: int
    uri: str
    classification: str
    row_count: int
    kind: str
    parents: list
    spec_digest: str | None
    meta: dict
    superseded_by: str | None
    created_by: str
    created_at: datetime
    created: bool = field(default=False, compare=False)  # True when this call inserted it

    @property
    def ref(self) -> str:
        return f"{self.dataset}:{self.version}"


@dataclass(frozen=True)
class JobRecord(Record):
    id: str
    tenant: str
    kind: str
    name: str
    status: str
    spec: dict
    spec_digest: str
    ray_job_id: str | None
    error: str | None
    result: dict
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class JobEventRecord(Record):
    id: int
    job_id: str
    level: str
    message: str
    data: dict
    created_at: datetime


@dataclass(frozen=True)
class CheckpointRecord(Record):
    id: int
    job_id: str
    step: int
    uri: str
    sha256: str | None
    metrics: dict
    created_at: datetime


@dataclass(frozen=True)
class PrivacySummary(Record):
    tenant: str
    budget: float
    spent: float
    reserved: float

    @property
    def remaining(self) -> float:
        return self.budget - self.spent - self.reserved

    def as_dict(self) -> dict:
        return {**super().as_dict(), "remaining": self.remaining}
