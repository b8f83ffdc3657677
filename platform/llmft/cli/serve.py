"""`llmft serve`: start, update, inspect and stop the serving application on Ray Serve."""

from __future__ import annotations

from pathlib import Path

import typer

from llmft.cli.output import DryRunOpt, JsonOpt, OverridesArg, SpecOpt, emit, handles_errors, load_cli_spec

app = typer.Typer(no_args_is_help=True)
DashboardOpt = typer.Option("http://127.0.0.1:8265", "--dashboard", envvar="LLMFT_RAY_DASHBOARD",
                            help="Ray dashboard URL (Serve REST API).")


@app.command("up")
@handles_errors
def up(spec: Path = SpecOpt, overrides: list[str] = OverridesArg, dry_run: bool = DryRunOpt,
       as_json: bool = JsonOpt) -> None:
    """Start or update the app on the configured Ray cluster (a local one by default); print its URL."""
    from llmft.config import DeploymentSpec
    from llmft.serving.rollout import operations

    dspec = load_cli_spec(spec, overrides, DeploymentSpec)
    if dry_run:
        emit(operations.up_config(dspec), as_json)
        return
    out = operations.serve_up(dspec)
    emit(out, as_json, out["base_url"])


@app.command("down")
@handles_errors
def down(name: str = typer.Argument(..., help="Serve application name (the deployment spec's name)."),
         dashboard: str = DashboardOpt, as_json: bool = JsonOpt) -> None:
    """Stop one serving application (others keep running)."""
    from llmft.serving.rollout import operations

    out = operations.serve_down(name, dashboard)
    emit(out, as_json, f"stopped {name}")


@app.command("status")
@handles_errors
def status(dashboard: str = DashboardOpt, as_json: bool = JsonOpt) -> None:
    """Serve applications and their deployments' status."""
    from llmft.serving.rollout import operations

    emit(operations.serve_status(dashboard), as_json)
