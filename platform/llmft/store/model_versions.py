"""Registered model versions and the history of their aliases (the registry's control-plane view).

MLflow's registry is the tracking UI; this table is what the control plane and serving
read. Each mutation is audited in its own transaction; callers pass checks and MLflow
side effects as callables so they run inside that transaction (a failure changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import select

from llmft.errors import ConflictError, NotFoundError
from llmft.store.store_base import StoreBase
from llmft.store.records import Record, from_row
from llmft.store.schema import AliasMove, ModelVersion, Tenant, utcnow

MODEL_STATUSES = ("active", "deprecated", "archived")


@dataclass(frozen=True)
class ModelVersionRecord(Record):
    id: int
    tenant: str
    name: str
    version: int
    semver: str
    manifest_digest: str
    uri: str
    base_model: str
    base_digest: str
    dataset_snapshot: str | None
    source_job_id: str | None
    status: str
    tainted: bool
    lineage: dict
    created_by: str
    created_at: datetime
    created: bool = field(default=False, compare=False)  # True when this call inserted it

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class AliasMoveRecord(Record):
    id: int
    tenant: str
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    created_at: datetime


def _require_tenant(session, tenant: str) -> None:  # type: ignore[no-untyped-def]
    if session.get(Tenant, tenant) is None:
        raise NotFoundError(f"tenant {tenant!r} not found")


def _version_row(session, tenant: str, name: str, version: int) -> ModelVersion:  # type: ignore[no-untyped-def]
    row = session.scalar(select(ModelVersion).where(
        ModelVersion.tenant == tenant, ModelVersion.name == name, ModelVersion.version == version))
    if row is None:
        raise NotFoundError(f"model version {name}:{version} not found for tenant {tenant!r}")
    return row


def _current_alias(session, tenant: str, model: str, alias: str) -> int | None:  # type: ignore[no-untyped-def]
    row = session.scalar(select(AliasMove).where(
        AliasMove.tenant == tenant, AliasMove.model == model, AliasMove.alias == alias)
        .order_by(AliasMove.id.desc()).limit(1))
    return row.to_version if row is not None else None


class ModelsMixin(StoreBase):
    def add_model_version(self, *, tenant: str, name: str, manifest_digest: str, uri: str, base_model: str,
                          base_digest: str, lineage: dict, actor: str, semver_for: Callable[[list], str],
                          allocate: Callable[[str], int], dataset_snapshot: str | None = None,
                          source_job_id: str | None = None) -> ModelVersionRecord:
        """Insert a version; the same bytes under the same name return the existing record (created False).

        `semver_for(previous records)` picks the semantic version and `allocate(semver)` creates
        the MLflow version and returns its integer, both inside the write transaction so two
        concurrent registrations cannot pick the same numbers.
        """
        with self.tx() as s:
            _require_tenant(s, tenant)
            existing = s.scalar(select(ModelVersion).where(
                ModelVersion.tenant == tenant, ModelVersion.name == name,
                ModelVersion.manifest_digest == manifest_digest).order_by(ModelVersion.version).limit(1))
            if existing is not None:
                return from_row(ModelVersionRecord, existing, created=False)
            previous = [from_row(ModelVersionRecord, r) for r in s.scalars(select(ModelVersion).where(
                ModelVersion.tenant == tenant, ModelVersion.name == name).order_by(ModelVersion.version))]
            semver = semver_for(previous)
            if any(p.semver == semver for p in previous):
                raise ConflictError(f"model {name}: semantic version {semver} already exists")
            version = allocate(semver)
            if any(p.version == version for p in previous):
                raise ConflictError(f"model {name}: version {version} already recorded (MLflow and store disagree)")
            row = ModelVersion(tenant=tenant, name=name, version=version, semver=semver,
                               manifest_digest=manifest_digest, uri=uri, base_model=base_model,
                               base_digest=base_digest, dataset_snapshot=dataset_snapshot,
                               source_job_id=source_job_id, status="active", tainted=False, lineage=lineage,
                               created_by=actor, created_at=utcnow())
            s.add(row)
            s.flush()
            self.audited(s, actor, tenant, "model.register", f"model/{name}:{version}",
                         {"semver": semver, "manifest_digest": manifest_digest, "base_digest": base_digest,
                          "dataset_snapshot": dataset_snapshot, "uri": uri})
            return from_row(ModelVersionRecord, row, created=True)

    def get_model_version(self, tenant: str, name: str, version: int) -> ModelVersionRecord:
        with self.read() as s:
            _require_tenant(s, tenant)
            return from_row(ModelVersionRecord, _version_row(s, tenant, name, version))

    def list_model_versions(self, tenant: str, name: str | None = None) -> list[ModelVersionRecord]:
        with self.read() as s:
            _require_tenant(s, tenant)
            query = select(ModelVersion).where(ModelVersion.tenant == tenant)
            if name:
                query = query.where(ModelVersion.name == name)
            rows = s.scalars(query.order_by(ModelVersion.name, ModelVersion.version))
            return [from_row(ModelVersionRecord, r) for r in rows]

    def update_model_version(self, tenant: str, name: str, version: int, *, actor: str, action: str, payload: dict,
                             status: str | None = None, tainted: bool | None = None, uri: str | None = None,
                             append: tuple[str, dict] | None = None,
                             check: Callable[[ModelVersionRecord], None] | None = None) -> ModelVersionRecord:
        """Change the mutable parts of a version (status, taint, location, appended lineage); files never change."""
        if status is not None and status not in MODEL_STATUSES:
            raise ConflictError(f"model status {status!r}: must be one of {', '.join(MODEL_STATUSES)}")
        with self.tx() as s:
            row = _version_row(s, tenant, name, version)
            if check is not None:
                check(from_row(ModelVersionRecord, row))
            if status is not None:
                row.status = status
            if tainted is not None:
                row.tainted = tainted
            if uri is not None:
                row.uri = uri
            if append is not None:
                key, item = append
                lineage = dict(row.lineage)
                lineage[key] = [*lineage.get(key, []), item]
                row.lineage = lineage  # reassign: JSON columns do not track in-place mutation
            self.audited(s, actor, tenant, action, f"model/{name}:{version}", payload)
            return from_row(ModelVersionRecord, row)

    def move_alias(self, tenant: str, model: str, alias: str, to_version: int | None, *, actor: str, reason: str,
                   check: Callable[[ModelVersionRecord | None, int | None], None] | None = None,
                   hook: Callable[[int | None, int | None], None] | None = None) -> AliasMoveRecord:
        """Point `alias` at `to_version` (None removes it) and record who, when, from where and why."""
        if not reason or not reason.strip():
            raise ConflictError(f"moving alias {alias!r} of {model}: a reason is required")
        with self.tx() as s:
            _require_tenant(s, tenant)
            target = from_row(ModelVersionRecord, _version_row(s, tenant, model, to_version)) \
                if to_version is not None else None
            current = _current_alias(s, tenant, model, alias)
            if check is not None:
                check(target, current)
            row = AliasMove(tenant=tenant, model=model, alias=alias, from_version=current, to_version=to_version,
                            actor=actor, reason=reason, created_at=utcnow())
            s.add(row)
            s.flush()
            self.audited(s, actor, tenant, "model.alias.move", f"model/{model}@{alias}",
                         {"from": current, "to": to_version, "reason": reason})
            if hook is not None:
                hook(current, to_version)
            return from_row(AliasMoveRecord, row)

    def current_aliases(self, tenant: str, model: str) -> dict[str, int]:
        """alias -> version for every alias that points somewhere now."""
        out: dict[str, int | None] = {}
        for move in self.alias_history(tenant, model):
            out[move.alias] = move.to_version
        return {k: v for k, v in out.items() if v is not None}

    def alias_history(self, tenant: str, model: str, alias: str | None = None) -> list[AliasMoveRecord]:
        with self.read() as s:
            _require_tenant(s, tenant)
            query = select(AliasMove).where(AliasMove.tenant == tenant, AliasMove.model == model)
            if alias:
                query = query.where(AliasMove.alias == alias)
            return [from_row(AliasMoveRecord, r) for r in s.scalars(query.order_by(AliasMove.id))]
