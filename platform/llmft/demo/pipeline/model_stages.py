"""Demo stages from curated data to a promoted model: train on Ray Train, register, evaluate, promote.

The headline adapter is `triage`: a ticket in, a JSON verdict out (product, category,
priority, needs_human), a task the tiny base cannot do and learns visibly on 2 CPU cores.
"""

from __future__ import annotations

from llmft.demo.pipeline.conductor import ACTOR, TENANT, DemoContext, say, spec, stage

MODEL = "triage"
TRIAGE_FIELDS = ("product", "category", "priority", "needs_human")
APPROVER = "demo-approver"  # production promotion is an approver's act (the control plane enforces the role)


def train_and_register(ctx: DemoContext, run_name: str, overrides: list[str]) -> dict:
    """One training job on Ray Train (2 workers), released into the registry as a new version."""
    from llmft.config import TrainingSpec
    from llmft.registry import ModelRegistry
    from llmft.jobs import run_job
    from llmft.train.release import release_dir

    curated = ctx.results["curate"]["triage"]["snapshot"]["dataset"]
    train_spec = spec("train-triage.yaml", TrainingSpec, [f"name={run_name}", f"dataset={curated}", *overrides])
    job = run_job("training", train_spec, ctx.store, ACTOR)
    outcome = job["result"]["outcome"]
    losses = [p["loss"] for p in outcome.get("loss_curve") or [] if "loss" in p]
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


def _fmt(values: list) -> str:
    return f"{values[0]:.3f}" if values else "?"


def evaluate(ctx: DemoContext, version: int) -> dict:
    """Candidate vs base through HTTP on held-out tickets (and the general, red-team and canary suites), every
    gate on; prints JSON validity and per-field accuracy of base and candidate; the report is attached."""
    from llmft.config import EvalSpec
    from llmft.evaluation.runner import run_evaluation

    # the spec's suite paths are relative to LLMFT_HOME, where the sample data was written
    eval_spec = spec("eval-triage.yaml", EvalSpec, [f"model={MODEL}:{version}"])
    report = run_evaluation(eval_spec, registry=ctx.registry, spec_dir=ctx.settings.home, actor=ACTOR)
    figures = report["figures"]
    triage = triage_figures(report)
    for side in ("base", "candidate"):
        label = "base" if side == "base" else f"{MODEL}:{version}"
        row = triage[side]
        say(f"  {label:<10} held-out tickets {row['prompts']}: JSON valid {_pct(row['json_valid'])}; "
            + ", ".join(f"{f} {_pct(row['fields'].get(f))}" for f in TRIAGE_FIELDS)
            + f"  (majority class: " + ", ".join(f"{_pct(triage['majority'].get(f))}" for f in TRIAGE_FIELDS) + ")"
            * (side == "base"))
    say(f"{MODEL}:{version} vs base: {'PASSED' if report['passed'] else 'BLOCKED'} gates; "
        + ", ".join(f"{k} {v:.3f}" for k, v in figures.items() if isinstance(v, (int, float))))
    for reason in report["reasons"]:
        say(f"  blocked by {reason}")
    say(f"eval report: {report['files']['html']}")
    return {"passed": report["passed"], "reasons": report["reasons"], "figures": figures, "triage": triage,
            "gates": report.get("gates"), "report": report["files"]["html"]}


def triage_figures(report: dict, suite: str = "triage") -> dict:
    """JSON validity and per-field accuracy of base and candidate on the held-out tickets, with the share of the
    most common label per field (what always answering the majority class would score)."""
    import json
    from collections import Counter

    entry = report["suites"][suite]
    rows = [json.loads(line) for line in open(entry["path"], encoding="utf-8") if line.strip()]
    rows = rows[:entry["prompts"]]
    majority = {f: Counter(str(r[f]) for r in rows).most_common(1)[0][1] / len(rows) for f in TRIAGE_FIELDS}
    out: dict = {"majority": majority}
    for side in ("base", "candidate"):
        agg = entry[side]
        out[side] = {"prompts": agg["prompts"], "json_valid": agg.get("json_valid_rate"),
                     "fields": dict(agg.get("field_accuracy") or {})}
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


# v1 is the shipped spec as is; v2 trains longer (the deployment flips to it, then rolls back).
V1_OVERRIDES: tuple[str, ...] = ()
V2_OVERRIDES: tuple[str, ...] = ("optim.max_steps=300",)


@stage("train v1")
def train_v1(ctx: DemoContext) -> dict:
    return train_and_register(ctx, "triage-v1", list(V1_OVERRIDES))


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
