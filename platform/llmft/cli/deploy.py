"""`llmft deploy`: blue/green rollouts with shadow and canary, flips, rollbacks and traffic state."""

from __future__ import annotations

from pathlib import Path

import typer

from llmft.cli.output import (ActorOpt, DryRunOpt, JsonOpt, OverridesArg, SpecOpt, actor_name, emit, handles_errors,
                              load_cli_spec)

app = typer.Typer(no_args_is_help=True)
NameOpt = typer.Option(..., "--name", help="Serve application (deployment) name.")
TenantOpt = typer.Option(..., "--tenant", help="Tenant whose admin key the command acts with (minted, then revoked).")
UrlOpt = typer.Option("http://127.0.0.1:8000", "--url", help="Base URL of the serving application.")
DashboardOpt = typer.Option(None, "--dashboard", envvar="LLMFT_RAY_DASHBOARD",
                            help="Ray dashboard URL (Serve REST API); default: the local head's, else "
                                 "http://127.0.0.1:8265.")


def _manager(name: str, tenant: str, url: str, dashboard: str | None,  # type: ignore[no-untyped-def]
             actor: str | None):
    from llmft.jobs.cluster import dashboard_url
    from llmft.serving.rollout.operations import rollout_manager

    return rollout_manager(tenant=tenant, app=name, base_url=url, dashboard_url=dashboard_url(dashboard),
                           actor=actor_name(actor))


@app.command("create")
@handles_errors
def create(spec: Path = SpecOpt, overrides: list[str] = OverridesArg, dry_run: bool = DryRunOpt,
           actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Roll a model version out: standby, health + smoke, (shadow, canary), flip, then SLO watch."""
    from llmft.config import DeploymentSpec
    from llmft.serving.rollout.operations import resolve_spec_version
    from llmft.serving.rollout.slo import Slo, SloWatcher

    dspec = load_cli_spec(spec, overrides, DeploymentSpec)
    key, version = resolve_spec_version(dspec)
    url = f"http://{dspec.http.host}:{dspec.http.port}"
    plan = {"app": dspec.name, "adapter": key, "version": version, "url": url, "shadow_s": dspec.shadow_s,
            "canary_percent": dspec.traffic.canary_percent, "canary_s": dspec.canary_s, "watch_s": dspec.watch_s,
            "slo": dspec.slo.model_dump()}
    if dry_run:
        emit({"plan": plan}, as_json)
        return
    slo = Slo.from_spec(dspec.slo)
    with _manager(dspec.name, dspec.tenant, url, dspec.dashboard_url, actor) as mgr:
        report = mgr.deploy(key, version, model=key.split("/", 1)[1], smoke_prompts=dspec.smoke_prompts, slo=slo,
                            shadow_s=dspec.shadow_s, canary_percent=dspec.traffic.canary_percent,
                            canary_s=dspec.canary_s, health_timeout_s=dspec.health_timeout_s)
        watch = SloWatcher(mgr, slo, key.split("/", 1)[1]).watch(dspec.watch_s) if dspec.watch_s else None
    out = {"plan": plan, "steps": report.steps, "flip_s": report.flip_s, "watch": watch}
    emit(out, as_json, f"{key}:{version} live on {report.steps[-1].get('live')} (flip {report.flip_s:.2f}s)"
         + (f"; rolled back: {watch['reason']}" if watch and watch["rolled_back"] else ""))


@app.command("traffic")
@handles_errors
def traffic(mode: str = typer.Argument(..., help="blue_green | canary | shadow"),
            percent: float = typer.Option(0.0, "--percent", help="Canary share of users (0-100)."),
            name: str = NameOpt, tenant: str = TenantOpt, url: str = UrlOpt, dashboard: str = DashboardOpt,
            actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Change the traffic mode in place (gateway user_config; no restart)."""
    with _manager(name, tenant, url, dashboard, actor) as mgr:
        seconds = mgr.set_mode(mode, percent)
        policy = mgr.policy()
    emit({"traffic": policy.to_dict(), "effective_s": seconds}, as_json, f"{policy.mode} (live {policy.live})")


@app.command("flip")
@handles_errors
def flip(name: str = NameOpt, tenant: str = TenantOpt, url: str = UrlOpt, dashboard: str = DashboardOpt,
         reason: str = typer.Option("manual flip", "--reason"), force: bool = typer.Option(False, "--force"),
         actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Make the standby colour live (it must have passed health + smoke unless --force)."""
    with _manager(name, tenant, url, dashboard, actor) as mgr:
        seconds = mgr.flip(reason, force=force)
        live = mgr.policy().live
    emit({"live": live, "effective_s": seconds}, as_json, f"live: {live} ({seconds:.2f}s)")


@app.command("rollback")
@handles_errors
def rollback(name: str = NameOpt, tenant: str = TenantOpt, url: str = UrlOpt, dashboard: str = DashboardOpt,
             reason: str = typer.Option("manual rollback", "--reason"), actor: str = ActorOpt,
             as_json: bool = JsonOpt) -> None:
    """Flip back to the colour that was live before (kept hot for this)."""
    with _manager(name, tenant, url, dashboard, actor) as mgr:
        seconds = mgr.rollback(reason)
        live = mgr.policy().live
    emit({"live": live, "effective_s": seconds}, as_json, f"rolled back: live {live} ({seconds:.2f}s)")


@app.command("status")
@handles_errors
def status(name: str = NameOpt, tenant: str = TenantOpt, url: str = UrlOpt, dashboard: str = DashboardOpt,
           actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Traffic policy, per-colour request stats (30 s window) and shadow counters."""
    with _manager(name, tenant, url, dashboard, actor) as mgr:
        status_ = mgr.backend._get("/llmft/status")
    emit(status_, as_json)
