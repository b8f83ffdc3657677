"""Dataset snapshots: immutable, content-addressed, versioned per dataset name."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from llmft.errors import ConflictError, NotFoundError
from llmft.store.store_base import StoreBase
from llmft.store.records import SnapshotRecord, from_row
from llmft.store.schema import Snapshot, Tenant, utcnow

SNAPSHOT_KINDS = ("raw", "curated", "erasure")


def _require_tenant(session, tenant: str) -> None:  # type: ignore[no-untyped-def]
    if session.get(Tenant, tenant) is None:
        raise NotFoundError(f"tenant {tenant!r} not found")


class DatasetsMixin(StoreBase):
    def add_snapshot(self, *, tenant: str, dataset: str, snapshot_id: str, uri: str, classification: str,
                     row_count: int, actor: str, kind: str = "raw", parents: list[str] | None = None,
                     spec_digest: str | None = None, meta: dict | None = None) -> SnapshotRecord:
        """Record a snapshot; the same bytes (same id) for the same tenant return the existing record."""
        if kind not in SNAPSHOT_KINDS:
            raise ConflictError(f"snapshot kind {kind!r}: must be one of {', '.join(SNAPSHOT_KINDS)}")
        with self.tx() as s:
            _require_tenant(s, tenant)
            existing = s.get(Snapshot, (snapshot_id, tenant))
            if existing is not None:
                return from_row(SnapshotRecord, existing, created=False)
            latest = s.scalar(select(func.max(Snapshot.version)).where(
                Snapshot.tenant == tenant, Snapshot.dataset == dataset))
            row = Snapshot(id=snapshot_id, tenant=tenant, dataset=dataset, version=(latest or 0) + 1, uri=uri,
                           classification=classification, row_count=row_count, kind=kind,
                           parents=list(parents or []), spec_digest=spec_digest, meta=dict(meta or {}),
                           created_by=actor, created_at=utcnow())
            s.add(row)
            self.audited(s, actor, tenant, f"snapshot.{kind}.create", f"snapshot/{dataset}:{row.version}",
                         {"id": snapshot_id, "rows": row_count, "classification": classification,
                          "parents": row.parents, "spec_digest": spec_digest})
            return from_row(SnapshotRecord, row, created=True)

    def get_snapshot(self, tenant: str, ref: str) -> SnapshotRecord:
        """Resolve `name` (latest version), `name:N`, or a snapshot id (or unique id prefix >= 12)."""
        with self.read() as s:
            _require_tenant(s, tenant)
            query = select(Snapshot).where(Snapshot.tenant == tenant)
            name, _, version = ref.partition(":")
            if version:
                if not version.isdigit():
                    raise NotFoundError(f"snapshot {ref!r}: version must be an integer")
                row = s.scalar(query.where(Snapshot.dataset == name, Snapshot.version == int(version)))
            else:
                row = s.scalar(query.where(Snapshot.dataset == ref).order_by(Snapshot.version.desc()).limit(1))
                if row is None and len(ref) >= 12:
                    rows = s.scalars(query.where(or_(Snapshot.id == ref, Snapshot.id.startswith(ref)))).all()
                    row = rows[0] if len(rows) == 1 else None
            if row is None:
                raise NotFoundError(f"snapshot {ref!r} not found for tenant {tenant!r}")
            return from_row(SnapshotRecord, row)

    def list_snapshots(self, tenant: str, dataset: str | None = None) -> list[SnapshotRecord]:
        with self.read() as s:
            query = select(Snapshot).where(Snapshot.tenant == tenant)
            if dataset:
                query = query.where(Snapshot.dataset == dataset)
            rows = s.scalars(query.order_by(Snapshot.dataset, Snapshot.version))
            return [from_row(SnapshotRecord, r) for r in rows]

    def supersede_snapshot(self, tenant: str, snapshot_id: str, *, by: str, reason: str, actor: str) -> SnapshotRecord:
        """Mark a snapshot as replaced (e.g. by an erasure); its files and row stay as they were."""
        with self.tx() as s:
            row = s.get(Snapshot, (snapshot_id, tenant))
            if row is None:
                raise NotFoundError(f"snapshot {snapshot_id!r} not found for tenant {tenant!r}")
            if s.get(Snapshot, (by, tenant)) is None:
                raise NotFoundError(f"superseding snapshot {by!r} not found for tenant {tenant!r}")
            row.superseded_by = by
            self.audited(s, actor, tenant, "snapshot.supersede", f"snapshot/{row.dataset}:{row.version}",
                         {"id": snapshot_id, "by": by, "reason": reason})
            return from_row(SnapshotRecord, row)

    def descendants(self, tenant: str, snapshot_id: str) -> list[SnapshotRecord]:
        """Snapshots derived (transitively) from `snapshot_id`, e.g. curated versions of a raw one."""
        found: dict[str, SnapshotRecord] = {}
        frontier = [snapshot_id]
        all_rows = self.list_snapshots(tenant)
        while frontier:
            current = frontier.pop()
            for rec in all_rows:
                if current in rec.parents and rec.id not in found:
                    found[rec.id] = rec
                    frontier.append(rec.id)
        return list(found.values())
