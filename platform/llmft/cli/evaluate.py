"""`llmft eval`: evaluate a registered version against its base through HTTP; gates decide promotion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from llmft.cli.output import (ActorOpt, DryRunOpt, JsonOpt, OverridesArg, SpecOpt, actor_name, emit, fail,
                              handles_errors, load_cli_spec)

app = typer.Typer(no_args_is_help=True, help="Evaluate a candidate against its base; gates decide promotion.")
TenantOpt = typer.Option(..., "--tenant", envvar="LLMFT_TENANT", help="Tenant that owns the model.")


def _verdict(summary: dict) -> str:
    head = "PASSED" if summary["passed"] else "BLOCKED"
    figs = ", ".join(f"{k}={v:.3f}" for k, v in summary["figures"].items() if isinstance(v, (int, float)))
    lines = [f"{head} {summary['candidate']} vs {summary['base']} ({figs}; {summary['prompts_per_s']:.2f} prompts/s)"]
    lines += [f"  - {r}" for r in summary["reasons"]]
    if summary.get("files"):
        lines.append(f"  report: {summary['files']['html']}")
    return "\n".join(lines)


@app.command("run")
@handles_errors
def run(spec: Path = SpecOpt, overrides: Optional[List[str]] = OverridesArg, dry_run: bool = DryRunOpt,
        out: Optional[Path] = typer.Option(None, "--out", help="Directory for report.json / report.html."),
        strict: bool = typer.Option(False, "--strict", help="Exit with status 3 when a gate fails."),
        actor: Optional[str] = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Run the spec's suites on base and candidate, judge, apply the gates, attach the report."""
    from llmft.config import EvalSpec
    from llmft.evaluation.suites import load_suites

    parsed = load_cli_spec(spec, overrides, EvalSpec)
    suites = load_suites(parsed, spec.parent)  # a missing or malformed suite fails here, before anything runs
    if dry_run:
        from llmft.evaluation.runner import check_version
        from llmft.registry import ModelRegistry

        registry = ModelRegistry()
        rec = check_version(registry, parsed.tenant, parsed.model, "model")
        plan = {"candidate": rec.ref, "base": parsed.baseline or parsed.base_model or rec.base_model,
                "suites": [s.describe() for s in suites], "gates": parsed.gates.model_dump(),
                "judge": parsed.judge.type, "endpoints": "given" if parsed.candidate_endpoint else "local engine",
                "attach": parsed.attach}
        emit(plan, as_json, f"would evaluate {rec.ref} on {sum(len(s.items) for s in suites)} prompts "
                            f"({', '.join(s.name for s in suites)}); nothing run")
        return
    from llmft.jobs import run_job
    from llmft.store import Store

    job = run_job("evaluation", parsed, Store(), actor_name(actor), options={"spec_dir": spec.parent, "out_dir": out})
    summary = {**job["result"], "job_id": job["id"]}
    emit(summary, as_json, _verdict(summary))
    if strict and not summary["passed"]:
        raise typer.Exit(3)


@app.command("report")
@handles_errors
def report(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."), tenant: str = TenantOpt,
           index: Optional[int] = typer.Option(None, "--index", help="Which evaluation (default: the latest)."),
           as_json: bool = JsonOpt) -> None:
    """Show an evaluation attached to a version (verdict, gate table, report files)."""
    from llmft.registry import ModelRegistry

    rec = ModelRegistry().resolve(tenant, ref)
    evals = rec.lineage.get("evaluations") or []
    if not evals:
        fail(f"{rec.ref}: no evaluation attached")
    if index is not None and not 1 <= index <= len(evals):
        fail(f"{rec.ref}: --index must be between 1 and {len(evals)}")
    entry = evals[(index or len(evals)) - 1]
    from llmft import storage

    data = json.loads(storage.fetch(entry["uri"]).read_text())  # object storage: copied into the local cache
    out = {"ref": rec.ref, **entry, "figures": data.get("figures"), "checks": data["gates"]["checks"],
           "throughput": data.get("throughput", {}).get("prompts_per_s")}
    lines = [f"{rec.ref} evaluation {entry['index']}: {'PASSED' if entry['passed'] else 'BLOCKED'} ({entry['at']})"]
    lines += [f"  {c['status']:<7} {c['detail'] if c['value'] is not None else c['name'] + ': ' + c['detail']}"
              for c in data["gates"]["checks"]]
    lines.append(f"  json: {entry['uri']}" + (f"\n  html: {entry['html_uri']}" if entry.get("html_uri") else ""))
    emit(out, as_json, "\n".join(lines))


@app.command("checkpoints")
@handles_errors
def checkpoints(dirs: List[Path] = typer.Argument(..., help="Adapter checkpoint directories."),
                spec: Path = SpecOpt, base: str = typer.Option(..., "--base", help="Base model ref the checkpoints share."),
                out: Optional[Path] = typer.Option(None, "--out", help="Write one report per checkpoint here."),
                as_json: bool = JsonOpt) -> None:
    """Rank checkpoints on the spec's suites (gates first, then win-rate): pick the best, not the last."""
    from llmft.config import EvalSpec
    from llmft.evaluation.runner import evaluate_checkpoints

    parsed = load_cli_spec(spec, [], EvalSpec)
    result = evaluate_checkpoints(parsed, dirs, base, spec_dir=spec.parent, out_dir=out)
    lines = [f"best: {result['best']}"] + [
        f"  {'pass' if e['passed'] else 'FAIL'} win={e['win_rate'] or 0:.3f} {e['checkpoint']}"
        for e in result["ranking"]]
    emit(result, as_json, "\n".join(lines))
