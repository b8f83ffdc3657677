"""`llmft sweep`: hyper-parameter sweeps on Ray Tune over the Ray Train trainer, and their results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from llmft.cli.output import ActorOpt, DryRunOpt, JsonOpt, OverridesArg, actor_name, emit, handles_errors

app = typer.Typer(no_args_is_help=True)


def _human_plan(plan: dict) -> str:
    lines = [f"sweep {plan['name']} (tenant {plan['tenant']}): {plan['num_samples']} trials, {plan['concurrency']} at "
             f"once (asked {plan['requested_concurrency']}; {plan['per_trial']['cpus']:g} CPUs"
             f"{', %d GPUs' % plan['per_trial']['gpus'] if plan['per_trial']['gpus'] else ''} per trial on "
             f"{plan['cluster']['cpus']:g} CPUs), {plan['mode']} {plan['metric']}",
             f"ASHA: rungs at {plan['asha']['rungs']} reports (max {plan['asha']['max_t']}), "
             f"reduction factor {plan['asha']['reduction_factor']:g}"]
    for t in plan["trials"]:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        lines.append(f"  {t['name']}: {params} ({t['reports'] if t['reports'] is not None else '?'} reports)")
    return "\n".join(lines)


@app.command()
@handles_errors
def run(
    spec: Path = typer.Option(..., "--spec", help="SweepSpec YAML file."),
    overrides: Optional[list[str]] = OverridesArg,
    dry_run: bool = DryRunOpt,
    cpus: Optional[int] = typer.Option(None, "--cpus", help="CPUs of the local Ray (and of the dry-run plan) [default: all]."),
    gpus: int = typer.Option(0, "--gpus", help="GPUs assumed by the dry-run plan when no cluster is attached."),
    as_json: bool = JsonOpt,
    actor: Optional[str] = ActorOpt,
) -> None:
    """Validate every trial, then run the sweep (attaches to RAY_ADDRESS, else starts a local Ray)."""
    from llmft.config import SweepSpec, load_spec
    from llmft.store import Store
    from llmft.tune.sweep import plan_sweep

    sweep = load_spec(spec, overrides or [], expect=SweepSpec)
    store = Store()
    if dry_run:
        sp = plan_sweep(sweep, store, float(cpus or os.cpu_count() or 1), float(gpus))
        emit({"dry_run": True, "plan": sp.summary}, as_json, None if as_json else _human_plan(sp.summary))
        return
    from llmft.jobs import run_job
    from llmft.jobs.cluster import ray_session

    with ray_session(num_cpus=cpus, dashboard=True):
        result = run_job("sweep", sweep, store, actor_name(actor))
    best = result["result"]["best"]
    reg = result["result"].get("registered") or {}
    emit(result, as_json, None if as_json else
         f"sweep {result['name']} {result['status']}: best {best['name']} val_loss {best['final_val_loss']:.4f}"
         + (f", registered {reg['ref']}@{reg['alias']}" if reg else ""))


@app.command()
@handles_errors
def status(name: str, tenant: str = typer.Option(..., "--tenant", help="Owning tenant."), as_json: bool = JsonOpt) -> None:
    """State of a sweep and its trials (status, reports, last val_loss)."""
    from llmft.errors import NotFoundError
    from llmft.store import Store
    from llmft.jobs import job_dict

    job = Store().find_job(tenant, "sweep", name)
    if job is None:
        raise NotFoundError(f"sweep {name!r} not found for tenant {tenant!r}")
    data = job_dict(job)
    trials = (job.result or {}).get("trials") or []
    human = f"{job.name} {job.status}" + (f": {job.error}" if job.error else "") + "".join(
        f"\n  {t['name']}\t{t['status']}\t{t['reports']} reports\tval_loss {t['last_val_loss']}" for t in trials)
    emit(data, as_json, None if as_json else human)
