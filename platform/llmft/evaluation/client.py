"""Batched, concurrent client for OpenAI-compatible `/v1/completions` and `/v1/chat/completions`.

Bounded concurrency (a semaphore) keeps a server's batcher full without flooding it; 5xx
answers and dropped connections are retried with backoff, 4xx are the request's own fault
and are recorded, not retried. Timing gives the throughput the report quotes.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from llmft.errors import LlmftError


class EndpointError(LlmftError):
    """An endpoint could not answer enough of an evaluation's requests."""


def api_base(url: str) -> str:
    """`http://h:p`, `http://h:p/` or `http://h:p/v1` -> `http://h:p/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


@dataclass
class GenerationRun:
    """Outputs in prompt order; a failed request has output "" and its error."""

    outputs: list[str]
    errors: list[str | None]
    seconds: float
    retries: int = 0
    completion_tokens: int = 0
    served: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(e is not None for e in self.errors)

    @property
    def prompts_per_s(self) -> float:
        return len(self.outputs) / self.seconds if self.seconds > 0 else 0.0

    def stats(self) -> dict:
        return {"prompts": len(self.outputs), "failed": self.failed, "retries": self.retries,
                "seconds": round(self.seconds, 3), "prompts_per_s": round(self.prompts_per_s, 3),
                "completion_tokens": self.completion_tokens,
                "tokens_per_s": round(self.completion_tokens / self.seconds, 2) if self.seconds > 0 else 0.0}


class EndpointClient:
    """One model at one endpoint."""

    def __init__(self, url: str, model: str, *, concurrency: int = 8, timeout_s: float = 120.0, retries: int = 3,
                 api_key: str | None = None, max_failed_share: float = 0.1):
        from llmft.outbound import check_url

        try:  # prompts (and the key) go only where the operator allows; the spec was checked, this is the backstop
            check_url(url)
        except ValueError as exc:
            raise EndpointError(f"endpoint refused: {exc}") from None
        self.url, self.model = api_base(url), model
        self.concurrency, self.timeout_s, self.retries = concurrency, timeout_s, retries
        self.api_key = api_key
        self.max_failed_share = max_failed_share

    def describe(self) -> dict:
        return {"url": self.url, "model": self.model}

    def _request(self, api: str, prompt: str | list[dict], max_tokens: int, stop: list[str] | None) -> tuple[str, dict]:
        """A prompt is text, or (chat) the whole message list: system, earlier turns, the user's prompt."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": 0}
        if stop:
            body["stop"] = stop
        if api == "chat":
            body["messages"] = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            return f"{self.url}/chat/completions", body
        body["prompt"] = prompt
        return f"{self.url}/completions", body

    async def _one(self, http: Any, sem: asyncio.Semaphore, api: str, prompt: str | list[dict], max_tokens: int,
                   stop: list[str] | None, counters: dict) -> tuple[str, str | None, int, dict]:
        import httpx

        url, body = self._request(api, prompt, max_tokens, stop)
        error = "not attempted"
        async with sem:
            for attempt in range(self.retries + 1):
                if attempt:
                    counters["retries"] += 1
                    await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt) * (0.5 + random.random()))
                try:
                    resp = await http.post(url, json=body)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    continue
                if resp.status_code >= 500:
                    error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    continue
                if resp.status_code >= 400:
                    return "", f"HTTP {resp.status_code}: {resp.text[:200]}", 0, {}
                try:
                    data = resp.json()
                    choice = data["choices"][0]
                    text = choice["message"]["content"] if api == "chat" else choice["text"]
                except (ValueError, KeyError, IndexError, TypeError):
                    return "", f"malformed response: {resp.text[:200]}", 0, {}
                tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
                return text or "", None, tokens, data.get("llmft") or {}
        return "", error, 0, {}

    async def generate(self, prompts: list[str] | list[list[dict]], *, max_tokens: int, api: str = "chat",
                       stop: list[str] | None = None) -> GenerationRun:
        """All prompts, `concurrency` in flight; raises EndpointError if too many failed."""
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        counters = {"retries": 0}
        sem = asyncio.Semaphore(self.concurrency)
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=headers, limits=limits) as http:
            results = await asyncio.gather(*(self._one(http, sem, api, p, max_tokens, stop, counters)
                                             for p in prompts))
        run = GenerationRun([r[0] for r in results], [r[1] for r in results], time.perf_counter() - started,
                            counters["retries"], sum(r[2] for r in results), [r[3] for r in results])
        if prompts and run.failed / len(prompts) > self.max_failed_share:
            first = next(e for e in run.errors if e)
            raise EndpointError(f"endpoint {self.url} (model {self.model!r}) failed {run.failed} of {len(prompts)} "
                                f"requests; first error: {first}")
        return run


def run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code, also when the caller already has an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
