"""Divergence guards: NaN/Inf loss, a loss spike over k x running median, an exploding gradient norm."""

from __future__ import annotations

import math
import statistics
from collections import deque

from llmft.config.training import GuardSpec


class DivergenceGuard:
    """Judges each optimizer step; the caller rolls back once, then stops with `reason`.

    Fed the loss averaged over ranks and the global grad norm, so every rank reaches
    the same verdict without another collective.
    """

    def __init__(self, spec: GuardSpec) -> None:
        self.spec = spec
        self.history: deque[float] = deque(maxlen=spec.window)

    def check(self, step: int, loss: float, grad_norm: float) -> str | None:
        """None when healthy, else the reason (healthy losses join the running median)."""
        if not math.isfinite(loss):
            return f"step {step}: loss is {loss} (NaN/Inf)"
        if not math.isfinite(grad_norm):
            return f"step {step}: gradient norm is {grad_norm} (NaN/Inf)"
        if grad_norm > self.spec.grad_norm_max:
            return f"step {step}: gradient norm {grad_norm:.3g} above guards.grad_norm_max={self.spec.grad_norm_max:g}"
        if len(self.history) >= min(3, self.spec.window):
            median = statistics.median(self.history)
            if median > 0 and loss > self.spec.loss_spike_factor * median:
                return (f"step {step}: loss {loss:.4g} above guards.loss_spike_factor={self.spec.loss_spike_factor:g}"
                        f" x running median {median:.4g}")
        self.history.append(loss)
        return None

    def reset(self) -> None:
        self.history.clear()
