"""Spec for serving adapters on a shared base with blue/green, canary and shadow traffic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmft.config.base import NAME_PATTERN, StrictModel


class TrafficSpec(StrictModel):
    mode: Literal["blue_green", "canary", "shadow"] = Field("blue_green", description="Traffic policy mode.")
    live: Literal["blue", "green"] = Field("blue", description="Colour that answers requests.")
    canary_percent: float = Field(0.0, ge=0, le=100, description="Share of users sent to the standby (canary).")

    @model_validator(mode="after")
    def _canary(self) -> "TrafficSpec":
        if self.mode == "canary" and not 0 < self.canary_percent < 100:
            raise ValueError("canary mode needs 0 < canary_percent < 100")
        return self


class SloSpec(StrictModel):
    error_rate_max: float = Field(0.02, ge=0, le=1, description="Roll back above this error rate.")
    p95_latency_ms_max: float = Field(2000, gt=0, description="Roll back above this p95 latency.")
    quality_min: float = Field(0.0, ge=0, le=1, description="Roll back below this online quality probe score.")
    window_s: float = Field(30, gt=0, description="Sliding window for SLO evaluation.")
    min_requests: int = Field(20, ge=1, description="Requests needed in the window before judging.")


class HttpSpec(StrictModel):
    host: str = Field("127.0.0.1", description="Serve proxy bind address.")
    port: int = Field(8000, ge=1, le=65535, description="Serve proxy port (outside Ray's worker port range).")

    @model_validator(mode="after")
    def _port(self) -> "HttpSpec":
        if 10002 <= self.port <= 19999:
            raise ValueError("port lies in Ray's worker port range 10002-19999")
        return self


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks


class VllmOptions(StrictModel):
    """Options of the vLLM engine (`engine: vllm`)."""

    max_loras: int = Field(4, ge=1, description="Adapters vLLM runs in one batch (its LoRA slots).")
    max_lora_rank: int = Field(16, description="Largest LoRA rank served (1, 8, 16, 32, 64, 128, 256, 320, 512); "
                                               "adapters above it are refused at deploy time.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights and activations dtype (bfloat16 on GPUs and on CPUs with AVX-512 BF16/AMX).")
    kv_cache_gib: float | None = Field(2.0, gt=0, description="KV cache size in GiB (null: vLLM's default, on GPUs "
                                                              "its gpu_memory_utilization share).")
    max_num_seqs: int = Field(64, ge=1, description="Sequences in vLLM's running batch.")

    @model_validator(mode="after")
    def _rank(self) -> "VllmOptions":
        if self.max_lora_rank not in VLLM_LORA_RANKS:
            raise ValueError(f"max_lora_rank={self.max_lora_rank}: vLLM accepts {', '.join(map(str, VLLM_LORA_RANKS))}")
        return self


class DeploymentSpec(StrictModel):
    kind: Literal["deployment"] = Field("deployment", description="Spec type tag.")
    name: str = Field(..., pattern=NAME_PATTERN, description="Deployment (Serve application) name.")
    tenant: str = Field(..., pattern=NAME_PATTERN, description="Owning tenant.")
    base_model: str = Field(..., min_length=1, description="Shared base model ref.")
    model: str = Field(..., min_length=1, description="Adapter version to deploy: `name:version` or `name@alias`.")
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, description="Traffic policy.")
    slo: SloSpec = Field(default_factory=SloSpec, description="SLOs watched for automatic rollback.")
    smoke_prompts: list[str] = Field(default_factory=lambda: ["Hello"], description="Prompts run before a flip.")
    replicas: int = Field(1, ge=1, description="Inference replicas per colour.")
    max_adapters_per_replica: int = Field(8, ge=1, description="LRU size of loaded adapters per replica.")
    max_batch_size: int = Field(8, ge=1, description="@serve.batch max batch size.")
    route_by_adapter: bool = Field(False, description="Route requests to replicas already holding their adapter "
                                                      "(Serve multiplexed routing; batches then hold one adapter).")
    http: HttpSpec = Field(default_factory=HttpSpec, description="Serve HTTP options.")
    adapter_source: str = Field("registry", description="Where adapters come from: `registry` or `dir:<root>`.")
    dashboard_url: str = Field("http://127.0.0.1:8265", description="Ray dashboard (Serve REST API) of the cluster.")
    shadow_s: float = Field(0.0, ge=0, description="Seconds of shadow traffic on the standby before a flip (0: none).")
    canary_s: float = Field(0.0, ge=0, description="Seconds of canary (traffic.canary_percent) before a flip (0: none).")
    watch_s: float = Field(0.0, ge=0, description="Seconds the SLO watcher guards the new colour after a flip.")
    health_timeout_s: float = Field(300.0, gt=0, description="How long the standby may take to pass health + smoke.")
    replica_cpus: float = Field(1.0, ge=0, description="CPUs per inference replica.")
    replica_gpus: float = Field(0.0, ge=0, description="GPUs per inference replica (1 on GPU clusters).")
    engine: Literal["peft", "vllm"] = Field("peft", description="Inference engine: `peft` (transformers + PEFT) or "
                                                                "`vllm` (continuous batching, multi-LoRA; GPU clusters).")
    vllm: VllmOptions = Field(default_factory=VllmOptions, description="vLLM engine options (with engine: vllm).")
