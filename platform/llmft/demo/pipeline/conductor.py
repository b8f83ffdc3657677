"""The demo's machinery: a context that stages share, the ordered stage list, and the runner.

Each stage reads what earlier stages left in the context and adds its own results,
so a stage that lands later registers itself without touching the others.
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
# Package data, so a non-editable install runs the demo. They are byte-for-byte copies of the
# user-facing examples in jobs/specs/ and serve_apps/ (tests/unit/test_layout.py keeps them equal).
SPECS = Path(__file__).resolve().parents[1] / "specs"


def spec(name: str, expect: type, overrides: list[str]) -> Any:
    """A shipped example spec with the demo's overrides (the same files users start from)."""
    from llmft.config import load_spec

    return load_spec(SPECS / name, overrides, expect=expect)


@dataclass
class DemoContext:
    settings: Settings
    seed: int = 0
    n_tickets: int = 600
    train_overrides: list[str] = field(default_factory=list)  # e.g. ["optim.max_steps=40"] for a quick walk-through
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    store: Any = None
    registry: Any = None
    ray_context: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


Stage = Callable[[DemoContext], dict]
STAGES: list[tuple[str, Stage]] = []


def stage(name: str) -> Callable[[Stage], Stage]:
    def register(fn: Stage) -> Stage:
        STAGES.append((name, fn))
        return fn

    return register


def say(message: str) -> None:
    print(f"[llmft demo] {message}", flush=True)


def settings_env(settings: Settings) -> dict[str, str]:
    """Ray workers are separate processes: hand them the same state locations as the driver."""
    return {"LLMFT_HOME": str(settings.home), "LLMFT_DB_URL": settings.db_url,
            "LLMFT_MLFLOW_URI": settings.mlflow_uri, "LLMFT_STORAGE": settings.storage_uri}


def run_demo(seed: int = 0, n_tickets: int = 600, only: list[str] | None = None) -> DemoContext:
    import os

    settings = Settings.from_env().ensure_dirs()
    os.environ.update(settings_env(settings))  # every process the demo starts sees the same state
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


