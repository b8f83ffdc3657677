"""Serve application: an OpenAI-compatible gateway in front of two colours (blue, green) of replicas.

`build_app(args)` is the Serve `import_path` (`llmft.serving.app:build_app`), so an installed llmft
is all a cluster needs. The gateway's traffic policy lives in its `user_config`, so flips go
through a declarative deploy and restart nothing. The gateway resolves each request's adapter and
sends one `GenerationRequest`; `@serve.batch` batches mix adapters, and the engine's adapter cache
is the replica's one LRU (with `route_by_adapter`, the replica reports what it holds to Serve's
routers, as `@serve.multiplexed` would, so requests follow their adapter).
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from llmft.serving.app_config import AppArgs, make_engine, make_source
from llmft.serving.engine.interface import GenerationRequest
from llmft.serving.engine.replica import ReplicaCore

logger = logging.getLogger(__name__)


class _ResidentReport:
    """Tells Serve's routers which adapter ids this replica holds (or is about to load).

    This is what `@serve.multiplexed` pushes for multiplexed routing; pushing the engine cache's
    own list keeps one adapter LRU per replica. Uses Serve's internal routing-info call (the one
    the multiplexed wrapper uses); a failed push only costs routing locality, never a request.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._last: list[str] | None = None

    def push(self, ids: list[str]) -> None:
        if not self.enabled or sorted(ids) == self._last:
            return
        try:
            from ray.serve._private.common import RequestRoutingInfo
            from ray.serve.context import _get_global_client, _get_internal_replica_context

            replica_id = _get_internal_replica_context().replica_id
            _get_global_client().record_request_routing_info(
                RequestRoutingInfo(replica_id=replica_id, multiplexed_model_ids=sorted(ids)))
            self._last = sorted(ids)
        except Exception as exc:  # noqa: BLE001 - routing is an optimisation
            logger.warning("could not report resident adapters to Serve: %s", exc)


@serve.deployment(max_ongoing_requests=64)
class LLMServer:
    def __init__(self, colour: str, args: dict):
        a = AppArgs(**args)
        engine = make_engine(a)  # peft, or vllm's AsyncLLM (its engine core runs in a child process)
        self.core = ReplicaCore(engine, colour, serve.get_replica_context().replica_id.unique_id)
        self._report = _ResidentReport(a.route_by_adapter)
        self.generate_batch.set_max_batch_size(a.max_batch_size)
        self.generate_batch.set_batch_wait_timeout_s(a.batch_wait_timeout_s)

    def _run(self, requests: list[GenerationRequest]) -> list[dict]:
        cache = self.core.engine.cache
        self._report.push(cache.resident() + [r.adapter_id for r in requests if r.adapter_id])  # loading soon
        try:
            return self.core.generate_batch(requests)
        finally:
            self._report.push(cache.resident())

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def generate_batch(self, requests: list[GenerationRequest]) -> list[dict]:
        return await asyncio.to_thread(self._run, requests)

    async def generate(self, request: GenerationRequest) -> dict:
        if self.core.continuous:  # vLLM: every request joins the running batch as it arrives
            self._report.push(self.core.engine.cache.resident() + ([request.adapter_id] if request.adapter_id else []))
            return await self.core.agenerate(request)
        return await self.generate_batch(request)

    async def stream(self, request: GenerationRequest):
        if self.core.continuous:
            async for event in self.core.astream(request):
                yield event
            self._report.push(self.core.engine.cache.resident())
            return
        events = self.core.stream(request)
        done = object()
        while (event := await asyncio.to_thread(next, events, done)) is not done:
            yield event
        await asyncio.to_thread(self._report.push, self.core.engine.cache.resident())

    async def info(self) -> dict:
        return self.core.info()

    async def health(self) -> dict:
        return await asyncio.to_thread(self.core.health)

    def check_health(self) -> None:
        if self.core.engine.model is None:
            raise RuntimeError("model not loaded")


class _HandleColour:
    """One colour's deployment handle. With `route_by_adapter`, each request carries its adapter id as
    the multiplexed model id, so Serve routes it to a replica already holding that adapter."""

    def __init__(self, handle, route_by_adapter: bool = False):
        self.handle, self.route_by_adapter = handle, route_by_adapter

    def _for(self, request: GenerationRequest):
        if self.route_by_adapter and request.adapter_id:
            return self.handle.options(multiplexed_model_id=request.adapter_id)
        return self.handle

    async def generate(self, request: GenerationRequest) -> dict:
        return await self._for(request).generate.remote(request)

    async def stream(self, request: GenerationRequest):
        async for event in self._for(request).options(stream=True).stream.remote(request):
            yield event


@serve.deployment(max_ongoing_requests=256)
@serve.ingress()
class Gateway:
    def __init__(self, blue, green, args: dict):
        from llmft.serving.gateway.core import GatewayCore
        from llmft.serving.gateway.request_metrics import ServingMetrics
        from llmft.settings import Settings
        from llmft.store import Store

        a = AppArgs(**args)
        settings = Settings.from_env()
        self.core = GatewayCore(store=Store(a.db_url or settings.db_url), source=make_source(a.adapter_source),
                                backends={c: _HandleColour(h, a.route_by_adapter)
                                          for c, h in (("blue", blue), ("green", green))},
                                bases=[a.public_base_name()], metrics=ServingMetrics(ray_metrics=True),
                                shadow_log=a.shadow_log or settings.home / "serving" / "shadow.jsonl")

    def reconfigure(self, config: dict) -> None:
        self.core.configure(config)

    def __serve_build_asgi_app__(self):
        from llmft.serving.gateway.http import create_app

        return create_app(self.core)


def build_app(args: dict):
    """Serve application builder: `args` is `llmft.serving.app_config.AppArgs` as a dict."""
    a = AppArgs(**args)
    dump = a.model_dump(mode="json")
    blue = LLMServer.options(name="blue").bind("blue", dump)
    green = LLMServer.options(name="green").bind("green", dump)
    return Gateway.bind(blue, green, dump)
