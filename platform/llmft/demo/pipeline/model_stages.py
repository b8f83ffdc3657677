"""Demo stages from curated data to a promoted model: train on Ray Train, register, evaluate, promote.

The model is the triage adapter (ticket -> JSON verdict): a task whose answers can be checked
field by field, so what the fine-tuning did shows as figures, and the gates can refuse a version
that writes valid JSON with the wrong labels.
"""

from __future__ import annotations

from llmft.demo.pipeline.conductor import ACTOR, TENANT, DemoContext, say, spec, stage

MODEL = "triage"
APPROVER = "demo-approver"  # production promotion is an approver's act (the control plane enforces the role)


def train_and_register(ctx: DemoContext, run_name: str, overrides: list[str]) -> dict:
    """One training job on Ray Train, released into the registry as a new version."""
    from llmft.config import TrainingSpec
    from llmft.registry import ModelRegistry
    from llmft.jobs import run_job
    from llmft.train.release import release_dir

    curated = ctx.results["curate"]["triage"]["snapshot"]["dataset"]
    train_spec = spec("train-triage.yaml", TrainingSpec, [f"name={run_name}", f"dataset={curated}", *overrides,
                                                          *ctx.train_overrides])
    job = run_job("training", train_spec, ctx.store, ACTOR)
    outcome = job["result"]["outcome"]
    losses = train_losses(ctx, job["result"]["mlflow_run_id"])
    say(f"{run_name}: {outcome['steps']} steps, train loss {_fmt(losses[:1])} -> {_fmt(losses[-1:])}, "
        f"val_loss {outcome['val_loss']:.3f}, {outcome['tokens_per_s']:.0f} tokens/s, job {job['id']}, "
        f"MLflow run {job['result']['mlflow_run_id']}")
    ctx.registry = ctx.registry or ModelRegistry(store=ctx.store)
    source, lineage = release_dir(job, ctx.store, ctx.settings.storage / "releases" / run_name)
    version = ctx.registry.register(TENANT, MODEL, source, actor=ACTOR, lineage=lineage)
    ctx.registry.promote(TENANT, f"{MODEL}:{version.version}", "candidate", reason=f"trained by {run_name}",
                         actor=ACTOR)
    say(f"registered {MODEL}:{version.version} (semver {version.semver}), alias candidate")
    return {"job": job["id"], "version": version.version, "semver": version.semver, "steps": outcome["steps"],
            "val_loss": outcome["val_loss"], "tokens_per_s": outcome["tokens_per_s"],
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "lineage": lineage}


def train_losses(ctx: DemoContext, run_id: str) -> list[float]:
    """The run's training loss by step, from MLflow (the tracker every worker step logs to)."""
    from llmft.train.tracking import mlflow_client

    history = mlflow_client(ctx.settings.mlflow_uri).get_metric_history(run_id, "loss")
    by_step = {m.step: m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))}
    return [by_step[k] for k in sorted(by_step)]


def _fmt(values: list) -> str:
    return f"{values[0]:.3f}" if values else "?"


def evaluate(ctx: DemoContext, version: int) -> dict:
    """Candidate vs base through HTTP on the held-out suites (every gate on); the report is attached."""
    from llmft.config import EvalSpec
    from llmft.evaluation.runner import run_evaluation

    eval_spec = spec("eval-triage.yaml", EvalSpec, [f"model={MODEL}:{version}"])
    report = run_evaluation(eval_spec, registry=ctx.registry, spec_dir=ctx.settings.home, actor=ACTOR)
    triage = report["suites"]["triage"]
    table = {side: triage_figures(triage[side]) for side in ("base", "candidate")}
    majority = majority_accuracy(ctx)
    say(f"held-out tickets ({triage['prompts']}, customers never trained on):")
    say(f"  {'':<12}{'valid JSON':>11}" + "".join(f"{f:>13}" for f in majority))
    for side, label in (("base", "base"), ("candidate", f"{MODEL}:{version}")):
        say(f"  {label:<12}{table[side]['json_valid']:>11.2f}"
            + "".join(f"{table[side]['fields'].get(f, 0.0):>13.2f}" for f in majority))
    say(f"  {'majority':<12}{'':>11}" + "".join(f"{v:>13.2f}" for v in majority.values()))
    say(f"{MODEL}:{version}: {'PASSED' if report['passed'] else 'BLOCKED'} "
        f"({sum(c['status'] == 'passed' for c in report['gates']['checks'])} gates passed, "
        f"{sum(c['status'] == 'failed' for c in report['gates']['checks'])} failed)")
    for reason in report["reasons"]:
        say(f"  blocked by {reason}")
    say(f"eval report: {report['files']['html']}")
    return {"passed": report["passed"], "reasons": report["reasons"], "figures": report["figures"],
            "gates": report.get("gates"), "report": report["files"]["html"], "triage": table,
            "majority": majority}


def triage_figures(side: dict) -> dict:
    """JSON validity and per-field accuracy of one side on the triage suite."""
    return {"json_valid": side.get("json_valid_rate") or 0.0, "fields": side.get("field_accuracy") or {}}


def majority_accuracy(ctx: DemoContext) -> dict[str, float]:
    """What always answering each field's most common held-out value would score (the floor to beat)."""
    import json
    from collections import Counter

    from llmft.demo.triage import FIELDS

    path = ctx.settings.home / "data" / "sample" / "eval" / "triage.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {f: Counter(str(r[f]) for r in rows).most_common(1)[0][1] / len(rows) for f in FIELDS}


@stage("train v1")
def train_v1(ctx: DemoContext) -> dict:
    return train_and_register(ctx, "triage-v1", [])


@stage("evaluate v1")
def evaluate_v1(ctx: DemoContext) -> dict:
    return evaluate(ctx, ctx.results["train v1"]["version"])


@stage("promote v1")
def promote_v1(ctx: DemoContext) -> dict:
    """staging then production, each allowed only because the attached eval report passed its gates."""
    ref = f"{MODEL}:{ctx.results['train v1']['version']}"
    ctx.registry.promote(TENANT, ref, "staging", reason="gates passed", actor=ACTOR)
    ctx.registry.promote(TENANT, ref, "production", reason="first release", actor=APPROVER)
    say(f"{ref} is staging and production")
    return {"production": ref}
