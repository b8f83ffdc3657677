"""The gateway: authenticate, authorise, resolve the model, pick a colour, call it, label the answer.

Ray-free: colours are reached through `ColourBackend`s (Serve handles in production, an
in-process engine in tests). Every refusal happens here, before any replica is called, so a
refused request loads nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Protocol

from llmft.errors import LlmftError
from llmft.serving.engine.adapters import ResolvedAdapter
from llmft.serving.engine.interface import GenerationRequest
from llmft.serving.gateway.access import Caller, ModelRef, Tenancy, resolve_error
from llmft.serving.gateway.protocol import (ApiError, ChatRequest, CompletionRequest, chat_body, completion_body,
                                            models_body, parse, served_headers, stream_chunk)
from llmft.serving.gateway.request_metrics import ServingMetrics
from llmft.serving.gateway.traffic import COLOURS, TrafficPolicy

ALIAS_TTL_S = 5.0


class ColourBackend(Protocol):
    """One colour's replicas: a Serve handle (`llmft.serving.app`) or in-process (`LocalColour`)."""

    async def generate(self, request: GenerationRequest) -> dict: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[dict]: ...


@dataclass
class Reply:
    """What the HTTP layer sends: a JSON body, or an SSE stream; headers either way."""

    status: int
    headers: dict[str, str]
    body: dict | None = None
    stream: AsyncIterator[str] | None = None


class GatewayCore:
    def __init__(self, *, store: Any, source: Any, backends: dict[str, ColourBackend], bases: list[str],
                 metrics: ServingMetrics | None = None, shadow_log: str | Path | None = None,
                 tenancy: Any = None):
        self.tenancy = tenancy or Tenancy(store)
        self.source = source
        self.backends = backends
        self.bases = list(bases)
        self.metrics = metrics or ServingMetrics()
        self.policy = TrafficPolicy()
        self.shadow_log = Path(shadow_log) if shadow_log else None
        self._tasks: set[asyncio.Task] = set()
        self._resolved: dict[tuple, tuple[float, ResolvedAdapter]] = {}
        self.shadow_stats = {"sent": 0, "failed": 0}

    def configure(self, config: dict | None) -> None:
        """Apply a `user_config`: the traffic policy (and optionally the shared base names)."""
        config = config or {}
        policy = TrafficPolicy.from_dict(config.get("traffic"))
        if config.get("bases"):
            self.bases = list(config["bases"])
        self.policy = policy

    # -- resolution -----------------------------------------------------------------------
    def resolve(self, ref: ModelRef, colour: str) -> ResolvedAdapter:
        version, alias = ref.version, ref.alias
        if ref.pinned:
            version = self.policy.pin(colour, f"{ref.tenant}/{ref.name}")
        key = (ref.tenant, ref.name, alias, version)
        hit = self._resolved.get(key)
        if hit and (version is not None or time.monotonic() - hit[0] < ALIAS_TTL_S):
            return hit[1]
        try:
            adapter = self.source.resolve(ref.tenant, ref.name, version=version, alias=alias)
        except LlmftError as exc:
            raise resolve_error(exc, ref.name) from None
        self._resolved[key] = (time.monotonic(), adapter)
        return adapter

    def _colour_for(self, caller: Caller, body: Any, forced: str | None) -> tuple[str, str | None]:
        if forced:
            if caller.role != "admin":
                raise ApiError(403, "only admin keys may pick a colour (x-llmft-colour)", "permission_error",
                               code="colour_not_permitted")
            if forced not in COLOURS:
                raise ApiError(400, f"x-llmft-colour: must be one of {', '.join(COLOURS)}", param="x-llmft-colour")
            return forced, None
        user_key = f"{caller.tenant}:{body.user or caller.key_id}"
        route = self.policy.route(user_key)
        return route.primary, route.shadow

    # -- requests -------------------------------------------------------------------------
    async def models(self, authorization: str | None) -> dict:
        caller = self.tenancy.authenticate(authorization)
        names = Tenancy.visible_models(caller, self.bases, self.source)
        return models_body(names, {n: ("llmft" if n in self.bases else caller.tenant) for n in names})

    async def complete(self, kind: str, raw: bytes, authorization: str | None, forced: str | None = None) -> Reply:
        caller = self.tenancy.authenticate(authorization)
        try:
            data = json.loads(raw or b"")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "request body is not valid JSON", code="invalid_json") from None
        body = parse(ChatRequest if kind == "chat" else CompletionRequest, data)
        ref = Tenancy.authorize(caller, body.model, self.bases, self.source)
        colour, shadow = self._colour_for(caller, body, forced)
        request = self._request(kind, body, ref, colour)
        served = {"colour": colour, "adapter": request.adapter_id,
                  "adapter_version": request.adapter.version if request.adapter else None}
        if request.stream:
            return await self._stream(kind, body, caller, colour, request, served)
        started = time.perf_counter()
        primary = asyncio.ensure_future(self._call(colour, request))
        if shadow is not None:
            try:
                shadow_request = self._request(kind, body, ref, shadow)
                self._spawn(self._shadow(shadow, shadow_request, primary, caller, body.model))
            except ApiError:
                self.shadow_stats["failed"] += 1
        result = await primary
        latency = (time.perf_counter() - started) * 1000
        self._record(caller, body.model, colour, result, latency)
        if "error" in result:
            err = result["error"]
            raise ApiError(err.get("status", 503), err["message"], "invalid_request_error" if err.get("status") == 400
                           else "server_error", err.get("param"), err.get("code"))
        served.update(base_revision=result["base_revision"], base_model=result.get("base_name"))
        if result.get("replica"):
            served["replica"] = result["replica"]
        build = chat_body if kind == "chat" else completion_body
        out = build(body.model, result["text"], result["finish_reason"], result["prompt_tokens"],
                    result["completion_tokens"], served)
        return Reply(200, served_headers(served), body=out)

    def _request(self, kind: str, body: Any, ref: ModelRef | None, colour: str) -> GenerationRequest:
        """The one object a replica receives: the adapter is resolved here, once, for `colour`."""
        adapter = self.resolve(ref, colour) if ref is not None else None
        if kind == "chat":
            return GenerationRequest(messages=tuple(m.model_dump() for m in body.messages), adapter=adapter,
                                     params=body.sampling(), stream=body.stream)
        return GenerationRequest(prompt=body.text(), adapter=adapter, params=body.sampling(), stream=body.stream)

    async def _call(self, colour: str, request: GenerationRequest) -> dict:
        try:
            return await self.backends[colour].generate(request)
        except Exception as exc:  # a dead replica or a lost actor: the caller gets a 503, not a hang
            return {"error": {"message": f"colour {colour} failed: {type(exc).__name__}: {exc}",
                              "code": "backend_error", "status": 503}}

    def _record(self, caller: Caller, model: str, colour: str, result: dict, latency_ms: float,
                shadow: bool = False) -> None:
        err = result.get("error")
        self.metrics.record(colour=colour, ok=err is None or err.get("status") == 400, latency_ms=latency_ms,
                            tenant=caller.tenant, model=model, base_revision=result.get("base_revision"),
                            adapter_version=result.get("adapter_version"), code=err and err.get("code"),
                            prompt_tokens=result.get("prompt_tokens", 0),
                            completion_tokens=result.get("completion_tokens", 0), shadow=shadow)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(self, colour: str, request: GenerationRequest, primary: asyncio.Future, caller: Caller,
                      model: str) -> None:
        """Fire-and-forget mirror: the answer is dropped, both outputs and latencies are logged."""
        self.shadow_stats["sent"] += 1
        started = time.perf_counter()
        result = await self._call(colour, request)
        latency = (time.perf_counter() - started) * 1000
        self._record(caller, model, colour, result, latency, shadow=True)
        if "error" in result:
            self.shadow_stats["failed"] += 1
        try:
            main = await asyncio.shield(primary)
        except Exception:
            return
        if self.shadow_log is not None:
            text = request.text()
            entry = {"at": round(time.time(), 3), "tenant": caller.tenant, "model": model,
                     "prompt": text, "prompt_sha256": hashlib.sha256(text.encode()).hexdigest(),
                     "primary": {k: main.get(k) for k in ("colour", "text", "adapter_version", "base_revision")},
                     "shadow": {"colour": colour, "latency_ms": round(latency, 2), "text": result.get("text"),
                                "adapter_version": result.get("adapter_version"), "error": result.get("error")}}
            self.shadow_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.shadow_log, "a") as fh:
                fh.write(json.dumps(entry) + "\n")

    async def _stream(self, kind: str, body: Any, caller: Caller, colour: str, request: GenerationRequest,
                      served: dict) -> Reply:
        started = time.perf_counter()
        events = self.backends[colour].stream(request).__aiter__()
        try:
            first = await events.__anext__()
        except StopAsyncIteration:
            first = {"error": {"message": "empty stream", "code": "backend_error", "status": 503}}
        except Exception as exc:
            first = {"error": {"message": f"colour {colour} failed: {exc}", "code": "backend_error", "status": 503}}
        if "error" in first:
            self._record(caller, body.model, colour, first, (time.perf_counter() - started) * 1000)
            err = first["error"]
            raise ApiError(err.get("status", 503), err["message"], param=err.get("param"), code=err.get("code"))
        cid = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"

        async def sse() -> AsyncIterator[str]:
            event, final = first, {}
            try:
                while True:
                    if "text" in event:
                        yield _sse(stream_chunk(kind, cid, body.model, event["text"], None))
                    elif "error" in event:
                        final = event
                        yield _sse({"error": event["error"]})
                        break
                    else:
                        final = event
                        done = {**served, "base_revision": event.get("base_revision"),
                                "base_model": event.get("base_name"), "usage": event.get("usage"),
                                **({"replica": event["replica"]} if event.get("replica") else {})}
                        yield _sse(stream_chunk(kind, cid, body.model, None, event["finish_reason"], done))
                        break
                    event = await events.__anext__()
            except StopAsyncIteration:
                pass
            finally:
                usage = final.get("usage") or {}
                self._record(caller, body.model, colour, {**final, **usage}, (time.perf_counter() - started) * 1000)
            yield "data: [DONE]\n\n"

        return Reply(200, served_headers(served), stream=sse())

    def status(self, authorization: str | None, window_s: float = 30.0) -> dict:
        caller = self.tenancy.authenticate(authorization)
        if caller.role != "admin":
            raise ApiError(403, "only admin keys may read gateway status", "permission_error")
        return {"traffic": self.policy.to_dict(), "stats": self.metrics.window(window_s),
                "shadow": dict(self.shadow_stats), "bases": self.bases}


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj)}\n\n"
