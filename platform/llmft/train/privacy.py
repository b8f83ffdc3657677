"""DP-SGD with Opacus for LoRA: per-sample clipping, Gaussian noise, Poisson sampling, an RDP accountant.

Sampling: every example of a rank's shard joins a step's batch independently with
probability q = batch_size x workers / N, drawn from (seed, step, rank), so the
union over ranks is exact Poisson sampling of the whole dataset and a resumed run
draws the same batches. With more than one worker the model is wrapped in Opacus'
DPDDP and the optimizer is a DistributedDPOptimizer (noise added once, on rank 0).
A rank whose draw is empty contributes one zero per-sample gradient (identical to
an empty batch). The loss is a per-example token mean so Opacus' "mean" reduction
gives true per-example gradients with padding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from llmft.config.training import TrainingSpec
from llmft.train.strategies import DDPEngine
from llmft.errors import LlmftError
from llmft.train.data import collate_padded


def _opacus() -> Any:
    try:
        import opacus
    except ImportError as exc:  # pragma: no cover
        raise LlmftError("privacy.enabled needs opacus: pip install 'llmft[train]'") from exc
    return opacus


def noise_multiplier(spec: TrainingSpec, sample_rate: float, steps: int) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    _opacus()
    return float(get_noise_multiplier(target_epsilon=spec.privacy.target_epsilon, target_delta=spec.privacy.delta,
                                      sample_rate=sample_rate, steps=steps, accountant="rdp"))


def per_example_loss(model: Any, batch: dict) -> Any:
    """Mean over examples of each example's token-mean next-token loss."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    labels = batch["labels"][:, 1:]
    logits = logits[:, :-1].float()
    tok = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100,
                          reduction="none").view(labels.shape)
    valid = (labels != -100).float()
    per_ex = (tok * valid).sum(1) / valid.sum(1).clamp(min=1)
    return per_ex.mean()


class PrivateEngine(DDPEngine):
    """DDPEngine's interface over GradSampleModule (DPDDP when distributed) + DPOptimizer + accountant.

    Its own __init__ replaces DDPEngine's wrapping; lr, scale_lr and the trainable-state
    methods are inherited unchanged (they act on `inner`, `optimizer` and `scheduler`).
    """

    def __init__(self, model: Any, spec: TrainingSpec, total_steps: int, world_size: int, rank: int,
                 n_train: int) -> None:
        _opacus()
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
        from opacus.optimizers import DistributedDPOptimizer, DPOptimizer

        from llmft.train.loop import make_optimizer, make_scheduler

        self.inner = model
        self.spec = spec
        self.world_size = world_size
        self.rank = rank
        self.sample_rate = min(1.0, spec.optim.batch_size * world_size / n_train)
        self.sigma = noise_multiplier(spec, self.sample_rate, total_steps)
        wrapped = DPDDP(model) if world_size > 1 else model
        self.model = GradSampleModule(wrapped, batch_first=True, loss_reduction="mean")
        self.params = [p for p in model.parameters() if p.requires_grad]
        base = make_optimizer(self.params, spec.optim)
        cls = DistributedDPOptimizer if world_size > 1 else DPOptimizer
        self.optimizer = cls(base, noise_multiplier=self.sigma, max_grad_norm=spec.privacy.max_grad_norm,
                             expected_batch_size=max(1, round(self.sample_rate * n_train / world_size)),
                             loss_reduction="mean")
        self.scheduler = make_scheduler(base, spec.optim, total_steps)
        self.accountant = RDPAccountant()
        self.empty = False

    def sync_context(self, last_micro: bool) -> Any:
        from contextlib import nullcontext

        return nullcontext()

    def backward(self, loss: Any) -> None:
        if self.empty:
            import torch

            for p in self.params:  # one zero per-sample gradient: the same as an empty Poisson batch
                p.grad_sample = torch.zeros((1, *p.shape), dtype=p.dtype, device=p.device)
            return
        loss.backward()

    def step(self) -> float:
        import torch

        self.optimizer.step()
        norm = torch.sqrt(sum((p.grad.detach().float() ** 2).sum() for p in self.params if p.grad is not None))
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.accountant.step(noise_multiplier=self.sigma, sample_rate=self.sample_rate)
        return float(norm)

    def epsilon(self) -> float:
        if not self.accountant.history:
            return 0.0
        return float(self.accountant.get_epsilon(self.spec.privacy.delta))

    def restore_accounting(self, steps: int) -> None:
        self.accountant.history = [(self.sigma, self.sample_rate, steps)] if steps else []

    def optimizer_state(self) -> dict | None:
        return {"optimizer": self.optimizer.original_optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.optimizer.original_optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class PoissonBatches:
    """Per-step Poisson draws from this rank's shard, a pure function of (seed, step, rank)."""

    def __init__(self, examples: list, rank: int, world_size: int, sample_rate: float, seed: int, pad_id: int) -> None:
        self.shard = examples[rank::world_size]
        self.rank = rank
        self.q = sample_rate
        self.seed = seed
        self.pad_id = pad_id
        self.steps_per_epoch = max(1, math.ceil(1 / sample_rate))

    def batch(self, step: int) -> dict | None:
        rng = np.random.default_rng([self.seed, step, self.rank, 7])
        picked = [ex for ex, keep in zip(self.shard, rng.random(len(self.shard)) < self.q) if keep]
        return collate_padded(picked, self.pad_id) if picked else None
