"""Rollouts: deploy to the standby colour, prove it healthy, (shadow / canary), flip, watch, roll back.

Pure logic over a small `ServingBackend` interface (so it is unit-testable without Ray); the
Serve-backed implementation (`llmft.serving.serve_backend`) applies every change as a
declarative deploy of the gateway's `user_config`, never with `serve.run`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from llmft.errors import ConflictError, LlmftError
from llmft.serving.traffic import TrafficPolicy


class ServingBackend(Protocol):
    def get_traffic(self) -> dict: ...

    def apply_traffic(self, traffic: dict) -> float:
        """Apply; return seconds until the gateway answered with the new policy."""

    def smoke(self, colour: str, model: str, prompts: list[str]) -> list[dict]: ...

    def stats(self, colour: str, window_s: float) -> dict: ...

    def probe_quality(self, colour: str, model: str) -> float | None: ...


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


@dataclass
class RolloutReport:
    adapter: str
    version: str
    colour: str
    steps: list[dict] = field(default_factory=list)
    flipped: bool = False
    flip_s: float | None = None

    def step(self, name: str, **data: Any) -> None:
        self.steps.append({"step": name, "at": round(time.time(), 3), **data})


class RolloutManager:
    """Moves a deployment between colours; every move is audited through `audit(action, payload)`."""

    def __init__(self, backend: ServingBackend, *, audit: Callable[[str, dict], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.backend = backend
        self.audit = audit or (lambda action, payload: None)
        self.sleep = sleep

    def policy(self) -> TrafficPolicy:
        return TrafficPolicy.from_dict(self.backend.get_traffic())

    def _apply(self, policy: TrafficPolicy, action: str, **payload: Any) -> float:
        seconds = self.backend.apply_traffic(policy.to_dict())
        self.audit(action, {"live": policy.live, "mode": policy.mode, "generation": policy.generation,
                            "effective_s": round(seconds, 3), **payload})
        return seconds

    def wait_healthy(self, colour: str, model: str, prompts: list[str], timeout_s: float = 120.0) -> list[dict]:
        """Smoke prompts through the colour until every one answers non-empty (or time runs out)."""
        deadline, last = time.monotonic() + timeout_s, "no attempt"
        while time.monotonic() < deadline:
            try:
                results = self.backend.smoke(colour, model, prompts)
                if results and all(r.get("ok") and r.get("text", "").strip() for r in results):
                    return results
                last = f"smoke answers: {[r.get('error') or r.get('text') for r in results]}"
            except LlmftError as exc:
                last = str(exc)
            self.sleep(1.0)
        raise ConflictError(f"colour {colour} not healthy after {timeout_s:.0f}s: {last}")

    def deploy(self, adapter_key: str, version: str, *, model: str, smoke_prompts: list[str], slo: Slo,
               shadow_s: float = 0.0, canary_percent: float = 0.0, canary_s: float = 0.0,
               health_timeout_s: float = 120.0, reason: str = "deploy") -> RolloutReport:
        """Standby gets `adapter_key` (tenant/name) at `version`; after checks it becomes live."""
        policy = self.policy()
        report = RolloutReport(adapter_key, version, policy.standby)
        policy.deploy_standby({adapter_key: version}, reason)
        self._apply(policy, "deploy.standby", colour=policy.standby, adapter=adapter_key, version=version)
        report.step("standby", colour=policy.standby)
        smoke = self.wait_healthy(policy.standby, model, smoke_prompts, health_timeout_s)
        report.step("healthy", smoke=[r.get("text", "")[:40] for r in smoke])
        policy.mark_ready(policy.standby)
        self._apply(policy, "deploy.ready", colour=policy.standby)
        for mode, seconds in (("shadow", shadow_s), ("canary", canary_s if canary_percent else 0.0)):
            if seconds <= 0:
                continue
            policy.start_shadow(reason) if mode == "shadow" else policy.start_canary(canary_percent, reason)
            self._apply(policy, f"deploy.{mode}", colour=policy.standby, seconds=seconds)
            self.sleep(seconds)
            stats = self.backend.stats(policy.standby, seconds).get(policy.standby, {})
            breach = slo_breach(stats, self.backend.probe_quality(policy.standby, model), slo)
            policy.end_trial(f"{mode} ended")
            self._apply(policy, f"deploy.{mode}_end", stats=stats, breach=breach)
            report.step(mode, stats=stats, breach=breach)
            if breach:
                raise ConflictError(f"{mode} of {adapter_key}:{version} on {policy.standby} breached its SLO: {breach}")
        policy.flip(reason)
        report.flip_s = self._apply(policy, "deploy.flip", adapter=adapter_key, version=version)
        report.flipped = True
        report.step("flip", live=policy.live, effective_s=round(report.flip_s, 3))
        return report

    def flip(self, reason: str = "manual flip", force: bool = False) -> float:
        policy = self.policy()
        policy.flip(reason, force=force)
        return self._apply(policy, "deploy.flip", reason=reason)

    def rollback(self, reason: str = "manual rollback") -> float:
        policy = self.policy()
        policy.rollback(reason)
        return self._apply(policy, "deploy.rollback", reason=reason)

    def set_mode(self, mode: str, percent: float = 0.0, reason: str = "traffic change") -> float:
        policy = self.policy()
        if mode == "canary":
            policy.start_canary(percent, reason)
        elif mode == "shadow":
            policy.start_shadow(reason)
        elif mode == "blue_green":
            policy.end_trial(reason)
        else:
            raise ConflictError(f"traffic mode {mode!r}: expected blue_green, canary or shadow")
        return self._apply(policy, f"deploy.{mode}", percent=percent, reason=reason)


class SloWatcher:
    """Watches the live colour after a flip and rolls back (audited, with the reason) on a breach."""

    def __init__(self, manager: RolloutManager, slo: Slo, model: str, *, interval_s: float = 1.0):
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
