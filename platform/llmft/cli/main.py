"""Entry point of the `llmft` command; each stage's group lives in its own module."""

from __future__ import annotations

import typer

from llmft.cli import api, audit, cluster, data, deploy, evaluate, keys, models, serve, sweep, tenants, train

app = typer.Typer(
    name="llmft",
    help="Fine-tune open-weight LLMs on private data with Ray, and ship the result safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# group name -> (module, help): plain imports, so the import graph shows every edge. The modules
# import heavy libraries lazily, so `llmft --help` stays fast.
GROUPS = {
    "cluster": (cluster, "The local Ray head commands share (up, down, status)."),
    "tenants": (tenants, "Tenants and their privacy budgets."),
    "keys": (keys, "API keys (printed once, stored hashed)."),
    "audit": (audit, "The append-only, hash-chained audit log."),
    "data": (data, "Register, curate, dedupe and erase datasets."),
    "models": (models, "Base models and registered model versions."),
    "train": (train, "Fine-tuning jobs on Ray Train."),
    "sweep": (sweep, "Hyper-parameter sweeps on Ray Tune."),
    "eval": (evaluate, "Evaluate a candidate against its base; gates decide promotion."),
    "serve": (serve, "Serve applications on Ray Serve."),
    "deploy": (deploy, "Blue/green deployments, canary, shadow and rollback."),
    "api": (api, "The REST control plane: serve it, call it."),
}

for _name, (_module, _help) in GROUPS.items():
    app.add_typer(_module.app, name=_name, help=_help)


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors.")) -> None:
    if debug:
        import os

        os.environ["LLMFT_DEBUG"] = "1"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
