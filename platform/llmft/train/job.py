"""A training job end to end: validate (spec, policy, ledger) before any worker starts, then run and record."""

from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmft.config.training import Method, TrainingSpec
from llmft.errors import ConflictError, LlmftError, NotFoundError, SpecError


class StoreRecorder:
    """Rank 0's line to the store: progress events and checkpoints appear while the job runs."""

    def __init__(self, db_url: str, job_id: str) -> None:
        from llmft.store import Store

        self.store = Store(db_url)
        self.job_id = job_id

    def event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        self.store.add_job_event(self.job_id, message, level=level, data=data)

    def checkpoint(self, step: int, uri: str, metrics: dict, sha256: str) -> None:
        self.store.add_checkpoint(self.job_id, step=step, uri=uri, metrics=metrics, sha256=sha256)


@dataclass
class Plan:
    """Everything decided before a worker starts."""

    spec: TrainingSpec
    snapshot: Any
    snapshot_digest: str
    base_dir: Path
    base_params: int
    decisions: list = field(default_factory=list)
    storage_path: str = ""

    def summary(self) -> dict:
        s = self.spec
        return {"name": s.name, "tenant": s.tenant, "method": s.method.value,
                "strategy": s.distributed.strategy.value, "workers": s.resources.num_workers,
                "use_gpu": s.resources.use_gpu, "dataset": self.snapshot.id, "dataset_sha256": self.snapshot_digest,
                "classification": self.snapshot.classification, "base_model": str(self.base_dir),
                "base_params": self.base_params, "privacy": s.privacy.model_dump() if s.privacy.enabled else None,
                "policy": [d.__dict__ for d in self.decisions], "storage_path": self.storage_path}


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def _snapshot_digest(uri: str) -> str:
    from llmft.manifest import MANIFEST_NAME, build_manifest, read_manifest

    root = Path(uri)
    return read_manifest(root).digest if (root / MANIFEST_NAME).is_file() else build_manifest(root).digest


def plan(spec: TrainingSpec, store: Any, storage_path: str | None = None) -> Plan:
    """Validate a spec against the store, the base model, the policy and the privacy budget; no side effects."""
    from llmft.models.loading import resolve_base
    from llmft.settings import Settings
    from llmft.train.methods import check_target_modules, count_params, skeleton
    from llmft.train.policy import apply_policy
    from llmft.train.strategies import check_supported

    store.get_tenant(spec.tenant)
    try:
        snap = store.get_snapshot(spec.tenant, spec.dataset)
    except NotFoundError as exc:
        raise NotFoundError(f"dataset: {exc}") from None
    if snap.kind != "curated":
        raise SpecError(f"dataset: snapshot {snap.id} is a {snap.kind} snapshot; training needs a curated one")
    if not Path(snap.uri).is_dir() or not any(Path(snap.uri).rglob("*.parquet")):
        raise NotFoundError(f"dataset: snapshot {snap.id} has no Parquet files at {snap.uri}")
    base_dir = resolve_base(spec.base_model)
    skel = skeleton(base_dir)
    params = count_params(skel)
    result = apply_policy(spec, params, snap.classification)
    spec = result.spec
    if spec.method in (Method.lora, Method.qlora):
        check_target_modules(skel, spec.lora.target_modules)
    check_supported(spec, _cuda())
    if spec.privacy.enabled:
        summary = store.privacy_summary(spec.tenant)
        existing = store.find_job(spec.tenant, "training", spec.name)
        if existing is None and spec.privacy.target_epsilon > summary.remaining + 1e-12:
            from llmft.errors import BudgetExceededError

            raise BudgetExceededError(
                f"privacy.target_epsilon={spec.privacy.target_epsilon:g} would exceed tenant {spec.tenant!r}'s "
                f"budget (remaining {summary.remaining:g} of {summary.budget:g})")
    settings = Settings.from_env()
    where = storage_path or spec.checkpoint.storage_path or str(settings.storage / "train")
    return Plan(spec, snap, _snapshot_digest(snap.uri), base_dir, params, result.decisions, where)


def _cause(exc: BaseException) -> str:
    """The root cause of a failed run, one line (Ray wraps worker errors)."""
    text = str(exc).strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln:
            return ln[:500]
    return (lines[-1] if lines else type(exc).__name__)[:500]


def submit(spec: TrainingSpec, store: Any, actor: str, *, storage_path: str | None = None,
           debug: dict | None = None, ray_job_id: str | None = None, job_id: str | None = None) -> dict:
    """Plan, create or resume the job, run it on Ray Train, record the outcome; returns the job as a dict.

    `job_id` names a job the control plane already created and queued: it is run, not refused.
    """
    from llmft.settings import Settings
    from llmft.train import tracking
    from llmft.train.trainer import fit

    p = plan(spec, store, storage_path)
    spec = p.spec
    job = store.get_job(spec.tenant, job_id) if job_id else store.find_job(spec.tenant, "training", spec.name)
    if job is not None and not job_id and job.status in ("running", "queued", "validating"):
        raise ConflictError(f"training job {spec.name!r} is already {job.status}")
    if job is not None and job.status == "succeeded":
        raise ConflictError(f"training job {spec.name!r} already succeeded; submit under a new name")
    resumed = job is not None
    if job is None:
        job = store.create_job(tenant=spec.tenant, kind="training", name=spec.name,
                               spec=spec.model_dump(mode="json"), actor=actor)
    for d in p.decisions:
        store.add_job_event(job.id, f"policy {d.rule}: {d.detail}", data=d.__dict__)
    if spec.privacy.enabled:
        try:
            store.reserve_epsilon(spec.tenant, job.id, spec.privacy.target_epsilon, spec.privacy.delta, actor=actor)
        except LlmftError as exc:
            if job.status == "validating":
                store.transition_job(job.id, "failed", actor=actor, error=str(exc))
            raise
    if job.status != "queued":  # the control plane may have queued it already
        store.transition_job(job.id, "queued", actor=actor, message="resubmitted: resuming" if resumed else None)
    settings = Settings.from_env()
    lineage = {"dataset.snapshot": p.snapshot.id, "dataset.sha256": p.snapshot_digest,
               "dataset.classification": p.snapshot.classification, "base_model": str(spec.base_model),
               "base_model.params": p.base_params, "seed": spec.seed, "job_id": job.id,
               "method": spec.method.value, "spec_digest": job.spec_digest}
    from llmft.models.loading import model_identity

    base_id = model_identity(p.base_dir)
    lineage["base_model.sha256"] = base_id["sha256"]
    run_id = tracking.start_run(settings.mlflow_uri, settings.storage, spec, lineage,
                                run_id=(job.result or {}).get("mlflow_run_id"))
    store.transition_job(job.id, "running", actor=actor, result={"mlflow_run_id": run_id, "plan": p.summary()},
                         ray_job_id=ray_job_id)
    extra = {"mlflow": {"uri": settings.mlflow_uri, "run_id": run_id},
             "store": {"db_url": store_url(store), "job_id": job.id}, "debug": debug or {}}
    try:
        outcome = fit(spec, p.snapshot.uri, p.storage_path, extra)
    except BaseException as exc:  # noqa: BLE001 - a crash must be recorded on the job, then re-raised
        cause = _cause(exc)
        store.add_job_event(job.id, f"worker crash: {cause}", level="error",
                            data={"traceback": traceback.format_exc()[-4000:]})
        store.transition_job(job.id, "failed", actor=actor, error=cause)
        tracking.finish_run(settings.mlflow_uri, run_id, {"status": "failed"}, Path(tempfile.mkdtemp()))
        if spec.privacy.enabled:
            store.add_job_event(job.id, "epsilon reservation kept: the run may have spent part of it")
        raise LlmftError(f"training job {spec.name!r} failed: {cause}") from exc
    with tempfile.TemporaryDirectory() as tmp:
        tracking.finish_run(settings.mlflow_uri, run_id, outcome, Path(tmp))
    if spec.privacy.enabled and outcome.get("epsilon") is not None:
        store.settle_epsilon(job.id, float(outcome["epsilon"]), actor=actor)
    result = {"outcome": outcome, "mlflow_run_id": run_id}
    if outcome["status"] == "succeeded":
        rec = store.transition_job(job.id, "succeeded", actor=actor, result=result)
    else:
        rec = store.transition_job(job.id, "failed", actor=actor, error=outcome.get("reason"), result=result)
    return job_dict(rec)


def store_url(store: Any) -> str:
    engine = getattr(store, "engine", None)
    if engine is not None:
        return engine.url.render_as_string(hide_password=False)
    from llmft.settings import Settings

    return Settings.from_env().db_url


def job_dict(rec: Any) -> dict:
    return {"id": rec.id, "name": rec.name, "tenant": rec.tenant, "status": rec.status, "error": rec.error,
            "result": rec.result, "ray_job_id": rec.ray_job_id}
