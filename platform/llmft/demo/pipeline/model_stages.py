"""Demo stages from curated data to a promoted model: train on Ray Train, register, evaluate, promote."""

from __future__ import annotations

from llmft.demo.pipeline.conductor import ACTOR, SPECS, TENANT, DemoContext, say, spec, stage

MODEL = "support"
APPROVER = "demo-approver"  # production promotion is an approver's act (the control plane enforces the role)


def train_and_register(ctx: DemoContext, run_name: str, overrides: list[str]) -> dict:
    """One training job on Ray Train (2 workers), released into the registry as a new version."""
    from llmft.config import TrainingSpec
    from llmft.registry import ModelRegistry
    from llmft.jobs import run_job
    from llmft.train.release import release_dir

    curated = ctx.results["curate"]["snapshot"]["dataset"]
    train_spec = spec("train-lora.yaml", TrainingSpec, [f"name={run_name}", f"dataset={curated}", *overrides])
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
    """Candidate vs base through HTTP on the held-out suites; the report is attached to the version."""
    from llmft.config import EvalSpec, spec_from_dict
    from llmft.config.base import read_yaml
    from llmft.evaluation.runner import run_evaluation

    data = read_yaml(SPECS / "eval-support.yaml")
    for suite in data["suites"]:  # a demo-sized slice of every suite (the spec's paths are relative to home)
        suite["max_prompts"] = 12
    # The 4M-parameter tiny model cannot write JSON at all; a real base is held to the spec's 0.9.
    eval_spec = spec_from_dict(EvalSpec, data, [f"model={MODEL}:{version}", "max_new_tokens=24",
                                                "gates.json_valid_min=0.0"])
    report = run_evaluation(eval_spec, registry=ctx.registry, spec_dir=ctx.settings.home, actor=ACTOR)
    figures = report["figures"]
    say(f"{MODEL}:{version} vs base: {'PASSED' if report['passed'] else 'BLOCKED'} gates; "
        + ", ".join(f"{k} {v:.3f}" for k, v in figures.items() if isinstance(v, (int, float))))
    for reason in report["reasons"]:
        say(f"  blocked by {reason}")
    say(f"eval report: {report['files']['html']}")
    return {"passed": report["passed"], "reasons": report["reasons"], "figures": figures,
            "gates": report.get("gates"), "report": report["files"]["html"]}


@stage("train v1")
def train_v1(ctx: DemoContext) -> dict:
    return train_and_register(ctx, "support-v1", ["optim.max_steps=40"])


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
