"""What one inference replica does with the gateway's payloads (Ray-free; Serve wraps it).

A payload is a plain dict: `prompt` or `messages`, `adapter` (a resolved version, or None for
the base), `params` (sampling). Results are plain dicts too, errors included, so one bad
request in a batch never fails its neighbours.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterator

from llmft.errors import LlmftError
from llmft.serving.adapters import ResolvedAdapter
from llmft.serving.engine import GenRequest, GenResult, PeftEngine, RequestError, SamplingParams


def make_payload(*, prompt: str | None = None, messages: list[dict] | None = None,
                 adapter: ResolvedAdapter | None = None, params: SamplingParams | None = None) -> dict:
    return {"prompt": prompt, "messages": messages, "adapter": adapter.as_dict() if adapter else None,
            "params": asdict(params or SamplingParams())}


def adapter_from(payload: dict) -> ResolvedAdapter | None:
    data = payload.get("adapter")
    if not data:
        return None
    fields = {k: data[k] for k in ("tenant", "name", "version", "path", "digest", "base_model") if k in data}
    return ResolvedAdapter(**fields)


def error_dict(exc: Exception) -> dict:
    code = getattr(exc, "code", "internal_error")
    status = 400 if isinstance(exc, RequestError) and code in ("invalid_request", "context_length_exceeded") else 503
    return {"error": {"message": str(exc), "code": code, "param": getattr(exc, "param", None), "status": status}}


class ReplicaCore:
    """Turns payloads into engine calls; renders chat with the base model's chat template."""

    def __init__(self, engine: PeftEngine, colour: str, replica_id: str | None = None):
        self.engine, self.colour, self.replica_id = engine, colour, replica_id

    def _served(self) -> dict:
        """What every result says about where it was produced."""
        out = {"colour": self.colour, "base_name": self.engine.base_name}
        return {**out, "replica": self.replica_id} if self.replica_id else out

    def to_request(self, payload: dict) -> GenRequest:
        params = SamplingParams(**{**payload["params"], "stop": tuple(payload["params"].get("stop") or ())})
        prompt = payload.get("prompt")
        if payload.get("messages") is not None:
            try:
                prompt = self.engine.tokenizer.apply_chat_template(payload["messages"], tokenize=False,
                                                                   add_generation_prompt=True)
            except Exception as exc:  # template errors (unknown role, ...) are the caller's
                raise RequestError(f"messages: cannot render chat ({exc})", "invalid_request", "messages") from None
        if not isinstance(prompt, str):
            raise RequestError("prompt must be a string", "invalid_request", "prompt")
        return GenRequest(prompt=prompt, adapter=adapter_from(payload), params=params)

    def generate_batch(self, payloads: list[dict]) -> list[dict]:
        requests: list[GenRequest | None] = []
        out: list[dict | None] = []
        for p in payloads:
            try:
                requests.append(self.to_request(p))
                out.append(None)
            except RequestError as exc:
                requests.append(None)
                out.append(error_dict(exc))
        live = [r for r in requests if r is not None]
        try:
            results = iter(self.engine.generate(live))
        except LlmftError as exc:
            results = iter([exc] * len(live))
        for i, req in enumerate(requests):
            if req is not None:
                res = next(results)
                out[i] = error_dict(res) if isinstance(res, Exception) else self._result(res)
        return out  # type: ignore[return-value]

    def _result(self, res: GenResult) -> dict:
        return {**asdict(res), **self._served()}

    def stream(self, payload: dict) -> Iterator[dict]:
        try:
            request = self.to_request(payload)
            for event in self.engine.stream(request):
                if "finish_reason" in event:
                    event = {**event, **self._served()}
                yield event
        except LlmftError as exc:
            yield error_dict(exc)

    def info(self) -> dict:
        return {**self.engine.info(), "colour": self.colour}

    def health(self) -> dict:
        """A one-token greedy generation on the base: the replica can load and run its model."""
        res = self.engine.generate([GenRequest("Hello", None, SamplingParams(max_tokens=1))])[0]
        if isinstance(res, Exception):
            raise res
        return {"ok": True, **self.info()}


def resolved_from(data: Any) -> ResolvedAdapter | None:
    return adapter_from({"adapter": data})


class LocalColour:
    """A colour backed by an in-process replica (tests, single-box benchmarks): no Ray involved."""

    def __init__(self, core: ReplicaCore):
        self.core = core

    async def generate(self, payload: dict) -> dict:
        import asyncio

        return (await asyncio.to_thread(self.core.generate_batch, [payload]))[0]

    async def stream(self, payload: dict):  # type: ignore[no-untyped-def]
        import asyncio

        events = self.core.stream(payload)
        sentinel = object()
        while True:
            event = await asyncio.to_thread(next, events, sentinel)
            if event is sentinel:
                return
            yield event
