"""The one job model: every kind of job is created, run, recorded and cancelled here.

    run_job("training", spec, store, actor)          # in this process (tests, --local, the demo)
    open_job("training", spec, store, actor)          # create or resume, queued; then runner.submit(job)
    python -m llmft.jobs training --spec FILE        # what `ray job submit` and the runners launch
"""

from __future__ import annotations

from typing import Any

from llmft.errors import ConflictError
from llmft.jobs.kinds import KINDS, JobKind, StageMissing, kind
from llmft.jobs.job_run import JobRun, StoreRecorder, failure_cause, job_dict
from llmft.store import TERMINAL


def open_job(kind_name: str, spec: Any, store: Any, actor: str, *, name: str | None = None,
             preflight: bool = True) -> JobRun:
    """Preflight (nothing changes if it refuses), then create the job or resume a failed one of that name."""
    k = kind(kind_name)
    if preflight:
        k.preflight(spec, store)
    return JobRun.open(store, kind=k.name, tenant=k.tenant(spec), name=name or k.job_name(spec),
                       spec=spec.model_dump(mode="json"), actor=actor, resume_note=k.resume_note)


def run_job(kind_name: str, spec: Any, store: Any, actor: str, *, job_id: str | None = None,
            name: str | None = None, options: dict | None = None, ray_job_id: str | None = None,
            preflight: bool = True) -> dict:
    """Run a job to its end in this process; `job_id` names one the platform already created. Returns the job.

    `preflight=False` when the caller has just run the kind's preflight itself (the CLI does, to refuse
    before it starts a local Ray).
    """
    k = kind(kind_name)
    run = JobRun.attach(store, job_id, actor) if job_id else open_job(k.name, spec, store, actor, name=name,
                                                                       preflight=preflight)
    return run.run(k.run, spec, options=options, ray_job_id=ray_job_id)


def cancel_job(store: Any, runner: Any, job: Any, actor: str) -> Any:
    """Stop a job where it runs and record it cancelled; a finished job cannot be."""
    if job.status in TERMINAL:
        raise ConflictError(f"{job.kind} job {job.name!r} is already {job.status}; nothing to cancel")
    return runner.cancel(job, actor)


__all__ = ["KINDS", "JobKind", "JobRun", "StageMissing", "StoreRecorder", "cancel_job", "failure_cause", "job_dict", "kind",
           "open_job", "run_job"]
