"""`llmft train`: submit fine-tuning jobs to Ray (or run them here with --local) and inspect them."""

from __future__ import annotations

from pathlib import Path

import typer

from llmft.cli.output import ActorOpt, DryRunOpt, JsonOpt, OverridesArg, actor_name, emit, handles_errors

app = typer.Typer(no_args_is_help=True)

TenantOpt = typer.Option(..., "--tenant", help="Owning tenant.")


@app.command()
@handles_errors
def submit(
    spec: Path = typer.Option(..., "--spec", help="TrainingSpec YAML file."),
    overrides: list[str] = OverridesArg,
    dry_run: bool = DryRunOpt,
    local: bool = typer.Option(False, "--local", help="Run in this process (local Ray) instead of `ray job submit`."),
    address: str = typer.Option(None, "--address", envvar="LLMFT_RAY_ADDRESS",
                                help="Ray dashboard address for the Job API [default: http://127.0.0.1:8265]."),
    as_json: bool = JsonOpt,
    actor: str = ActorOpt,
) -> None:
    """Validate the spec (policy, budget, refusals) and submit it; the same name resumes a failed job."""
    from llmft.config import TrainingSpec, load_spec
    from llmft.jobs import KINDS, open_job, run_job
    from llmft.store import Store

    training = load_spec(spec, overrides or [], expect=TrainingSpec)
    store = Store()
    plan = KINDS["training"].preflight(training, store)
    if dry_run:
        emit({"dry_run": True, "plan": plan}, as_json)
        return
    if not local and not address and not _dashboard_answers("http://127.0.0.1:8265"):
        typer.echo("no Ray cluster configured (--address / LLMFT_RAY_ADDRESS) and none at 127.0.0.1:8265: "
                   "running on a local Ray in this process", err=True)
        local = True
    if local:
        from llmft.jobs.cluster import ray_session

        with ray_session(num_cpus=max(2, training.resources.num_workers)):
            result = run_job("training", training, store, actor_name(actor), preflight=False)  # ran above
        emit(result, as_json, None if as_json else f"job {result['id']} {result['status']}")
        return
    from llmft.jobs.runners import ray_runner

    run = open_job("training", training, store, actor_name(actor), preflight=False)  # preflight ran above
    job = ray_runner(store, address or "http://127.0.0.1:8265").submit(run.job, actor_name(actor))
    emit({"ray_job_id": job.ray_job_id, "job_id": job.id, "name": training.name, "tenant": training.tenant}, as_json,
         f"submitted {training.name} as Ray job {job.ray_job_id}; follow with `llmft train status {training.name} "
         f"--tenant {training.tenant}`")


def _dashboard_answers(url: str) -> bool:
    """Whether a Ray dashboard listens there (an auth refusal counts: something is there)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


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
    from llmft.jobs import job_dict

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

