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
                                help="Ray dashboard address for the Job API; default: the local head "
                                     "`llmft cluster up` started; with none, run here on a local Ray."),
    wait: bool = typer.Option(False, "--wait", help="Follow a submitted job to its end; exit 1 if it failed."),
    as_json: bool = JsonOpt,
    actor: str = ActorOpt,
) -> None:
    """Validate the spec (policy, budget, refusals) and run it: on the cluster, else here on a local Ray."""
    from llmft.config import TrainingSpec, load_spec
    from llmft.jobs import KINDS, open_job, run_job
    from llmft.jobs.cluster import job_api_address, reachable
    from llmft.store import Store

    training = load_spec(spec, overrides or [], expect=TrainingSpec)
    store = Store()
    plan = KINDS["training"].preflight(training, store)
    if dry_run:
        from llmft.train.planning import plan as plan_training

        schedule = plan_training(training, store).schedule()
        emit({"dry_run": True, "plan": plan, "schedule": schedule}, as_json)
        if not as_json:
            typer.echo(schedule_line(schedule))
        return
    if address and not reachable(address):
        from llmft.errors import LlmftError

        raise LlmftError(f"the Ray cluster at {address} (--address / LLMFT_RAY_ADDRESS) is not reachable: start it, "
                         f"or leave it unset to run on a local Ray")
    address = None if local else (address or job_api_address())
    if address is None:
        from llmft.jobs.cluster import ray_session

        with ray_session(num_cpus=max(2, training.resources.num_workers), worker_logs=True):
            result = run_job("training", training, store, actor_name(actor), preflight=False)  # ran above
        emit(result, as_json, None if as_json else f"job {training.name} {result['status']}" + (
            f" ({summary_line(result['result'])})" if result.get("result") else ""))
        if result["status"] != "succeeded":
            raise typer.Exit(1)
        return
    from llmft.jobs.runners import ray_runner

    runner = ray_runner(store, address)
    run = open_job("training", training, store, actor_name(actor), preflight=False)  # preflight ran above
    job = runner.submit(run.job, actor_name(actor))
    if not wait:
        emit({"ray_job_id": job.ray_job_id, "job_id": job.id, "name": training.name, "tenant": training.tenant},
             as_json, f"submitted {training.name} as Ray job {job.ray_job_id}; follow with `llmft train status "
                      f"{training.name} --tenant {training.tenant}` (or submit with --wait)")
        return
    job = follow(store, runner, job, quiet=as_json)
    from llmft.jobs import job_dict

    emit(job_dict(job), as_json, f"job {job.name} {job.status}" + (f": {job.error}" if job.error else ""))
    if job.status != "succeeded":
        raise typer.Exit(1)


def schedule_line(schedule: dict) -> str:
    """The dry run's plan in one line: steps, epochs, tokens and what max_seq_len does to the rows."""
    t = schedule["truncation"]
    return (f"planned: {schedule['steps']} steps ({schedule['epochs']:g} epochs of {schedule['steps_per_epoch']:g} "
            f"steps), ~{schedule['tokens']:,} tokens from {schedule['examples']} examples; at max_seq_len "
            f"{t['max_seq_len']}: {t['cut']} prompts cut to fit, {t['dropped']} rows dropped ({t['mode']})")


def summary_line(result: dict) -> str:
    """A finished run in one line, with the same tokens/s the progress lines showed."""
    parts = [f"{result.get('steps')} steps"]
    if result.get("val_loss") is not None:
        parts.append(f"val_loss {result['val_loss']:.4f}")
    if result.get("tokens_per_s") is not None:
        parts.append(f"{result['tokens_per_s']:,.0f} tokens/s")
    return ", ".join(parts)


def follow(store, runner, job, *, quiet: bool = False, poll_s: float = 2.0):  # noqa: ANN001, ANN201
    """Print a submitted job's events and progress lines as they arrive (one line each) until it ends."""
    import time

    from llmft.store import TERMINAL

    seen = shown = 0
    while True:
        job = runner.sync(store.job_by_id(job.id))
        events = store.list_job_events(job.id)
        for e in events[seen:]:
            if not quiet and e.message != "failure traceback":
                typer.echo(f"{e.level:7} {e.message}", err=True)
        seen = len(events)
        progress = [ln.split("[llmft.train] ", 1)[1] for ln in (runner.logs(job) or "").splitlines()
                    if "[llmft.train] step " in ln]
        for line in progress[shown:]:
            if not quiet:
                typer.echo(line, err=True)
        shown = len(progress)
        if job.status in TERMINAL:
            return job
        time.sleep(poll_s)


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

