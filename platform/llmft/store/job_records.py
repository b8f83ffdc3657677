"""Jobs with OpenAI-style states, their events and checkpoints."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from llmft.errors import ConflictError, NotFoundError
from llmft.store.store_base import StoreBase
from llmft.store.records import CheckpointRecord, JobEventRecord, JobRecord, from_row
from llmft.store.schema import Job, JobCheckpoint, JobEvent, Tenant, utcnow

JOB_KINDS = ("curation", "training", "sweep", "evaluation")
TERMINAL = ("succeeded", "failed", "cancelled")
# A failed or cancelled job may be queued again: resubmitting under the same name resumes it.
TRANSITIONS = {
    "validating": {"queued", "failed", "cancelled"},
    "queued": {"running", "failed", "cancelled"},
    "running": {"succeeded", "failed", "cancelled", "queued"},
    "failed": {"queued"},
    "cancelled": {"queued"},
    "succeeded": set(),
}


# The forward path to each target, for callers that only know where a job should end up.
_PATHS = {"running": ("queued", "running"), "succeeded": ("queued", "running", "succeeded"),
          "queued": ("queued",), "failed": ("failed",), "cancelled": ("cancelled",)}


def advance_job(store: "JobsMixin", job: JobRecord, target: str, actor: str, **kw: object) -> JobRecord:
    """Walk the state machine to `target`, tolerating a job that moved on its own.

    The control plane and a job's entrypoint both report progress on one job; whichever
    comes second finds the step taken and goes on instead of failing.
    """
    for _ in range(8):
        job = store.get_job(job.tenant, job.id)
        if job.status == target or job.status in TERMINAL:
            return job
        steps = _PATHS[target]
        nxt = steps[steps.index(job.status) + 1] if job.status in steps else steps[0]
        try:
            store.transition_job(job.id, nxt, actor=actor, **(kw if nxt == target else {}))  # type: ignore[arg-type]
        except ConflictError:
            continue  # someone else moved it: re-read and go on
    return store.get_job(job.tenant, job.id)


def _canonical_digest(spec: dict) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class JobsMixin(StoreBase):
    def create_job(self, *, tenant: str, kind: str, name: str, spec: dict, actor: str) -> JobRecord:
        if kind not in JOB_KINDS:
            raise ConflictError(f"job kind {kind!r}: must be one of {', '.join(JOB_KINDS)}")
        with self.tx() as s:
            if s.get(Tenant, tenant) is None:
                raise NotFoundError(f"tenant {tenant!r} not found")
            if s.scalar(select(Job.id).where(Job.tenant == tenant, Job.kind == kind, Job.name == name)):
                raise ConflictError(f"{kind} job {name!r} already exists for tenant {tenant!r}")
            row = Job(id=f"{kind[:2]}job-{secrets.token_hex(8)}", tenant=tenant, kind=kind, name=name,
                      status="validating", spec=spec, spec_digest=_canonical_digest(spec), result={},
                      created_by=actor, created_at=utcnow())
            s.add(row)
            s.flush()
            s.add(JobEvent(job_id=row.id, level="info", message="job created", data={}, created_at=utcnow()))
            self.audited(s, actor, tenant, f"job.{kind}.create", f"job/{row.id}",
                         {"name": name, "spec_digest": row.spec_digest})
            return from_row(JobRecord, row)

    def transition_job(self, job_id: str, status: str, *, actor: str, message: str | None = None,
                       error: str | None = None, result: dict | None = None,
                       ray_job_id: str | None = None) -> JobRecord:
        """Move a job to `status`, refusing moves the state machine does not allow."""
        with self.tx() as s:
            row = s.get(Job, job_id)
            if row is None:
                raise NotFoundError(f"job {job_id!r} not found")
            if status not in TRANSITIONS.get(row.status, set()):
                raise ConflictError(f"job {job_id}: cannot go from {row.status} to {status}")
            previous, row.status = row.status, status
            now = utcnow()
            if status == "running" and row.started_at is None:
                row.started_at = now
            if status in TERMINAL:
                row.finished_at = now
            if status == "queued":
                row.finished_at = None
            if error is not None:
                row.error = error
            if result is not None:
                row.result = {**row.result, **result}
            if ray_job_id is not None:
                row.ray_job_id = ray_job_id
            level = "error" if status == "failed" else "info"
            text = message or (f"job {status}: {error}" if error else f"job {status}")
            s.add(JobEvent(job_id=job_id, level=level, message=text, data={"from": previous, "to": status},
                           created_at=now))
            self.audited(s, actor, row.tenant, f"job.{status}", f"job/{job_id}",
                         {"from": previous, "error": error})
            return from_row(JobRecord, row)

    def record_ray_job(self, job_id: str, ray_job_id: str, actor: str) -> JobRecord:
        """Note where a queued job runs (its Ray job id); audited, since it ties the job to a cluster."""
        with self.tx() as s:
            row = s.get(Job, job_id)
            if row is None:
                raise NotFoundError(f"job {job_id!r} not found")
            row.ray_job_id = ray_job_id
            s.add(JobEvent(job_id=job_id, level="info", message=f"submitted to Ray as {ray_job_id}",
                           data={"ray_job_id": ray_job_id}, created_at=utcnow()))
            self.audited(s, actor, row.tenant, "job.submitted", f"job/{job_id}", {"ray_job_id": ray_job_id})
            return from_row(JobRecord, row)

    def merge_job_result(self, job_id: str, partial: dict) -> None:
        """Add keys to a running job's result (e.g. its MLflow run id) without a state change."""
        with self.tx() as s:
            row = s.get(Job, job_id)
            if row is None:
                raise NotFoundError(f"job {job_id!r} not found")
            row.result = {**row.result, **partial}

    def add_job_event(self, job_id: str, message: str, level: str = "info", data: dict | None = None) -> None:
        """Progress events are operational telemetry, not state changes: they are not audited."""
        with self.tx() as s:
            if s.get(Job, job_id) is None:
                raise NotFoundError(f"job {job_id!r} not found")
            s.add(JobEvent(job_id=job_id, level=level, message=message, data=data or {}, created_at=utcnow()))

    def add_checkpoint(self, job_id: str, *, step: int, uri: str, metrics: dict | None = None,
                       sha256: str | None = None) -> CheckpointRecord:
        with self.tx() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id!r} not found")
            row = JobCheckpoint(job_id=job_id, step=step, uri=uri, sha256=sha256, metrics=metrics or {},
                                created_at=utcnow())
            s.add(row)
            s.flush()
            self.audited(s, "system", job.tenant, "job.checkpoint", f"job/{job_id}", {"step": step, "sha256": sha256})
            return from_row(CheckpointRecord, row)

    def get_job(self, tenant: str, job_id: str) -> JobRecord:
        with self.read() as s:
            row = s.get(Job, job_id)
            if row is None or row.tenant != tenant:
                raise NotFoundError(f"job {job_id!r} not found for tenant {tenant!r}")
            return from_row(JobRecord, row)

    def job_by_id(self, job_id: str) -> JobRecord:
        """A job by id alone: for a job process handed its id by the platform (never for API callers)."""
        with self.read() as s:
            row = s.get(Job, job_id)
            if row is None:
                raise NotFoundError(f"job {job_id!r} not found")
            return from_row(JobRecord, row)

    def find_job(self, tenant: str, kind: str, name: str) -> JobRecord | None:
        with self.read() as s:
            row = s.scalar(select(Job).where(Job.tenant == tenant, Job.kind == kind, Job.name == name))
            return from_row(JobRecord, row) if row else None

    def list_jobs(self, tenant: str, kind: str | None = None) -> list[JobRecord]:
        with self.read() as s:
            query = select(Job).where(Job.tenant == tenant)
            if kind:
                query = query.where(Job.kind == kind)
            return [from_row(JobRecord, r) for r in s.scalars(query.order_by(Job.created_at))]

    def list_job_events(self, job_id: str) -> list[JobEventRecord]:
        with self.read() as s:
            rows = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
            return [from_row(JobEventRecord, r) for r in rows]

    def list_checkpoints(self, job_id: str) -> list[CheckpointRecord]:
        with self.read() as s:
            rows = s.scalars(select(JobCheckpoint).where(JobCheckpoint.job_id == job_id).order_by(JobCheckpoint.step))
            return [from_row(CheckpointRecord, r) for r in rows]
