"""Token bucket per API key: a steady rate with a burst allowance; refusals carry Retry-After."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable


class RateLimiter:
    """`allow(key)` returns None when the request may proceed, else seconds until a token is free."""

    def __init__(self, rate: float | None = None, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.rate = float(rate if rate is not None else os.environ.get("LLMFT_API_RATE", 20))
        self.burst = float(burst if burst is not None else os.environ.get("LLMFT_API_BURST", 60))
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate limit: rate must be > 0 and burst >= 1")
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def allow(self, key: str) -> float | None:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                self._prune(now)
                return None
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # Full buckets carry no information: drop them when the table grows (bounded memory).
        if len(self._buckets) > self.max_keys:
            full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
            for k in full:
                del self._buckets[k]
