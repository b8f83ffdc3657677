"""Demo stages of the foundation: the platform itself, the tiny base model, the sample data."""

from __future__ import annotations

from llmft.demo.pipeline.conductor import ACTOR, TENANT, DemoContext, settings_env, stage


@stage("platform")
def start_platform(ctx: DemoContext) -> dict:
    """Open the metadata store, create the demo tenant and start (or join) a local Ray."""
    import os

    from llmft.jobs.cluster import init_local_ray, use_token_auth

    use_token_auth()  # before Ray is imported: a head with token auth on refuses clients without it
    import ray

    from llmft.errors import ConflictError
    from llmft.store import Store

    ctx.store = Store(ctx.settings.db_url)
    try:
        ctx.store.create_tenant(TENANT, ACTOR)
    except ConflictError:
        pass  # a re-run keeps the tenant (and its privacy ledger)
    # The cluster RAY_ADDRESS names, else a Ray of the demo's own (`address="local"`: a head some
    # other command left running on this machine is never joined by accident).
    address = os.environ.get("RAY_ADDRESS") or "local"
    # Logical CPUs above the 2 physical ones: the serving replicas sit mostly idle while the
    # second model trains, and without the headroom Ray would queue training behind them.
    options = {"ignore_reinit_error": True, "log_to_driver": True,
               "runtime_env": {"env_vars": settings_env(ctx.settings)}}
    ctx.ray_context = (init_local_ray(num_cpus=4, **options) if address == "local"
                       else ray.init(address=address, **options))
    dashboard = ctx.ray_context.dashboard_url
    return {"tenant": TENANT, "db": ctx.settings.db_url,
            "ray_dashboard": f"http://{dashboard}" if dashboard else None}


@stage("base model")
def build_base(ctx: DemoContext) -> dict:
    """Build (or reuse) the tiny Llama base and record its identity: name + sha256 of its files."""
    from llmft.models import ensure_base, model_identity

    path = ensure_base("tiny")  # the demo's explicit build; every later stage only resolves it
    identity = model_identity(path)
    ctx.store.audit.append(ACTOR, None, "base.ready", f"base/{identity['name']}", identity)
    return {"path": str(path), **identity}


@stage("sample data")
def generate_data(ctx: DemoContext) -> dict:
    """Write the seeded private sample dataset (tickets with planted PII, duplicates, junk)."""
    from llmft.demo.samples import generate_sample_dataset

    out = ctx.settings.home / "data" / "sample"  # where the shipped specs' relative paths point
    paths = generate_sample_dataset(out, seed=ctx.seed, n_tickets=ctx.n_tickets)
    return {name: str(path) for name, path in paths.items()}
