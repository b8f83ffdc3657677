"""The end-to-end demo as a list of stages; `jobs/pipeline.py` (and `make demo`) runs them in order.

Each stage reads what earlier stages left in the context and adds its own results,
so a stage that lands later appends itself here without touching the others.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmft.settings import Settings

TENANT = "acme"
ACTOR = "demo"


@dataclass
class DemoContext:
    settings: Settings
    seed: int = 0
    n_tickets: int = 600
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    store: Any = None
    ray_context: Any = None


Stage = Callable[[DemoContext], dict]
STAGES: list[tuple[str, Stage]] = []


def stage(name: str) -> Callable[[Stage], Stage]:
    def register(fn: Stage) -> Stage:
        STAGES.append((name, fn))
        return fn

    return register


def say(message: str) -> None:
    print(f"[llmft demo] {message}", flush=True)


@stage("platform")
def start_platform(ctx: DemoContext) -> dict:
    """Open the metadata store, create the demo tenant and start (or join) a local Ray."""
    import ray

    from llmft.errors import ConflictError
    from llmft.store import Store

    ctx.store = Store(ctx.settings.db_url)
    try:
        ctx.store.create_tenant(TENANT, ACTOR)
    except ConflictError:
        pass  # a re-run keeps the tenant (and its privacy ledger)
    ctx.ray_context = ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                               ignore_reinit_error=True, log_to_driver=True,
                               runtime_env={"env_vars": _settings_env(ctx.settings)})
    dashboard = ctx.ray_context.dashboard_url
    return {"tenant": TENANT, "db": ctx.settings.db_url,
            "ray_dashboard": f"http://{dashboard}" if dashboard else None}


@stage("base model")
def build_base(ctx: DemoContext) -> dict:
    """Build (or reuse) the tiny Llama base and record its identity: name + sha256 of its files."""
    from llmft.models.loading import model_identity, resolve_base

    path = resolve_base("tiny")
    identity = model_identity(path)
    ctx.store.audit.append(ACTOR, None, "base.ready", f"base/{identity['name']}", identity)
    return {"path": str(path), **identity}


@stage("sample data")
def generate_data(ctx: DemoContext) -> dict:
    """Write the seeded private sample dataset (tickets with planted PII, duplicates, junk)."""
    from llmft.data.samples import generate_sample_dataset

    out = ctx.settings.storage / "incoming" / f"sample-seed{ctx.seed}"
    paths = generate_sample_dataset(out, seed=ctx.seed, n_tickets=ctx.n_tickets)
    return {name: str(path) for name, path in paths.items()}


def _settings_env(settings: Settings) -> dict[str, str]:
    """Ray workers are separate processes: hand them the same state locations as the driver."""
    return {"LLMFT_HOME": str(settings.home), "LLMFT_DB_URL": settings.db_url,
            "LLMFT_MLFLOW_URI": settings.mlflow_uri, "LLMFT_STORAGE": str(settings.storage)}


def run_demo(seed: int = 0, n_tickets: int = 600, only: list[str] | None = None) -> DemoContext:
    settings = Settings.from_env().ensure_dirs()
    ctx = DemoContext(settings=settings, seed=seed, n_tickets=n_tickets)
    say(f"state under {settings.home}")
    try:
        for name, fn in STAGES:
            if only and name not in only and name != "platform":
                continue
            started = time.perf_counter()
            say(f"── {name} ──")
            ctx.results[name] = fn(ctx)
            ctx.timings[name] = round(time.perf_counter() - started, 2)
            say(f"{name}: done in {ctx.timings[name]:.1f}s")
        verdict = ctx.store.audit.verify()
        ctx.results["audit"] = verdict.as_dict()
        say(f"audit log: {'OK' if verdict.ok else 'TAMPERED'} ({verdict.records} records)")
        _print_where_to_look(ctx)
        (settings.home / "demo-summary.json").write_text(
            json.dumps({"results": ctx.results, "timings": ctx.timings}, indent=2, default=str))
    finally:
        _shutdown(ctx)
    return ctx


def _print_where_to_look(ctx: DemoContext) -> None:
    dashboard = ctx.results.get("platform", {}).get("ray_dashboard")
    say("where to look:")
    if dashboard:
        say(f"  Ray dashboard:  {dashboard}  (while the demo runs)")
    say(f"  MLflow UI:      .venv/bin/mlflow ui --backend-store-uri {ctx.settings.mlflow_uri}")
    say(f"  audit log:      .venv/bin/llmft audit log --tenant {TENANT}")
    say(f"  summary:        {ctx.settings.home / 'demo-summary.json'}")


def _shutdown(ctx: DemoContext) -> None:
    if ctx.ray_context is not None:
        import ray

        ray.shutdown()
    if ctx.store is not None:
        ctx.store.close()


