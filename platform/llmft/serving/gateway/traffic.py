"""Traffic policy: which colour answers a request, as a pure state machine.

Two colours (blue, green) each pin adapter versions; modes: `blue_green` (all traffic on the
live colour), `canary` (a sticky share of user keys on the standby), `shadow` (the live colour
answers, a copy goes to the standby and its answer is only logged). The gateway holds one of
these, rebuilt from Serve `user_config` on every change, so a flip restarts nothing.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from llmft.errors import ConflictError, SpecError

COLOURS = ("blue", "green")
MODES = ("blue_green", "canary", "shadow")
HISTORY = 20


def other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


def bucket(user_key: str) -> float:
    """A stable point in [0, 100) per user key: canary membership is sticky across requests."""
    return int(hashlib.sha256(user_key.encode()).hexdigest()[:8], 16) % 10000 / 100


@dataclass(frozen=True)
class Route:
    primary: str
    shadow: str | None = None


@dataclass
class TrafficPolicy:
    live: str = "blue"
    mode: str = "blue_green"
    canary_percent: float = 0.0
    colours: dict[str, dict] = field(default_factory=lambda: {c: {"pins": {}, "ready": c == "blue"} for c in COLOURS})
    previous: str | None = None
    generation: int = 0
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.live not in COLOURS:
            raise SpecError(f"traffic.live: must be one of {', '.join(COLOURS)} (got {self.live!r})")
        if self.mode not in MODES:
            raise SpecError(f"traffic.mode: must be one of {', '.join(MODES)} (got {self.mode!r})")
        if not 0 <= self.canary_percent <= 100:
            raise SpecError(f"traffic.canary_percent: must be within 0..100 (got {self.canary_percent})")
        if self.mode == "canary" and not 0 < self.canary_percent < 100:
            raise SpecError("traffic.canary_percent: canary mode needs 0 < canary_percent < 100")
        for c in COLOURS:
            self.colours.setdefault(c, {"pins": {}, "ready": False}).setdefault("pins", {})

    @property
    def standby(self) -> str:
        return other(self.live)

    # -- routing --------------------------------------------------------------------------
    def route(self, user_key: str) -> Route:
        if self.mode == "canary" and bucket(user_key) < self.canary_percent:
            return Route(self.standby)
        if self.mode == "shadow":
            return Route(self.live, shadow=self.standby)
        return Route(self.live)

    def pin(self, colour: str, adapter_key: str) -> str | None:
        """The version `colour` serves for `tenant/name`, if it pins one."""
        return self.colours[colour]["pins"].get(adapter_key)

    # -- transitions ----------------------------------------------------------------------
    def _record(self, action: str, reason: str, **extra: Any) -> None:
        self.generation += 1
        self.history = (self.history + [{"action": action, "reason": reason, "live": self.live, "mode": self.mode,
                                         "at": round(time.time(), 3), **extra}])[-HISTORY:]

    def deploy_standby(self, pins: dict[str, str], reason: str = "deploy", base_model: str | None = None) -> None:
        """Point the standby colour at new versions; it is not ready until health + smoke pass."""
        if self.mode != "blue_green":
            raise ConflictError(f"cannot redeploy the standby ({self.standby}) during {self.mode}; end it first")
        state = self.colours[self.standby]
        state["pins"] = {**self.colours[self.live]["pins"], **pins}
        if base_model is not None:
            state["base_model"] = base_model
        state["ready"] = False
        self._record("deploy_standby", reason, colour=self.standby, pins=dict(pins))

    def mark_ready(self, colour: str, ready: bool = True) -> None:
        self.colours[colour]["ready"] = ready
        self._record("ready" if ready else "unready", "health+smoke", colour=colour)

    def _need_ready_standby(self, action: str, force: bool) -> None:
        if not force and not self.colours[self.standby].get("ready"):
            raise ConflictError(f"cannot {action}: standby colour {self.standby} is not ready (health/smoke)")

    def start_canary(self, percent: float, reason: str = "canary", force: bool = False) -> None:
        if not 0 < percent < 100:
            raise SpecError(f"canary percent {percent}: must be strictly between 0 and 100")
        self._need_ready_standby("start a canary", force)
        self.mode, self.canary_percent = "canary", float(percent)
        self._record("canary", reason, percent=percent)

    def start_shadow(self, reason: str = "shadow", force: bool = False) -> None:
        self._need_ready_standby("start shadowing", force)
        self.mode, self.canary_percent = "shadow", 0.0
        self._record("shadow", reason)

    def end_trial(self, reason: str = "end trial") -> None:
        """Back to all traffic on the live colour (canary/shadow ended without a flip)."""
        self.mode, self.canary_percent = "blue_green", 0.0
        self._record("blue_green", reason)

    def flip(self, reason: str = "flip", force: bool = False) -> None:
        """Make the standby live; the old live colour stays hot as the new standby."""
        self._need_ready_standby("flip", force)
        self.previous, self.live = self.live, self.standby
        self.mode, self.canary_percent = "blue_green", 0.0
        self._record("flip", reason)

    def rollback(self, reason: str = "rollback") -> None:
        """Flip back to the colour that was live before the last flip (kept hot for this)."""
        if self.previous is None or self.previous == self.live:
            if self.mode == "blue_green":
                raise ConflictError("nothing to roll back to: no flip has happened")
            self.end_trial(reason)  # a canary/shadow trial is rolled back by ending it
            return
        self.previous, self.live = self.live, self.previous
        self.mode, self.canary_percent = "blue_green", 0.0
        self._record("rollback", reason)

    # -- (de)serialisation: the gateway's user_config ---------------------------------------
    def to_dict(self) -> dict:
        return {"live": self.live, "mode": self.mode, "canary_percent": self.canary_percent,
                "colours": copy.deepcopy(self.colours), "previous": self.previous,
                "generation": self.generation, "history": copy.deepcopy(self.history)}

    @classmethod
    def from_dict(cls, data: dict | None) -> "TrafficPolicy":
        data = dict(data or {})
        unknown = set(data) - {"live", "mode", "canary_percent", "colours", "previous", "generation", "history"}
        if unknown:
            raise SpecError(f"traffic: unknown key {sorted(unknown)[0]!r}")
        colours = {c: dict(v) for c, v in (data.pop("colours", None) or {}).items()}
        bad = set(colours) - set(COLOURS)
        if bad:
            raise SpecError(f"traffic.colours: unknown colour {sorted(bad)[0]!r}")
        policy = cls(colours=colours or cls().colours, **data)
        return policy
