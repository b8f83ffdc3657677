"""Rollouts: deploy to the standby colour, prove it healthy, (shadow / canary), flip, roll back.

Pure logic over a small `ServingBackend` interface (so it is unit-testable without Ray); the
Serve-backed implementation (`llmft.serving.rollout.serve_backend`) applies every change as a
declarative deploy of the gateway's `user_config`, never with `serve.run`. The SLO checks and
the post-flip watch live in `llmft.serving.rollout.slo`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from llmft.errors import ConflictError, LlmftError
from llmft.serving.gateway.traffic import TrafficPolicy
from llmft.serving.rollout.slo import Slo, slo_breach


class ServingBackend(Protocol):
    def get_traffic(self) -> dict: ...

    def apply_traffic(self, traffic: dict) -> float:
        """Apply; return seconds until the gateway answered with the new policy."""

    def smoke(self, colour: str, model: str, prompts: list[str]) -> list[dict]: ...

    def stats(self, colour: str, window_s: float) -> dict: ...

    def probe_quality(self, colour: str, model: str) -> float | None: ...


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
