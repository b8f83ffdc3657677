"""`llmft cluster`: the local Ray head this LLMFT_HOME owns (start, stop, inspect).

Commands that need Ray attach to `RAY_ADDRESS` when set, else to this head when it runs, else
start a private Ray for themselves; `cluster up` keeps one head (with its dashboard) across
commands, so jobs, sweeps and the Serve app share it.
"""

from __future__ import annotations

import typer

from llmft.cli.output import JsonOpt, emit, handles_errors

app = typer.Typer(no_args_is_help=True)


@app.command("up")
@handles_errors
def up(num_cpus: int = typer.Option(None, "--num-cpus", help="Logical CPUs of the head (default: max(4, cores))."),
       dashboard_port: int = typer.Option(8265, "--dashboard-port"), as_json: bool = JsonOpt) -> None:
    """Start the local Ray head (token auth on, dashboard on 127.0.0.1); a running one is kept."""
    from llmft.jobs.cluster import start_head

    head, started = start_head("cluster", num_cpus=num_cpus, dashboard_port=dashboard_port)
    emit({**head, "started": started}, as_json,
         f"{'started' if started else 'already running:'} local Ray head at {head['gcs_address']}, dashboard "
         f"{head['dashboard_url']} ({head['num_cpus']} CPUs); stop it with `llmft cluster down`")


@app.command("down")
@handles_errors
def down(as_json: bool = JsonOpt) -> None:
    """Stop the local Ray head (and every Serve app and job on it: the line names the unfinished jobs stopped)."""
    from llmft.jobs.cluster import local_head, stop_head

    alive = local_head()
    jobs = _jobs(alive) if alive else []
    head = stop_head()
    stopped = head is not None and alive is not None
    emit({"stopped": stopped, "jobs_stopped": jobs}, as_json,
         (f"stopped the local Ray head at {head['gcs_address']}" + (f" and {len(jobs)} unfinished Ray job"
          f"{'s' if len(jobs) > 1 else ''} on it ({', '.join(jobs)})" if jobs else "")) if stopped
         else "no local Ray head running")


@app.command("status")
@handles_errors
def status(as_json: bool = JsonOpt) -> None:
    """Which cluster commands use now: RAY_ADDRESS, the local head (and who uses it), or a private Ray each."""
    import os

    from llmft.jobs.cluster import local_head, token_available

    head = local_head()
    address = os.environ.get("RAY_ADDRESS")
    jobs = _jobs(head) if head and not address else []
    out = {"ray_address": address, "local_head": head, "jobs": jobs, "token_auth": token_available()}
    if address:
        line = f"commands attach to RAY_ADDRESS={address}"
    elif head:
        line = (f"local Ray head at {head['gcs_address']}, dashboard {head['dashboard_url']}, {head['num_cpus']} "
                f"CPUs, used by {', '.join(head['users'] + jobs) or 'nothing'}")
    else:
        line = "no cluster: each command starts a private local Ray (`llmft cluster up` keeps one running)"
    emit(out, as_json, line + f"; token auth {'on' if out['token_auth'] else 'off'}")


def _jobs(head: dict) -> list[str]:
    """The head's unfinished Ray jobs; none listed when its Job API does not answer (the head is half up)."""
    from llmft.jobs.cluster import head_jobs

    try:
        return head_jobs(head)
    except Exception:  # noqa: BLE001 - a status line, not a decision: nothing to list
        return []
