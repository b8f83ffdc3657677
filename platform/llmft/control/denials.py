"""Audit records of refused requests: bounded, filed where the attacked tenant's admins see them, rate-limited.

A refusal is recorded once per request with every caller-chosen field cut to `MAX_FIELD`
characters (the full value's sha256 and length kept instead), under the *targeted* tenant
when it exists (so its admins see attempts on it) and otherwise under the caller's own;
the payload names the caller's tenant either way. Each key may write at most
`LLMFT_AUDIT_DENIALS_PER_MINUTE` (default 120) such records a minute; the rest are counted
and summarised by one `api.denied.suppressed` record per tenant once the minute is over
(written with the next refusal of any caller), so a caller cannot grow the log without bound.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from llmft.store.tenants_and_keys import TENANT_NAME

MAX_FIELD = 128
WINDOW_S = 60.0
DEFAULT_PER_MINUTE = 120


def bounded(value: str, limit: int = MAX_FIELD) -> tuple[str, dict]:
    """`value` cut to `limit` characters, plus what identifies the whole when it was cut."""
    if len(value) <= limit:
        return value, {}
    return value[:limit] + "…", {"sha256": hashlib.sha256(value.encode("utf-8", "replace")).hexdigest(),
                                 "length": len(value)}


@dataclass
class _Window:
    start: float
    written: int = 0
    suppressed: dict = field(default_factory=dict)  # filed tenant -> count


class Denials:
    """Writes `api.denied` records through `audit` (an AuditLog) with bounds and a per-key quota."""

    def __init__(self, store: Any, per_minute: int | None = None, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000):
        self.store = store
        self.per_minute = int(per_minute if per_minute is not None
                              else os.environ.get("LLMFT_AUDIT_DENIALS_PER_MINUTE", DEFAULT_PER_MINUTE))
        if self.per_minute < 1:
            raise ValueError("LLMFT_AUDIT_DENIALS_PER_MINUTE must be >= 1")
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def _tenant_exists(self, name: str) -> bool:
        if not TENANT_NAME.match(name):
            return False
        try:
            self.store.get_tenant(name)
        except Exception:  # noqa: BLE001 - NotFoundError: the target does not exist
            return False
        return True

    def record(self, principal: Any, method: str, path: str, status: int, reason: str,
               target: str | None = None) -> None:
        """Record that `principal` was refused `method path` (status, reason) aimed at tenant `target`."""
        target = target if target is not None else principal.tenant
        filed = target if target == principal.tenant or self._tenant_exists(target) else principal.tenant
        now = self.clock()
        with self._lock:
            due = self._due_summaries(now)
            window = self._windows.get(principal.actor)
            if window is None or now - window.start >= WINDOW_S:
                if window is not None and window.suppressed:
                    due.append((principal.actor, window))
                window = self._windows[principal.actor] = _Window(start=now)
            allowed = window.written < self.per_minute
            if allowed:
                window.written += 1
            else:
                window.suppressed[filed] = window.suppressed.get(filed, 0) + 1
        for actor, old in due:
            self._summarise(actor, old)
        if not allowed:
            return
        obj, obj_extra = bounded(f"{method} {path}", 2 * MAX_FIELD)
        target_text, target_extra = bounded(target)
        reason_text, reason_extra = bounded(reason, 2 * MAX_FIELD)
        payload = {"status": status, "reason": reason_text, "target_tenant": target_text,
                   "caller_tenant": principal.tenant}
        for name, extra in (("request", obj_extra), ("target", target_extra), ("reason", reason_extra)):
            payload.update({f"{name}_{k}": v for k, v in extra.items()})
        self.store.audit.append(principal.actor, filed, "api.denied", obj, payload)

    def _due_summaries(self, now: float) -> list:
        """Windows that are over and hold suppressed counts (removed from the table); also bounds its size."""
        due = []
        for actor, window in list(self._windows.items()):
            if now - window.start >= WINDOW_S and (window.suppressed or len(self._windows) > self.max_keys):
                del self._windows[actor]
                if window.suppressed:
                    due.append((actor, window))
        return due

    def _summarise(self, actor: str, window: _Window) -> None:
        for tenant, count in sorted(window.suppressed.items()):
            self.store.audit.append(actor, tenant, "api.denied.suppressed", "api",
                                    {"suppressed": count, "window_s": WINDOW_S,
                                     "reason": f"more than {self.per_minute} refused requests in a minute"})
