"""A training job's run: reserve ε, open the MLflow run, fit on Ray Train, close the run, settle ε.

Called by the job model (`llmft.jobs`) with a `StageContext`; it reports through the
context's recorder and returns the job's result. A run whose outcome is a failure (a
divergence guard stopped it) raises `StageFailed` carrying that result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from llmft.config.training import TrainingSpec
from llmft.errors import StageFailed
from llmft.recording import StageContext
from llmft.train.planning import plan


def run_training(spec: TrainingSpec, ctx: StageContext) -> dict:
    """Run one training job to its end; returns {"outcome", "mlflow_run_id", "plan"}."""
    from llmft.models.loading import model_identity
    from llmft.settings import Settings
    from llmft.train import tracking
    from llmft.train.trainer import fit

    store = ctx.store
    p = plan(spec, store, ctx.options.get("storage_path"))
    spec = p.spec
    for d in p.decisions:
        ctx.recorder.event(f"policy {d.rule}: {d.detail}", data=d.__dict__)
    if spec.privacy.enabled:
        store.reserve_epsilon(spec.tenant, ctx.job_id, spec.privacy.target_epsilon, spec.privacy.delta,
                              actor=ctx.actor)
    settings = Settings.from_env()
    lineage = {"dataset.snapshot": p.snapshot.id, "dataset.sha256": p.snapshot_digest,
               "dataset.classification": p.snapshot.classification, "base_model": str(spec.base_model),
               "base_model.params": p.base_params, "seed": spec.seed, "job_id": ctx.job_id,
               "method": spec.method.value, "base_model.sha256": model_identity(p.base_dir)["sha256"]}
    if ctx.job_id:
        lineage["spec_digest"] = store.job_by_id(ctx.job_id).spec_digest
    run_id = tracking.start_run(settings.mlflow_uri, settings.storage, spec, lineage,
                                run_id=ctx.previous_result.get("mlflow_run_id"))
    ctx.recorder.result({"mlflow_run_id": run_id, "plan": p.summary()})
    extra = {"mlflow": {"uri": settings.mlflow_uri, "run_id": run_id}, "recorder": ctx.recorder,
             "debug": ctx.options.get("debug") or {}}
    try:
        outcome = fit(spec, p.snapshot.uri, p.storage_path, extra)
    except BaseException:  # the job model records the cause; close the MLflow run first
        tracking.finish_run(settings.mlflow_uri, run_id, {"status": "failed"}, Path(tempfile.mkdtemp()))
        if spec.privacy.enabled:
            ctx.recorder.event("epsilon reservation kept: the run may have spent part of it")
        raise
    with tempfile.TemporaryDirectory() as tmp:
        tracking.finish_run(settings.mlflow_uri, run_id, outcome, Path(tmp))
    if spec.privacy.enabled and outcome.get("epsilon") is not None:
        store.settle_epsilon(ctx.job_id, float(outcome["epsilon"]), actor=ctx.actor)
    result = {"outcome": outcome, "mlflow_run_id": run_id, "plan": p.summary()}
    if outcome["status"] != "succeeded":
        raise StageFailed(outcome.get("reason") or "training stopped", result)
    return result
