"""Specs for fine-tuning runs and hyper-parameter sweeps."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from llmft.config.base import NAME_PATTERN, StrictModel


class Method(str, Enum):
    lora = "lora"
    qlora = "qlora"
    full = "full"
    prompt_tuning = "prompt_tuning"


class Strategy(str, Enum):
    ddp = "ddp"
    deepspeed = "deepspeed"
    fsdp = "fsdp"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class LoraSpec(StrictModel):
    r: int = Field(8, ge=1, le=1024, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Module name suffixes that receive adapters; each must exist in the base model.",
    )
    modules_to_save: list[str] = Field(
        default_factory=list,
        description="Modules trained in full and saved with the adapter (e.g. embed_tokens, lm_head): a small "
        "base whose embeddings carry little structure learns label decisions only with a trainable input "
        "embedding. Each must exist in the base model; such adapters serve on the PEFT engine.",
    )


class QuantizationSpec(StrictModel):
    bits: Literal[4, 8] = Field(4, description="Weight bits for QLoRA (bitsandbytes).")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    double_quant: bool = Field(True, description="Quantise the quantisation constants too.")
    compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "bfloat16", description="Matmul dtype; float32 on CPUs without native bf16."
    )


class PromptTuningSpec(StrictModel):
    num_virtual_tokens: int = Field(16, ge=1, le=512, description="Learned soft-prompt length.")
    init_text: str | None = Field(None, description="Initialise the soft prompt from this text's embeddings.")


class OptimSpec(StrictModel):
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up linearly.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="LR decay after warm-up.")
    batch_size: int = Field(8, ge=1, description="Sequences per worker per micro-step.")
    grad_accum: int = Field(1, ge=1, description="Micro-steps per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    epochs: float = Field(1.0, gt=0, description="Passes over the train split.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")


class DataLoadingSpec(StrictModel):
    max_seq_len: int = Field(256, ge=8, description="Tokens per sequence (packed block size when packing).")
    packing: bool = Field(False, description="Pack several examples per sequence with attention kept apart.")
    truncation: Literal["cut_prompt", "drop"] = Field(
        "cut_prompt", description="A row longer than max_seq_len keeps its whole answer: `cut_prompt` removes "
                                  "prompt tokens from the left, `drop` leaves the row out; the job's events "
                                  "count both (a row whose answer alone does not fit is always dropped).")
    validation_every: int = Field(50, ge=1, description="Evaluate validation loss every N optimizer steps.")


class DistributedSpec(StrictModel):
    strategy: Strategy = Field(Strategy.ddp, description="Data-parallel strategy.")
    zero_stage: Literal[2, 3] = Field(2, description="DeepSpeed ZeRO stage (strategy=deepspeed).")
    offload_optimizer: bool = Field(False, description="DeepSpeed: offload optimizer state to CPU.")


class ResourcesSpec(StrictModel):
    num_workers: int = Field(2, ge=1, description="Ray Train workers.")
    use_gpu: bool = Field(False, description="One GPU per worker (NCCL) instead of CPU workers (gloo).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker.")
    torch_threads: int = Field(1, ge=1, description="Intra-op threads per worker (1 is steadiest on small CPUs).")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_SPREAD"] = Field(
        "PACK", description="Where Ray places the workers: PACK fills a node first; SPREAD (or STRICT_SPREAD) puts "
        "them on different nodes, so one node's loss costs fewer workers (the run resumes from its checkpoint).")


class CheckpointSpec(StrictModel):
    every_n_steps: int = Field(50, ge=1, description="Write a checkpoint every N optimizer steps (and at the end).")
    keep_last: int = Field(2, ge=1, description="Checkpoints kept besides the best one.")
    storage_path: str | None = Field(None, description="Ray Train storage_path (local dir or pyarrow URI).")


class PrivacySpec(StrictModel):
    enabled: bool = Field(False, description="Train with DP-SGD (Opacus).")
    target_epsilon: float = Field(8.0, gt=0, description="Privacy budget this run may spend.")
    delta: float = Field(1e-5, gt=0, lt=1, description="DP delta.")
    max_grad_norm: float = Field(1.0, gt=0, description="Per-sample gradient clipping norm.")


class GuardSpec(StrictModel):
    loss_spike_factor: float = Field(5.0, gt=1, description="Loss above this x running median counts as divergence.")
    grad_norm_max: float = Field(1e3, gt=0, description="Pre-clip gradient norm above this counts as divergence.")
    window: int = Field(20, ge=3, description="Steps in the running median.")
    lr_backoff: float = Field(0.5, gt=0, lt=1, description="LR multiplier after one rollback.")


class TrainingSpec(StrictModel):
    kind: Literal["training"] = Field("training", description="Spec type tag.")
    name: str = Field(..., pattern=NAME_PATTERN, description="Job name; resubmitting the same name resumes it.")
    tenant: str = Field(..., pattern=NAME_PATTERN, description="Owning tenant.")
    base_model: str = Field(..., min_length=1, description="Base model: local dir, registered name, or `tiny`.")
    dataset: str = Field(..., min_length=1, description="Curated snapshot: `name`, `name:version` or id.")
    method: Method = Field(Method.lora, description="Fine-tuning method.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA settings (lora, qlora).")
    quantization: QuantizationSpec = Field(default_factory=QuantizationSpec, description="QLoRA settings.")
    prompt_tuning: PromptTuningSpec = Field(default_factory=PromptTuningSpec, description="Prompt tuning settings.")
    optim: OptimSpec = Field(default_factory=OptimSpec, description="Optimizer and schedule.")
    data: DataLoadingSpec = Field(default_factory=DataLoadingSpec, description="Tokenisation and batching.")
    distributed: DistributedSpec = Field(default_factory=DistributedSpec, description="Parallelism strategy.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Workers and devices.")
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec, description="Checkpoint cadence and retention.")
    privacy: PrivacySpec = Field(default_factory=PrivacySpec, description="Differential privacy.")
    guards: GuardSpec = Field(default_factory=GuardSpec, description="Divergence guards.")
    precision: Precision = Field(Precision.fp32, description="Compute precision (bf16/fp16 need a GPU here).")
    max_failures: int = Field(2, ge=0, description="Ray Train FailureConfig.max_failures.")
    seed: int = Field(0, ge=0, description="Seed for init, data order and dropout.")
    register_as: str | None = Field(
        None, pattern=NAME_PATTERN,
        description="Register the final output as a new version of this model when the job succeeds "
                    "(same as `llmft models register NAME --from-job JOB` afterwards).")


class SearchDomain(StrictModel):
    type: Literal["loguniform", "uniform", "choice", "randint"] = Field(..., description="Distribution.")
    low: float | None = Field(None, description="Lower bound (loguniform, uniform, randint).")
    high: float | None = Field(None, description="Upper bound (exclusive for randint).")
    values: list[Any] | None = Field(None, description="Candidates (choice).")

    @model_validator(mode="after")
    def _shape(self) -> "SearchDomain":
        if self.type == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty 'values'")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type} needs low < high")
        elif self.type == "loguniform" and self.low <= 0:
            raise ValueError("loguniform needs low > 0")
        return self


class AshaSpec(StrictModel):
    grace_period: int = Field(1, ge=1, description="Reports before a trial may be stopped.")
    reduction_factor: float = Field(2.0, gt=1, description="Halving rate.")


class SweepSpec(StrictModel):
    kind: Literal["sweep"] = Field("sweep", description="Spec type tag.")
    name: str = Field(..., pattern=NAME_PATTERN, description="Sweep name (the MLflow parent run).")
    training: TrainingSpec = Field(..., description="Base training spec every trial starts from.")
    search_space: dict[str, SearchDomain] = Field(
        ..., min_length=1, description="Dotted TrainingSpec keys (e.g. optim.learning_rate) to their domains."
    )
    num_samples: int = Field(4, ge=1, description="Trials to run.")
    max_concurrent: int = Field(1, ge=1, description="Trials at once (fit them to the cluster).")
    metric: str = Field("val_loss", description="Metric to optimise.")
    mode: Literal["min", "max"] = Field("min", description="Optimisation direction.")
    asha: AshaSpec = Field(default_factory=AshaSpec, description="ASHA early stopping.")
    register_best_as: str | None = Field("candidate", description="Alias given to the best trial's version.")

    @field_validator("search_space")
    @classmethod
    def _keys_exist(cls, space: dict[str, SearchDomain]) -> dict[str, SearchDomain]:
        for key in space:
            model: Any = TrainingSpec
            for part in key.split("."):
                fields = getattr(model, "model_fields", {})
                if part not in fields:
                    raise ValueError(f"search_space key {key!r} is not a TrainingSpec field")
                model = fields[part].annotation
        return space
