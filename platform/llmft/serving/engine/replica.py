"""What one inference replica does with the gateway's `GenerationRequest`s (Ray-free; Serve wraps it).

Results are plain dicts, errors included, so one bad request in a batch never fails its
neighbours, and every result says where it was produced (colour, replica, base revision).
`LocalColour` is the same replica in-process, with a micro-batcher standing in for `@serve.batch`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any, AsyncIterator, Iterator

from llmft.errors import LlmftError
from llmft.serving.engine.interface import Engine, GenerationRequest, GenResult, RequestError, SamplingParams


def error_dict(exc: Exception) -> dict:
    code = getattr(exc, "code", "internal_error")
    status = 400 if isinstance(exc, RequestError) and code in ("invalid_request", "context_length_exceeded") else 503
    return {"error": {"message": str(exc), "code": code, "param": getattr(exc, "param", None), "status": status}}


class ReplicaCore:
    """Runs requests on the engine and labels each result with where it was produced."""

    def __init__(self, engine: Engine, colour: str, replica_id: str | None = None):
        self.engine, self.colour, self.replica_id = engine, colour, replica_id

    def _served(self) -> dict:
        """What every result says about where it was produced."""
        out = {"colour": self.colour, "base_name": self.engine.base_name}
        return {**out, "replica": self.replica_id} if self.replica_id else out

    def generate_batch(self, requests: list[GenerationRequest]) -> list[dict]:
        try:
            results: list[Any] = self.engine.generate(list(requests))
        except LlmftError as exc:
            results = [exc] * len(requests)
        return [error_dict(r) if isinstance(r, Exception) else self._result(r) for r in results]

    def _result(self, res: GenResult) -> dict:
        return {**asdict(res), **self._served()}

    def stream(self, request: GenerationRequest) -> Iterator[dict]:
        try:
            for event in self.engine.stream(request):
                if "finish_reason" in event:
                    event = {**event, **self._served()}
                yield event
        except LlmftError as exc:
            yield error_dict(exc)

    @property
    def continuous(self) -> bool:
        """The engine batches requests itself as they arrive (vLLM): callers skip micro-batching."""
        return hasattr(self.engine, "agenerate")

    async def agenerate(self, request: GenerationRequest) -> dict:
        """One request on a continuous-batching engine, from the caller's event loop."""
        try:
            return self._result(await self.engine.agenerate(request))
        except LlmftError as exc:
            return error_dict(exc)

    async def astream(self, request: GenerationRequest) -> AsyncIterator[dict]:
        try:
            async for event in self.engine.astream(request):
                yield {**event, **self._served()} if "finish_reason" in event else event
        except LlmftError as exc:
            yield error_dict(exc)

    def info(self) -> dict:
        return {**self.engine.info(), "colour": self.colour}

    def health(self) -> dict:
        """A one-token greedy generation on the base: the replica can load and run its model."""
        res = self.engine.generate([GenerationRequest("Hello", None, SamplingParams(max_tokens=1))])[0]
        if isinstance(res, Exception):
            raise res
        return {"ok": True, **self.info()}


class LocalColour:
    """A colour backed by an in-process replica (evaluation, tests, single-box benchmarks): no Ray.

    Concurrent `generate` calls are gathered for up to `wait_s` (or `max_batch` requests) into one
    engine batch, as `@serve.batch` does for a Serve replica; `batches` records their sizes.
    """

    def __init__(self, core: ReplicaCore, *, max_batch: int = 16, wait_s: float = 0.01):
        self.core, self.max_batch, self.wait_s = core, max_batch, wait_s
        self.batches: list[int] = []
        self._queue: asyncio.Queue | None = None
        self._loop_task: asyncio.Task | None = None

    async def generate(self, request: GenerationRequest) -> dict:
        if self.core.continuous:
            return await self.core.agenerate(request)
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop_task is None or self._loop_task.get_loop() is not loop:
            self._queue = asyncio.Queue()  # one queue per event loop (a test client may start a new one)
            self._loop_task = loop.create_task(self._drain(self._queue))
        fut = loop.create_future()
        await self._queue.put((request, fut))
        return await fut

    async def _drain(self, queue: asyncio.Queue) -> None:
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                timeout = deadline - time.monotonic()
                try:
                    batch.append(await asyncio.wait_for(queue.get(), timeout) if timeout > 0 else queue.get_nowait())
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
            self.batches.append(len(batch))
            try:
                results = await asyncio.to_thread(self.core.generate_batch, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter gets the failure, the loop lives on
                results = [{"error": {"message": f"engine failed: {exc}", "code": "engine_error", "status": 503}}
                           for _ in batch]
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[dict]:
        if self.core.continuous:
            async for event in self.core.astream(request):
                yield event
            return
        events = self.core.stream(request)
        sentinel = object()
        while True:
            event = await asyncio.to_thread(next, events, sentinel)
            if event is sentinel:
                return
            yield event
