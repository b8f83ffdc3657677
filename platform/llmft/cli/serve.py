"""`llmft serve`: start, update, inspect and stop the serving application on Ray Serve.

`serve up` uses the cluster at the spec's dashboard_url, else starts this home's local Ray head
(and `serve down` stops that head again when no other command and no Ray job uses it); it returns
only once the app is RUNNING, or fails naming the deployment that cannot start.
"""

from __future__ import annotations

from pathlib import Path

import typer

from llmft.cli.output import DryRunOpt, JsonOpt, OverridesArg, SpecOpt, emit, handles_errors, load_cli_spec

app = typer.Typer(no_args_is_help=True)
DashboardOpt = typer.Option(None, "--dashboard", envvar="LLMFT_RAY_DASHBOARD",
                            help="Ray dashboard URL (Serve REST API); default: the spec's dashboard_url, else the "
                                 "local head's, else http://127.0.0.1:8265.")
OptionalSpecOpt = typer.Option(None, "--spec", help="Deployment spec (its dashboard_url is used).")
WaitOpt = typer.Option(600.0, "--timeout", help="Seconds to wait for the app to be RUNNING.")


def _dashboard(explicit: str | None, spec: Path | None) -> str:
    from llmft.jobs.cluster import dashboard_url

    if explicit is None and spec is not None:
        from llmft.config import DeploymentSpec

        explicit = load_cli_spec(spec, [], DeploymentSpec).dashboard_url
    return dashboard_url(explicit)


@app.command("up")
@handles_errors
def up(spec: Path = SpecOpt, overrides: list[str] = OverridesArg, dry_run: bool = DryRunOpt,
       timeout: float = WaitOpt, as_json: bool = JsonOpt) -> None:
    """Start or update the app (on a local Ray head if no cluster answers); return when it is RUNNING."""
    from urllib.parse import urlparse

    from llmft.config import DeploymentSpec
    from llmft.jobs.cluster import local_head, reachable, release_head, say, start_head, use_token_auth
    from llmft.serving.rollout import operations

    dspec = load_cli_spec(spec, overrides, DeploymentSpec)
    if dry_run:
        emit(operations.up_config(dspec), as_json)
        return
    use_token_auth()
    user, dashboard, started = f"serve:{dspec.name}", dspec.dashboard_url, False
    head = local_head()
    if head is not None and head["dashboard_url"] == dashboard:
        start_head(user)  # joins: `serve down` of the last user stops it
    elif not reachable(dashboard):
        parsed = urlparse(dashboard)
        if parsed.hostname not in ("127.0.0.1", "localhost"):
            from llmft.errors import LlmftError

            raise LlmftError(f"the Ray cluster at {dashboard} (the spec's dashboard_url) is not reachable")
        say(f"no Ray cluster at {dashboard}: starting a local Ray head (`llmft serve down {dspec.name}` stops it)")
        head, started = start_head(user, dashboard_port=parsed.port or 8265)
    try:
        out = operations.serve_up(dspec, dashboard, wait_s=timeout)
    except BaseException:
        try:
            operations.serve_down(dspec.name, dashboard)
        except Exception:  # noqa: BLE001, S110 - nothing deployed, or the cluster is gone: nothing to undo
            pass
        _, kept = release_head(user)
        if kept:
            say(kept)
        raise
    emit({**out, "started_cluster": started}, as_json, out["base_url"])


@app.command("down")
@handles_errors
def down(name: str = typer.Argument(..., help="Serve application name (the deployment spec's name)."),
         spec: Path = OptionalSpecOpt, dashboard: str = DashboardOpt,
         force: bool = typer.Option(False, "--force", help="Stop the local head `serve up` started even if "
                                                           "unfinished Ray jobs run on it."),
         as_json: bool = JsonOpt) -> None:
    """Stop one serving application (others keep running); stop the local head `serve up` started if unused.

    The head stays up while another command (`cluster up`, another app) or an unfinished Ray job
    (a `train submit` to it, a driver attached to it) uses it; the line says which.
    """
    from llmft.jobs.cluster import release_head
    from llmft.serving.rollout import operations

    out = operations.serve_down(name, _dashboard(dashboard, spec))
    out["stopped_cluster"], out["kept_cluster"] = release_head(f"serve:{name}", force=force)
    emit(out, as_json, f"stopped {name}" + ("; stopped the local Ray head" if out["stopped_cluster"] else "")
         + (f"; {out['kept_cluster']}" if out["kept_cluster"] else ""))


@app.command("status")
@handles_errors
def status(spec: Path = OptionalSpecOpt, dashboard: str = DashboardOpt, as_json: bool = JsonOpt) -> None:
    """Serve applications and their deployments' status."""
    from llmft.serving.rollout import operations

    emit(operations.serve_status(_dashboard(dashboard, spec)), as_json)
