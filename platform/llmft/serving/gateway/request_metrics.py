"""Request metrics: Ray metrics (Prometheus / dashboard) plus an in-process window for SLOs.

`ray.util.metrics` is imported only when `ray_metrics=True` (inside a Serve replica), so the
Ray-free core and its tests run without it. The window is what the SLO watcher reads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

TAGS = ("colour", "base_revision", "adapter_version", "tenant", "model")
LATENCY_BOUNDARIES_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]


@dataclass(frozen=True)
class Sample:
    at: float
    colour: str
    ok: bool
    latency_ms: float
    shadow: bool = False


def p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


class ServingMetrics:
    """Counts requests, errors, tokens and latencies per colour / base / adapter / tenant."""

    def __init__(self, ray_metrics: bool = False, horizon_s: float = 600.0, max_samples: int = 50_000):
        self.horizon_s = horizon_s
        self._samples: deque[Sample] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self._ray: dict[str, Any] = {}
        if ray_metrics:
            from ray.util import metrics as rm

            self._ray = {
                "requests": rm.Counter("llmft_requests_total", "Requests served.", tag_keys=TAGS),
                "errors": rm.Counter("llmft_request_errors_total", "Requests that failed.", tag_keys=TAGS + ("code",)),
                "tokens": rm.Counter("llmft_tokens_total", "Tokens processed.", tag_keys=TAGS + ("kind",)),
                "latency": rm.Histogram("llmft_request_latency_ms", "End-to-end latency (ms).",
                                        boundaries=LATENCY_BOUNDARIES_MS, tag_keys=TAGS),
            }

    def record(self, *, colour: str, ok: bool, latency_ms: float, tenant: str = "", model: str = "",
               base_revision: str | None = None, adapter_version: str | None = None, code: str | None = None,
               prompt_tokens: int = 0, completion_tokens: int = 0, shadow: bool = False) -> None:
        with self._lock:
            self._samples.append(Sample(time.time(), colour, ok, latency_ms, shadow))
        if not self._ray:
            return
        tags = {"colour": colour, "base_revision": base_revision or "", "adapter_version": adapter_version or "base",
                "tenant": tenant, "model": model}
        self._ray["requests"].inc(1, tags)
        self._ray["latency"].observe(latency_ms, tags)
        if not ok:
            self._ray["errors"].inc(1, {**tags, "code": code or "error"})
        if prompt_tokens:
            self._ray["tokens"].inc(prompt_tokens, {**tags, "kind": "prompt"})
        if completion_tokens:
            self._ray["tokens"].inc(completion_tokens, {**tags, "kind": "completion"})

    def window(self, window_s: float, colour: str | None = None, since: float | None = None) -> dict:
        """Requests, errors, error rate and p95 latency per colour over the last `window_s` seconds."""
        start = max(time.time() - window_s, since or 0.0)
        with self._lock:
            samples = [s for s in self._samples if s.at >= start]
        out: dict[str, dict] = {}
        for c in sorted({s.colour for s in samples} | ({colour} if colour else set())):
            mine = [s for s in samples if s.colour == c]
            errors = sum(not s.ok for s in mine)
            out[c] = {"requests": len(mine), "errors": errors, "error_rate": errors / len(mine) if mine else 0.0,
                      "p95_ms": round(p95([s.latency_ms for s in mine if s.ok]), 2),
                      "shadow_requests": sum(s.shadow for s in mine)}
        return out if colour is None else {colour: out[colour]}
