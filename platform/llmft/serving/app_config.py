"""Arguments of the serving application and the declarative Serve config built from them.

The Serve config is the one object every change goes through (`serve deploy`, the Serve REST
API): traffic changes touch only the gateway's `user_config`, so no replica restarts. Ray-free,
so the rollout layer builds configs without importing Serve (`llmft.serving.app` does).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from llmft.config.base import StrictModel
from llmft.config.deployment import VllmOptions
from llmft.errors import SpecError

IMPORT_PATH = "llmft.serving.app:build_app"  # inside the package: an installed llmft is enough
ENV_VARS = ("LLMFT_HOME", "LLMFT_DB_URL", "LLMFT_STORAGE", "LLMFT_MLFLOW_URI")


class AppArgs(StrictModel):
    base_model: str = Field(..., description="Base model ref (local dir or built-in name) every replica loads once.")
    base_name: str | None = Field(None, description="Public model name of the base (defaults to its recorded name).")
    adapter_source: str = Field("registry", description="`registry` or `dir:<root>` (a DirectoryAdapterSource).")
    db_url: str | None = Field(None, description="Metadata store URL for API keys (default: LLMFT settings).")
    max_adapters: int = Field(8, ge=1, description="Adapters resident per replica (the engine's adapter LRU).")
    max_batch_size: int = Field(8, ge=1, description="@serve.batch max batch size.")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="@serve.batch wait for a fuller batch.")
    shadow_log: str | None = Field(None, description="JSONL file for shadow comparisons (default under LLMFT home).")
    replicas: int = Field(1, ge=1, description="Inference replicas per colour.")
    replica_cpus: float = Field(0.5, ge=0, description="CPUs reserved per inference replica.")
    replica_gpus: float = Field(0, ge=0, description="GPUs per inference replica (1 on GPU clusters).")
    route_by_adapter: bool = Field(
        False, description="Route each request to a replica that already holds its adapter (Serve multiplexed "
                           "routing). Serve then batches per adapter; off, batches mix adapters in one pass. "
                           "Turn on with several replicas per colour and more adapters than one replica holds.")
    engine: Literal["peft", "vllm"] = Field("peft", description="Inference engine of every replica.")
    vllm: VllmOptions = Field(default_factory=VllmOptions, description="vLLM engine options (engine: vllm).")

    def public_base_name(self) -> str:
        """The name callers use for the shared base: given, else the name recorded in its manifest."""
        if self.base_name:
            return self.base_name
        from llmft.manifest import MANIFEST_NAME, read_manifest
        from llmft.models.loading import BUILTIN, resolve_base

        if self.base_model in BUILTIN:
            return self.base_model
        path = resolve_base(self.base_model)
        if (path / MANIFEST_NAME).is_file():
            return read_manifest(path).meta.get("name") or path.name
        return path.name


def make_engine(args: AppArgs) -> Any:
    """The replica's engine, as `args.engine` names it (vLLM imported only when chosen)."""
    if args.engine == "vllm":
        from llmft.serving.engine.vllm_engine import VllmEngine

        o = args.vllm
        return VllmEngine(args.base_model, max_adapters=args.max_adapters, max_loras=o.max_loras,
                          max_lora_rank=o.max_lora_rank, dtype=o.dtype, kv_cache_gib=o.kv_cache_gib,
                          max_num_seqs=o.max_num_seqs, base_name=args.public_base_name())
    from llmft.serving.engine.peft_engine import PeftEngine

    return PeftEngine(args.base_model, max_adapters=args.max_adapters, base_name=args.public_base_name())


def make_source(spec: str) -> Any:
    """The adapter source named by `adapter_source`."""
    if spec.startswith("dir:"):
        from llmft.serving.engine.adapters import DirectoryAdapterSource

        return DirectoryAdapterSource(spec[4:])
    if spec == "registry":
        from llmft.serving.engine.registry_source import RegistryAdapterSource

        return RegistryAdapterSource()
    raise SpecError(f"adapter_source {spec!r}: expected 'registry' or 'dir:<root>'")


def serve_config(app_name: str, args: AppArgs, traffic: dict, *, host: str = "127.0.0.1", port: int = 8000,
                 route_prefix: str = "/", extra_env: dict[str, str] | None = None) -> dict:
    """A Serve config (the `serve deploy` schema) for one llmft application; the replicas get this
    process's LLMFT_* settings (llmft itself must be installed in the cluster's Python)."""
    import os

    env = {var: os.environ[var] for var in ENV_VARS if os.environ.get(var)}
    if "://" in env.get("LLMFT_STORAGE", "") and not env["LLMFT_STORAGE"].startswith("file://"):
        from llmft.credentials import storage_env  # replicas fetch registry objects from the bucket

        env.update(storage_env())
    env.update(extra_env or {})
    colour = {"num_replicas": args.replicas,
              "ray_actor_options": {"num_cpus": args.replica_cpus, "num_gpus": args.replica_gpus}}
    return {
        "http_options": {"host": host, "port": port},
        "applications": [{
            "name": app_name,
            "route_prefix": route_prefix,
            "import_path": IMPORT_PATH,
            "args": args.model_dump(mode="json"),
            "runtime_env": {"env_vars": env},
            "deployments": [
                {"name": "Gateway", "user_config": {"traffic": traffic}},
                {"name": "blue", **colour},
                {"name": "green", **colour},
            ],
        }],
    }


def with_traffic(config: dict, app_name: str, traffic: dict) -> dict:
    """The same config with only the gateway's traffic changed: a flip that restarts nothing."""
    import copy

    out = copy.deepcopy(config)
    for app in out["applications"]:
        if app["name"] == app_name:
            for dep in app["deployments"]:
                if dep["name"] == "Gateway":
                    dep["user_config"] = {**dep.get("user_config", {}), "traffic": traffic}
                    return out
    raise SpecError(f"serve config has no application {app_name!r} with a Gateway deployment")
