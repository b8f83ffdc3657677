"""The Ray-free training step: accumulation, warm-up + decay schedule, clipping, autocast, progress line."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from llmft.config.training import OptimSpec, Precision


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier on the peak LR at optimizer step `step` (0-based): linear warm-up then cosine/linear/constant."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params: list, optim: OptimSpec) -> Any:
    import torch

    return torch.optim.AdamW(params, lr=optim.learning_rate, weight_decay=optim.weight_decay)


def make_scheduler(optimizer: Any, optim: OptimSpec, total_steps: int) -> Any:
    import torch

    warmup = int(round(optim.warmup_ratio * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup, optim.schedule)
    )


def autocast(precision: Precision, device_type: str) -> Any:
    """bf16/fp16 autocast where asked (fp16 only on CUDA); fp32 runs without autocast."""
    import torch

    if precision == Precision.fp32:
        return nullcontext()
    dtype = torch.bfloat16 if precision == Precision.bf16 else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


def micro_loss(model: Any, batch: dict, precision: Precision, device_type: str) -> Any:
    """Token-mean next-token loss of one micro-batch (the model shifts labels itself)."""
    with autocast(precision, device_type):
        out = model(**model_inputs(batch), use_cache=False)  # a KV cache would disable packed-sequence masking
    return out.loss.float()


MODEL_KEYS = ("input_ids", "attention_mask", "position_ids", "labels")


def model_inputs(batch: dict) -> dict:
    """The tensors the model takes (batches also carry bookkeeping such as `n_useful`)."""
    return {k: v for k, v in batch.items() if k in MODEL_KEYS}


def count_tokens(batch: dict) -> tuple[int, int]:
    """(tokens processed, useful tokens): useful = real example tokens, not padding."""
    return int(batch["input_ids"].numel()), int(batch["n_useful"])


@dataclass
class Progress:
    """Throughput and ETA over optimizer steps, printed as one line per log step."""

    total_steps: int
    start_step: int = 0
    started: float = field(default_factory=time.perf_counter)
    tokens: int = 0
    useful: int = 0

    def add(self, tokens: int, useful: int) -> None:
        self.tokens += tokens
        self.useful += useful

    def rates(self) -> dict:
        """Throughput, one definition everywhere (progress line, job result, MLflow): `tokens_per_s` counts the
        examples' own tokens (padding excluded) per second of the training loop; `processed_tokens_per_s`
        counts every token the model ran on (padding included)."""
        elapsed = max(1e-9, time.perf_counter() - self.started)
        return {"tokens_per_s": self.useful / elapsed, "processed_tokens_per_s": self.tokens / elapsed,
                "seconds": elapsed}

    def line(self, step: int, loss: float, lr: float) -> tuple[str, dict]:
        rates = self.rates()
        done = max(1, step - self.start_step)
        eta = rates["seconds"] / done * max(0, self.total_steps - step)
        tps = rates["tokens_per_s"]
        text = (f"step {step}/{self.total_steps} loss {loss:.4f} lr {lr:.2e} tokens/s {tps:,.0f} "
                f"eta {int(eta // 60)}m{int(eta % 60):02d}s")
        return text, {"tokens_per_s": tps, "eta_s": eta}
