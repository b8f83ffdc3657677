"""The job kinds: for each, its spec type, its preflight, its run function and how it needs Ray.

This table is the only place that maps a kind to stage code: the control plane, the CLI
and `python -m llmft.jobs` all look a kind up here (plain imports, no import strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from llmft.config import CurationSpec, EvalSpec, SweepSpec, TrainingSpec
from llmft.data.curation import check as check_curation
from llmft.data.curation import run_curation
from llmft.errors import LlmftError
from llmft.evaluation.runner import check_version, run_evaluation_job
from llmft.evaluation.runner import preflight as preflight_evaluation
from llmft.train.launch import run_training
from llmft.train.planning import plan as plan_training
from llmft.tune.sweep import plan_sweep, run_sweep


class StageMissing(LlmftError):
    """A job kind this platform does not know (HTTP 501)."""


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def _curation_preflight(spec: CurationSpec, store: Any) -> dict:
    opened = check_curation(spec, store)
    return {"tenant": spec.tenant, "source": opened.record.id, "output": spec.output,
            "classification": opened.record.classification}


def _training_preflight(spec: TrainingSpec, store: Any) -> dict:
    return plan_training(spec, store).summary()


def _sweep_preflight(spec: SweepSpec, store: Any) -> dict:
    return plan_sweep(spec, store).summary  # every trial gets the training preflight (policy, ε, bounds)


def _train_and_register(spec: TrainingSpec, ctx: Any) -> dict:
    """Training's run; with `register_as`, its final checkpoint becomes a registry version (lineage from the job).

    A registration that fails fails the job: resubmitting resumes from the final checkpoint (no more
    steps) and retries only the registration.
    """
    result = run_training(spec, ctx)
    if spec.register_as:
        from pathlib import Path

        from llmft.jobs.release import register_job_output
        from llmft.registry import ModelRegistry

        final = Path(result["outcome"]["checkpoint"]["uri"])
        rec = register_job_output(ModelRegistry(store=ctx.store), spec.tenant, spec.register_as, actor=ctx.actor,
                                  checkpoint_dir=final)
        ctx.recorder.event(f"registered {rec.ref} ({rec.semver})", data={"ref": rec.ref})
        result["registered"] = {"ref": rec.ref, "semver": rec.semver, "manifest_digest": rec.manifest_digest}
    return result


def _evaluation_preflight(spec: EvalSpec, store: Any) -> dict:
    """Endpoints on the operator's allowlist, named secrets the tenant has, then the model version (hash-verified)."""
    from llmft.registry import ModelRegistry

    preflight_evaluation(spec, store)
    rec = check_version(ModelRegistry(store=store), spec.tenant, spec.model, "model")
    return {"tenant": spec.tenant, "model": rec.ref}


@dataclass(frozen=True)
class JobKind:
    """What the platform knows about one kind of job."""

    name: str
    spec_type: type
    preflight: Callable[[Any, Any], dict]  # (spec, store) -> plan summary; raises before anything changes
    run: Callable[[Any, Any], dict]  # (spec, StageContext) -> the job's result
    job_name: Callable[[Any], str]  # the default job name for a spec (same name = resume)
    tenant: Callable[[Any], str]
    needs_ray: bool = True
    resume_note: str = "resubmitted: resuming"


KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("curation", CurationSpec, _curation_preflight, run_curation,
            job_name=lambda s: f"curate-{s.output}-{_stamp()}", tenant=lambda s: s.tenant),
    JobKind("training", TrainingSpec, _training_preflight, _train_and_register,
            job_name=lambda s: s.name, tenant=lambda s: s.tenant),
    JobKind("sweep", SweepSpec, _sweep_preflight, run_sweep, job_name=lambda s: s.name,
            tenant=lambda s: s.training.tenant, resume_note="rerun: every trial starts again"),
    JobKind("evaluation", EvalSpec, _evaluation_preflight, run_evaluation_job,
            job_name=lambda s: f"eval-{s.model}-{_stamp()}".replace("@", "-").replace(":", "-"),
            tenant=lambda s: s.tenant, needs_ray=False),
)}


def kind(name: str, table: dict[str, JobKind] | None = None) -> JobKind:
    found = (table or KINDS).get(name)
    if found is None:
        raise StageMissing(f"job kind {name!r} is not available: expected one of {', '.join(sorted(KINDS))}")
    return found
