"""`llmft train`: submit fine-tuning jobs to Ray (or run them here with --local) and inspect them."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import typer

from llmft.cli.output import ActorOpt, DryRunOpt, JsonOpt, OverridesArg, actor_name, emit, handles_errors

app = typer.Typer(no_args_is_help=True)

TenantOpt = typer.Option(..., "--tenant", help="Owning tenant.")


def _repo_root() -> Path:
    import llmft

    return Path(llmft.__file__).resolve().parents[2]


@app.command()
@handles_errors
def submit(
    spec: Path = typer.Option(..., "--spec", help="TrainingSpec YAML file."),
    overrides: list[str] = OverridesArg,
    dry_run: bool = DryRunOpt,
    local: bool = typer.Option(False, "--local", help="Run in this process (local Ray) instead of `ray job submit`."),
    address: str = typer.Option(None, "--address", envvar="RAY_ADDRESS", help="Ray dashboard address for the Job API."),
    as_json: bool = JsonOpt,
    actor: str = ActorOpt,
) -> None:
    """Validate the spec (policy, budget, refusals) and submit it; the same name resumes a failed job."""
    from llmft.config import TrainingSpec, load_spec
    from llmft.settings import Settings
    from llmft.store import Store
    from llmft.train.job import plan, submit as run_job

    training = load_spec(spec, overrides or [], expect=TrainingSpec)
    store = Store()
    p = plan(training, store)
    if dry_run:
        emit({"dry_run": True, "plan": p.summary()}, as_json)
        return
    if local:
        import ray

        ray.init(address="local", num_cpus=max(2, training.resources.num_workers), include_dashboard=False)
        try:
            result = run_job(training, store, actor_name(actor))
        finally:
            ray.shutdown()
        emit(result, as_json, None if as_json else f"job {result['id']} {result['status']}")
        return
    from ray.job_submission import JobSubmissionClient

    settings = Settings.from_env().ensure_dirs()
    payload = base64.b64encode(json.dumps(training.model_dump(mode="json")).encode()).decode()
    env = {"LLMFT_HOME": str(settings.home), "LLMFT_DB_URL": settings.db_url, "LLMFT_MLFLOW_URI": settings.mlflow_uri,
           "LLMFT_STORAGE": str(settings.storage), "LLMFT_ACTOR": actor_name(actor)}
    client = JobSubmissionClient(address or "http://127.0.0.1:8265")
    ray_job = client.submit_job(
        entrypoint=f"python jobs/train.py --spec-b64 {payload}",
        runtime_env={"working_dir": str(_repo_root()), "env_vars": env,
                     "excludes": [".venv", ".llmft", ".git", "**/*.safetensors", "notebooks"]},
    )
    emit({"ray_job_id": ray_job, "name": training.name, "tenant": training.tenant}, as_json,
         f"submitted {training.name} as Ray job {ray_job}; follow with `llmft train status {training.name} "
         f"--tenant {training.tenant}`")


def _job(tenant: str, name: str):  # noqa: ANN202
    from llmft.errors import NotFoundError
    from llmft.store import Store

    store = Store()
    job = store.find_job(tenant, "training", name)
    if job is None:
        raise NotFoundError(f"training job {name!r} not found for tenant {tenant!r}")
    return store, job


@app.command()
@handles_errors
def status(name: str, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """State, error and result of one job."""
    from llmft.train.job import job_dict

    _, job = _job(tenant, name)
    emit(job_dict(job), as_json, None if as_json else f"{job.name} {job.status}" + (f": {job.error}" if job.error else ""))


@app.command("list")
@handles_errors
def list_jobs(tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Training jobs of a tenant."""
    from llmft.store import Store

    jobs = Store().list_jobs(tenant, kind="training")
    rows = [{"id": j.id, "name": j.name, "status": j.status, "created_at": j.created_at} for j in jobs]
    emit(rows, as_json, None if as_json else "\n".join(f"{r['name']}\t{r['status']}\t{r['id']}" for r in rows))


@app.command()
@handles_errors
def events(name: str, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Events of a job (progress, policy decisions, divergence, crashes)."""
    store, job = _job(tenant, name)
    rows = [{"at": e.created_at, "level": e.level, "message": e.message} for e in store.list_job_events(job.id)]
    emit(rows, as_json, None if as_json else "\n".join(f"{r['at']} {r['level']:7} {r['message']}" for r in rows))


@app.command()
@handles_errors
def checkpoints(name: str, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Checkpoints a job recorded (step, uri, manifest digest, metrics)."""
    store, job = _job(tenant, name)
    rows = [{"step": c.step, "uri": c.uri, "sha256": c.sha256, "metrics": c.metrics}
            for c in store.list_checkpoints(job.id)]
    emit(rows, as_json, None if as_json else "\n".join(f"{r['step']}\t{r['uri']}" for r in rows))


del os
