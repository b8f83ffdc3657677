"""`JobRun`: one job's whole life in the store, and the recorder it hands the stage it runs.

A job is created idempotently by (tenant, kind, name); a failed or cancelled job submitted
again under the same name resumes; states move OpenAI-style (validating -> queued -> running
-> succeeded | failed | cancelled); the failure cause is one line; events and checkpoints
come from the stage through `StoreRecorder`. Nothing else in the platform writes job state.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

from llmft.errors import ConflictError, LlmftError, StageFailed
from llmft.recording import StageContext
from llmft.store import TERMINAL
from llmft.store.job_records import advance_job

ACTIVE = ("validating", "queued", "running")


def failure_cause(exc: BaseException) -> str:
    """The root cause of a failed run in one line (Ray wraps worker errors in pages of context)."""
    if isinstance(exc, StageFailed):
        return str(exc)[:500]
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln:
            return ln[:500]
    return (lines[-1] if lines else type(exc).__name__)[:500]


def error_line(text: str) -> str | None:
    """The last line of a log that reads like an error (`error: ...`, `...Error: ...`), if any."""
    for ln in reversed([ln.strip() for ln in text.splitlines() if ln.strip()]):
        if ln.startswith("error:") or "Error" in ln or "Exception" in ln:
            return ln[:500]
    return None


class StoreRecorder:
    """A stage's line to its job in the store; picklable (it reopens the store), so Ray workers can use it."""

    def __init__(self, db_url: str, job_id: str) -> None:
        self.db_url, self.job_id = db_url, job_id
        self._store: Any = None

    def __getstate__(self) -> dict:
        return {"db_url": self.db_url, "job_id": self.job_id}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["db_url"], state["job_id"])

    @property
    def store(self) -> Any:
        if self._store is None:
            from llmft.store import Store

            self._store = Store(self.db_url)
        return self._store

    def event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        self.store.add_job_event(self.job_id, message, level=level, data=data)

    def checkpoint(self, step: int, uri: str, metrics: dict | None = None, sha256: str | None = None) -> None:
        self.store.add_checkpoint(self.job_id, step=step, uri=uri, metrics=metrics, sha256=sha256)

    def result(self, partial: dict) -> None:
        self.store.merge_job_result(self.job_id, partial)


def store_url(store: Any) -> str:
    """The URL a job process (or a Ray worker) uses to reach the same store."""
    return store.engine.url.render_as_string(hide_password=False)


class JobRun:
    """A job record plus the moves the platform may make on it."""

    def __init__(self, store: Any, job: Any, actor: str) -> None:
        self.store, self.job, self.actor = store, job, actor

    # -- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, store: Any, *, kind: str, tenant: str, name: str, spec: dict, actor: str,
             resume_note: str = "resubmitted: resuming") -> "JobRun":
        """Create the job, or resume a failed/cancelled one of that name with the same spec; queued either way."""
        job = store.find_job(tenant, kind, name)
        if job is None:
            job = store.create_job(tenant=tenant, kind=kind, name=name, spec=spec, actor=actor)
            run = cls(store, job, actor)
            run.move("queued")
            return run
        if job.status in ACTIVE:
            raise ConflictError(f"{kind} job {name!r} already exists ({job.status})")
        if job.status == "succeeded":
            raise ConflictError(f"{kind} job {name!r} already exists (succeeded); submit it under a new name")
        if job.spec != spec:
            raise ConflictError(f"{kind} job {name!r} exists with a different spec; resubmit it unchanged to resume")
        job = store.transition_job(job.id, "queued", actor=actor, message=resume_note)  # failed|cancelled -> queued
        return cls(store, job, actor)

    @classmethod
    def attach(cls, store: Any, job_id: str, actor: str) -> "JobRun":
        """The job the platform already created and handed to this process (by id)."""
        return cls(store, store.job_by_id(job_id), actor)

    # -- moves -----------------------------------------------------------------------------------------
    def move(self, status: str, **kw: Any) -> Any:
        """Walk to `status`, tolerating a job another process moved on (the runner and the job both report)."""
        self.job = advance_job(self.store, self.job, status, self.actor, **kw)
        return self.job

    def fail(self, error: str, result: dict | None = None) -> Any:
        if self.store.get_job(self.job.tenant, self.job.id).status in TERMINAL:
            return self.job
        return self.move("failed", error=error, result=result)

    def cancel(self) -> Any:
        return self.move("cancelled", message="cancelled by request")

    def recorder(self) -> StoreRecorder:
        return StoreRecorder(store_url(self.store), self.job.id)

    def context(self, options: dict | None = None, cancel_event: Any = None) -> StageContext:
        ctx = StageContext(store=self.store, actor=self.actor, recorder=self.recorder(), job_id=self.job.id,
                           previous_result=dict(self.job.result or {}), options=dict(options or {}))
        if cancel_event is not None:
            ctx.cancel_event = cancel_event
        return ctx

    # -- running ---------------------------------------------------------------------------------------
    def run(self, stage: Callable[[Any, StageContext], dict], spec: Any, *, options: dict | None = None,
            cancel_event: Any = None, ray_job_id: str | None = None) -> dict:
        """Run `stage(spec, ctx)` as this job: running, then succeeded with its result or failed with the cause."""
        ctx = self.context(options, cancel_event)
        if self.move("running", **({"ray_job_id": ray_job_id} if ray_job_id else {})).status != "running":
            return self.as_dict()  # cancelled (or finished elsewhere) before this process got to it
        try:
            result = stage(spec, ctx) or {}
        except BaseException as exc:  # noqa: BLE001 - any failure is recorded on the job, then re-raised
            cause = failure_cause(exc)
            if not isinstance(exc, StageFailed):
                ctx.recorder.event("failure traceback", level="error",
                                   data={"traceback": traceback.format_exc()[-4000:]})
            self.fail(cause, result=getattr(exc, "result", None) or None)
            if isinstance(exc, LlmftError) or not isinstance(exc, Exception):
                raise
            raise LlmftError(f"{self.job.kind} job {self.job.name!r} failed: {cause}") from exc
        if ctx.cancelled:
            return self.as_dict()
        self.move("succeeded", result=result)
        return self.as_dict()

    def as_dict(self) -> dict:
        return job_dict(self.store.get_job(self.job.tenant, self.job.id))


def job_dict(job: Any) -> dict:
    """A job as the CLI and `python -m llmft.jobs` print it (the API's `job_object` is the REST shape)."""
    return {"id": job.id, "kind": job.kind, "name": job.name, "tenant": job.tenant, "status": job.status,
            "error": job.error, "result": job.result, "ray_job_id": job.ray_job_id}
