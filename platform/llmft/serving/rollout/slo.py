"""Service-level objectives of a colour, and the watch that rolls a flip back when the live colour breaks them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Slo:
    error_rate_max: float = 0.02
    p95_latency_ms_max: float = 2000.0
    quality_min: float = 0.0
    window_s: float = 30.0
    min_requests: int = 20

    @classmethod
    def from_spec(cls, spec: Any) -> "Slo":
        return cls(spec.error_rate_max, spec.p95_latency_ms_max, spec.quality_min, spec.window_s, spec.min_requests)


def slo_breach(stats: dict, quality: float | None, slo: Slo) -> str | None:
    """The first SLO the stats break, as a reason; None when within SLO or too few requests to judge."""
    if quality is not None and quality < slo.quality_min:
        return f"online quality {quality:.3f} < {slo.quality_min}"
    if stats.get("requests", 0) < slo.min_requests:
        return None
    if stats["error_rate"] > slo.error_rate_max:
        return f"error rate {stats['error_rate']:.3f} > {slo.error_rate_max} ({stats['errors']}/{stats['requests']})"
    if stats["p95_ms"] > slo.p95_latency_ms_max:
        return f"p95 latency {stats['p95_ms']:.0f} ms > {slo.p95_latency_ms_max:.0f} ms"
    return None


class SloWatcher:
    """Watches the live colour after a flip and rolls back (audited, with the reason) on a breach.

    `manager` is a `llmft.serving.rollout.manager.RolloutManager` (its backend, policy and rollback).
    """

    def __init__(self, manager: Any, slo: Slo, model: str, *, interval_s: float = 1.0):
        self.manager, self.slo, self.model, self.interval_s = manager, slo, model, interval_s

    def check(self) -> str | None:
        live = self.manager.policy().live
        backend = self.manager.backend
        stats = backend.stats(live, self.slo.window_s).get(live, {})
        return slo_breach(stats, backend.probe_quality(live, self.model), self.slo)

    def watch(self, duration_s: float, stop: Callable[[], bool] = lambda: False) -> dict:
        """Check every `interval_s` for `duration_s`; on a breach roll back and return the reason."""
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline and not stop():
            breach = self.check()
            if breach:
                live = self.manager.policy().live
                seconds = self.manager.rollback(f"SLO breach on {live}: {breach}")
                return {"rolled_back": True, "reason": breach, "from": live, "rollback_s": round(seconds, 3)}
            self.manager.sleep(self.interval_s)
        return {"rolled_back": False, "reason": None}
