"""Sweeps on Ray Tune: every trial a Ray Train run of one sampled TrainingSpec, ASHA on val_loss.

A trial is a Tune *function* that builds and fits the llmft TorchTrainer with a
`TuneReportCallback` (Train V2 refuses `Tuner(trainer)`). Each trial is an MLflow child
run under the sweep's parent run; the best finished trial's final adapter is registered
and given the `candidate` alias. The sweep itself is a store job of kind "sweep".
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmft.config.base import spec_digest
from llmft.config.training import SweepSpec, TrainingSpec
from llmft.errors import ConflictError, LlmftError
from llmft.tune import space

TRIAL_MARKER = "trial.json"


@dataclass
class SweepPlan:
    """Everything decided before a trial starts: the validated base plan and every trial's spec."""

    spec: SweepSpec
    base: Any  # llmft.train.planning.TrainingPlan of the base training spec
    params: list[dict]
    trials: list[TrainingSpec]
    summary: dict


def plan_sweep(spec: SweepSpec, store: Any, cluster_cpus: float | None = None, cluster_gpus: float = 0.0) -> SweepPlan:
    """Validate the base spec and every sampled trial (policy, targets, budget) against the store; no side effects.

    Each trial gets the same preflight a single training job gets; `cluster_cpus=None` skips fitting
    the concurrency to a cluster (the API's preflight runs with no cluster at hand).
    """
    from llmft.train.planning import plan as plan_training

    if spec.training.privacy.enabled:
        raise LlmftError("sweeps with privacy.enabled are refused: every trial would spend the tenant's budget")
    base = plan_training(spec.training, store)
    params = space.sample_trials(spec)
    trials = []
    for i, p in enumerate(params):
        trial = space.apply_params(base.spec, p, space.trial_name(spec.name, i))
        try:
            trials.append(plan_training(trial, store, base.storage_path).spec)
        except LlmftError as exc:
            raise type(exc)(f"trial {i} ({json.dumps(p, default=str)}): {exc}") from None
    summary = space.sweep_plan(spec, trials, params, cluster_cpus, cluster_gpus)
    summary["base"] = base.summary()
    return SweepPlan(spec, base, params, trials, summary)


def cluster_size() -> tuple[float, float]:
    import ray

    res = ray.cluster_resources()
    return float(res.get("CPU", 0)), float(res.get("GPU", 0))


# ---- inside a trial (a Ray Tune function trainable) --------------------------------------------------
def run_trial(config: dict, ctx: dict, datasets: dict) -> None:
    """Fit one trial's TorchTrainer; its reports (val_loss with each checkpoint) reach ASHA."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from llmft.train import tracking
    from llmft.train.outcome import clear_outcome, read_outcome
    from llmft.train.trainer import build_trainer, run_name

    if ctx.get("ray_address"):
        os.environ["RAY_ADDRESS"] = ctx["ray_address"]
    if ctx.get("storage_filesystem") is not None:  # object storage: the driver's filesystem, as for Train workers
        from llmft import storage

        storage.use_filesystem(ctx["storage_filesystem"])
    trial_id = ray.tune.get_context().get_trial_id()
    index = int(trial_id.rsplit("_", 1)[-1])
    base = TrainingSpec.model_validate(ctx["base"])
    spec = space.apply_params(base, config, space.trial_name(ctx["sweep"], index))
    res = space.trial_resources(spec)
    spec = spec.model_copy(update={"resources": spec.resources.model_copy(update={"cpus_per_worker": res.worker_cpus})})
    storage, mlflow_uri = ctx["storage"], ctx["mlflow_uri"]
    run_uri = f"{storage.rstrip('/')}/{run_name(spec)}"
    lineage = {**ctx["lineage"], "seed": spec.seed, "method": spec.method.value, "spec_digest": spec_digest(spec)}
    run_id = tracking.start_run(mlflow_uri, ctx["artifact_root"], spec, lineage)
    client = tracking.mlflow_client(mlflow_uri)
    for key, value in {"mlflow.parentRunId": ctx["parent_run_id"], "llmft.sweep": ctx["sweep"],
                       "llmft.trial_id": trial_id, "llmft.trial_index": str(index),
                       "llmft.trial.params": json.dumps(config, sort_keys=True, default=str)}.items():
        client.set_tag(run_id, key, value)
    write_marker(run_uri, {"trial_id": trial_id, "index": index, "run_id": run_id, "params": config,
                           "spec": spec.model_dump(mode="json")})
    clear_outcome(run_uri)
    extra = {"mlflow": {"uri": mlflow_uri, "run_id": run_id}, "debug": ctx.get("debug") or {}}
    trainer = build_trainer(spec, "", storage, extra, datasets=datasets, callbacks=[TuneReportCallback()])
    trainer.fit()
    outcome = read_outcome(run_uri) or {"status": "failed", "reason": "no outcome from rank 0"}
    with tempfile.TemporaryDirectory() as tmp:
        tracking.finish_run(mlflow_uri, run_id, outcome, Path(tmp))


def write_marker(run_uri: str, marker: dict) -> None:
    """What the driver needs to know of a trial (ids, params, spec), beside its checkpoints (local or bucket)."""
    from llmft import storage

    fs, root = storage.filesystem(run_uri)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{TRIAL_MARKER}") as fh:
        fh.write(json.dumps(marker).encode())


def read_marker(run_uri: str) -> dict:
    from llmft import storage

    fs, root = storage.filesystem(run_uri)
    try:
        with fs.open_input_stream(f"{root}/{TRIAL_MARKER}") as fh:
            return json.loads(fh.read().decode())
    except (FileNotFoundError, OSError):
        return {}


# ---- the driver ------------------------------------------------------------------------------------
def _tuner(sp: SweepPlan, ctx: dict, datasets: dict, concurrency: int, tune_dir: str) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from llmft import storage

    spec = sp.spec
    fs, path = storage.filesystem(tune_dir) if storage.is_remote(tune_dir) else (None, tune_dir)
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx, datasets=datasets),
                                    {"cpu": space.TRIAL_CPUS, "gpu": 0})
    return tune.Tuner(
        trainable,
        param_space=space.tune_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, num_samples=spec.num_samples,
            # the generator holds the cap: Tune ignores max_concurrent_trials for a SearchGenerator
            search_alg=BasicVariantGenerator(points_to_evaluate=[dict(p) for p in sp.params],
                                             max_concurrent=concurrency),
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=sp.summary["asha"]["max_t"],
                                    grace_period=spec.asha.grace_period,
                                    reduction_factor=spec.asha.reduction_factor),
            trial_dirname_creator=lambda trial: trial.trial_id),
        run_config=tune.RunConfig(name=spec.name, storage_path=path, storage_filesystem=fs, verbose=0),
    )


def _history(result: Any, metric: str) -> list[float]:
    df = result.metrics_dataframe
    if df is None or metric not in getattr(df, "columns", []):
        return []
    return [float(v) for v in df[metric].dropna().tolist()]


def collect_trials(sp: SweepPlan, grid: Any, storage: str, mlflow_uri: str) -> list[dict]:
    """One row per trial: params, status (completed / stopped_early / failed), val_loss history, final checkpoint."""
    from llmft.train import tracking
    from llmft.train.outcome import read_outcome
    from llmft.train.trainer import run_name

    by_index = {}
    for result in grid:
        trial_id = Path(result.path).name if result.path else (result.metrics or {}).get("trial_id", "")
        with contextlib.suppress(ValueError):
            by_index[int(str(trial_id).rsplit("_", 1)[-1])] = (trial_id, result)
    client = tracking.mlflow_client(mlflow_uri)
    rows = []
    for i, trial in enumerate(sp.trials):
        run_uri = f"{storage.rstrip('/')}/{run_name(trial)}"
        marker = read_marker(run_uri)
        trial_id, result = by_index.get(i, (marker.get("trial_id"), None))
        outcome = read_outcome(run_uri)
        history = _history(result, sp.spec.metric) if result is not None else []
        error = str(result.error).strip().splitlines()[-1][:500] if result is not None and result.error else None
        if outcome is not None and outcome.get("status") == "succeeded":
            status = "completed"
        elif error or outcome is not None or not history:
            status = "failed"
        else:
            status = "stopped_early"
        run_id = marker.get("run_id")
        if run_id and client.get_run(run_id).info.status == "RUNNING":  # the trial ended before closing its run
            if status == "completed":
                with tempfile.TemporaryDirectory() as tmp:
                    tracking.finish_run(mlflow_uri, run_id, outcome, Path(tmp))
            else:
                client.set_terminated(run_id, status="KILLED" if status == "stopped_early" else "FAILED")
        if run_id:
            client.set_tag(run_id, "llmft.trial.status", status)
        final = (outcome or {}).get("val_loss") if status == "completed" else None
        rows.append({"index": i, "name": trial.name, "trial_id": trial_id, "params": sp.params[i], "status": status,
                     "reports": len(history), "val_loss_history": history,
                     "last_val_loss": history[-1] if history else None, "final_val_loss": final,
                     "steps": (outcome or {}).get("steps"), "seconds": (outcome or {}).get("seconds"),
                     "mlflow_run_id": run_id, "checkpoint": (outcome or {}).get("checkpoint"), "error": error,
                     "spec": marker.get("spec")})
    return rows


def best_trial(rows: list[dict], mode: str) -> dict | None:
    """The completed trial with the best final validation loss (stopped trials have no final adapter)."""
    done = [r for r in rows if r["status"] == "completed" and r["final_val_loss"] is not None and r["checkpoint"]]
    if not done:
        return None
    key = (lambda r: r["final_val_loss"]) if mode == "min" else (lambda r: -r["final_val_loss"])
    return min(done, key=key)


def register_best(sp: SweepPlan, best: dict, store: Any, job_id: str, actor: str, lineage: dict) -> dict:
    """Register the best trial's final adapter (or full weights) and point `register_best_as` at it."""
    from llmft.registry import ModelRegistry

    from llmft import storage
    from llmft.manifest import verify_tree

    # object storage: copied into the local cache and re-hashed (a tampered checkpoint is refused)
    ckpt, _ = storage.verified(best["checkpoint"]["uri"], lambda p: verify_tree(p, allow_extra=True))
    source = next((ckpt / d for d in ("adapter", "model") if (ckpt / d).is_dir()), None)
    if source is None:
        raise LlmftError(f"best trial {best['name']}: checkpoint {ckpt} holds neither adapter/ nor model/")
    spec = TrainingSpec.model_validate(best["spec"])
    inputs = {"base_model": lineage["base"], "dataset_snapshot": lineage["dataset.snapshot"],
              "dataset_digest": lineage["dataset.sha256"], "training_spec": best["spec"],
              "training_spec_digest": spec_digest(spec), "method": spec.method.value, "seed": spec.seed,
              "metrics": {"val_loss": best["final_val_loss"], "steps": best["steps"]},
              "mlflow_run_id": best["mlflow_run_id"], "job_id": job_id, "duration_s": best["seconds"],
              "sweep": {"name": sp.spec.name, "trial": best["name"], "params": best["params"]}}
    registry = ModelRegistry(store=store)
    rec = registry.register(sp.spec.training.tenant, sp.spec.training.name, source, actor=actor, lineage=inputs,
                            description=f"best trial of sweep {sp.spec.name} by {sp.spec.metric}")
    out = {"ref": rec.ref, "version": rec.version, "semver": rec.semver, "created": rec.created,
           "manifest_digest": rec.manifest_digest, "alias": None}
    alias = sp.spec.register_best_as
    if alias:
        try:
            registry.promote(sp.spec.training.tenant, rec.ref, alias, actor=actor,
                             reason=f"best of sweep {sp.spec.name}: {sp.spec.metric}={best['final_val_loss']:.4f}")
        except ConflictError as exc:
            if "already points" not in str(exc):
                raise
        out["alias"] = alias
    return out


def _lineage(sp: SweepPlan, job_id: str | None) -> dict:
    from llmft.models.loading import model_identity

    base_id = model_identity(sp.base.base_dir)
    return {"dataset.snapshot": sp.base.snapshot.id, "dataset.sha256": sp.base.snapshot_digest,
            "dataset.classification": sp.base.snapshot.classification,
            "base_model": str(sp.spec.training.base_model), "base_model.params": sp.base.base_params,
            "base_model.sha256": base_id["sha256"], "job_id": job_id, "sweep": sp.spec.name,
            "base": {"ref": str(sp.spec.training.base_model), "name": base_id["name"], "sha256": base_id["sha256"]}}


def _parent_run(settings: Any, sp: SweepPlan, lineage: dict) -> str:
    from llmft.train import tracking

    parent_spec = sp.base.spec.model_copy(update={"name": sp.spec.name})
    tags = {k: v for k, v in lineage.items() if k != "base"}
    run_id = tracking.start_run(settings.mlflow_uri, settings.storage, parent_spec, tags)
    client = tracking.mlflow_client(settings.mlflow_uri)
    client.set_tag(run_id, "llmft.kind", "sweep")
    for key, value in {"sweep.num_samples": sp.spec.num_samples, "sweep.concurrency": sp.summary["concurrency"],
                       "sweep.metric": sp.spec.metric, "sweep.mode": sp.spec.mode,
                       "sweep.search_space": json.dumps(sp.summary["search_space"], sort_keys=True),
                       "sweep.asha": json.dumps(sp.summary["asha"], sort_keys=True)}.items():
        client.log_param(run_id, key, str(value)[:500])
    return run_id


def run_sweep(spec: SweepSpec, ctx: Any) -> dict:
    """A sweep job's run (`ctx` is the job model's StageContext): every trial on Ray Tune, the best registered.

    Needs a connected Ray session (the job entrypoint opens one).
    """
    import ray

    from llmft import storage as object_storage
    from llmft.settings import Settings
    from llmft.train import tracking
    from llmft.train.trainer import snapshot_datasets

    store, actor, rec = ctx.store, ctx.actor, ctx.recorder
    cpus, gpus = cluster_size()
    sp = plan_sweep(spec, store, cpus, gpus)
    settings = Settings.from_env().ensure_dirs()
    lineage = _lineage(sp, ctx.job_id)
    parent = _parent_run(settings, sp, lineage)
    # trials' checkpoints, markers and Tune's own state: in the bucket when storage is object storage
    # (every node reads and writes there), else under the shared storage directory
    storage = object_storage.uri_of(settings.storage / "sweeps" / spec.training.tenant / spec.name / parent[:12],
                                    settings)
    concurrency = sp.summary["concurrency"]
    rec.result({"mlflow_parent_run_id": parent, "plan": sp.summary, "storage": storage})
    rec.event(f"plan: {spec.num_samples} trials, {concurrency} at once "
              f"({sp.summary['per_trial']['cpus']:g} CPUs each on {cpus:g}), ASHA rungs "
              f"{sp.summary['asha']['rungs']} of max {sp.summary['asha']['max_t']} reports",
              data={"trials": sp.summary["trials"]})
    job_id = ctx.job_id
    trial_ctx = {"sweep": spec.name, "base": sp.base.spec.model_dump(mode="json"), "storage": storage,
           "mlflow_uri": settings.mlflow_uri, "artifact_root": str(settings.storage), "parent_run_id": parent,
           "lineage": {k: v for k, v in lineage.items() if k != "base"}, "debug": ctx.options.get("debug") or {},
           "ray_address": os.environ.get("RAY_ADDRESS") or ray.get_runtime_context().gcs_address,
           "storage_filesystem": object_storage.filesystem(storage)[0] if object_storage.is_remote(storage) else None}
    client = tracking.mlflow_client(settings.mlflow_uri)
    started = time.perf_counter()
    try:
        datasets = snapshot_datasets(sp.base.snapshot.uri)
        grid = _tuner(sp, trial_ctx, datasets, concurrency, f"{storage}/tune").fit()
        rows = collect_trials(sp, grid, storage, settings.mlflow_uri)
        wall = time.perf_counter() - started
        for r in rows:
            rec.event(f"trial {r['name']} {r['status']}: {r['reports']} reports, last "
                      f"{spec.metric} {r['last_val_loss'] if r['last_val_loss'] is not None else 'n/a'}",
                      level="error" if r["status"] == "failed" else "info",
                      data={k: r[k] for k in ("params", "trial_id", "val_loss_history", "error")})
        best = best_trial(rows, spec.mode)
        if best is None:
            raise LlmftError(f"sweep {spec.name!r}: no trial finished with a {spec.metric} "
                             f"({', '.join(r['status'] for r in rows)})")
        rec.checkpoint(int(best["steps"] or 0), best["checkpoint"]["uri"],
                       {spec.metric: best["final_val_loss"], "trial": best["name"]}, best["checkpoint"].get("manifest"))
        registered = register_best(sp, best, store, job_id, actor, lineage) \
            if spec.register_best_as is not None else None
        if registered:
            rec.event(f"registered best trial {best['name']} as {registered['ref']}"
                      f"{'@' + registered['alias'] if registered['alias'] else ''}", data=registered)
    except BaseException:  # the job model records the cause; close the MLflow parent run first
        client.set_terminated(parent, status="FAILED")
        raise
    client.log_metric(parent, f"best_{spec.metric}", float(best["final_val_loss"]))
    client.log_metric(parent, "wall_seconds", wall)
    client.set_tag(parent, "llmft.sweep.best_trial", best["name"])
    client.set_tag(parent, "llmft.sweep.best_run_id", best["mlflow_run_id"] or "")
    if registered:
        client.set_tag(parent, "llmft.sweep.registered", f"{registered['ref']}@{registered['alias']}")
    client.set_terminated(parent, status="FINISHED")
    summary = [{k: r[k] for k in ("name", "status", "params", "reports", "last_val_loss", "final_val_loss",
                                  "mlflow_run_id")} for r in rows]
    result = {"mlflow_parent_run_id": parent, "plan": sp.summary, "storage": storage, "wall_s": round(wall, 1),
              "trials": summary, "best": {k: best[k] for k in ("name", "params", "final_val_loss", "mlflow_run_id")}
              | {"checkpoint": best["checkpoint"]["uri"]}, "registered": registered}
    return result
