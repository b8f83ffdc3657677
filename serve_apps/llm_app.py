"""Serve application: an OpenAI-compatible gateway in front of two colours (blue, green) of replicas.

`build_app(args)` is the Serve `import_path` (`serve_apps.llm_app:build_app`). The gateway's
traffic policy lives in its `user_config`, so flips go through a declarative deploy and
restart nothing. Replicas carry the adapter in the request body so `@serve.batch` batches mix
adapters; `@serve.multiplexed` keeps the per-replica adapter LRU (and reports resident ids).
"""

from __future__ import annotations

import asyncio

from ray import serve

from llmft.serving.app_config import AppArgs, make_source
from llmft.serving.replica import ReplicaCore, adapter_from


class _Resident:
    """What the multiplexed LRU holds; eviction (maybe twice, from a thread pool) unloads once."""

    def __init__(self, engine, adapter):
        self.engine, self.adapter_id = engine, adapter.adapter_id

    def __del__(self):
        self.engine.unload_adapter(self.adapter_id)  # idempotent, takes the engine lock


@serve.deployment(max_ongoing_requests=64)
class LLMServer:
    def __init__(self, colour: str, args: dict):
        from llmft.serving.engine import PeftEngine

        a = AppArgs(**args)
        # the engine's own LRU is a backstop sized above the multiplexed one, which is authoritative
        engine = PeftEngine(a.base_model, max_adapters=a.max_adapters + a.max_batch_size,
                            base_name=a.public_base_name())
        self.core = ReplicaCore(engine, colour, serve.get_replica_context().replica_id.unique_id)
        self._pending: dict = {}

        async def load(adapter_id: str):
            adapter = self._pending[adapter_id]
            await asyncio.to_thread(engine.load_adapter, adapter)
            return _Resident(engine, adapter)

        self._adapter = serve.multiplexed(max_num_models_per_replica=a.max_adapters)(load)
        self.generate_batch.set_max_batch_size(a.max_batch_size)
        self.generate_batch.set_batch_wait_timeout_s(a.batch_wait_timeout_s)

    async def _ensure(self, payloads: list[dict]) -> None:
        for p in payloads:
            adapter = adapter_from(p)
            if adapter is not None:
                self._pending[adapter.adapter_id] = adapter
                try:
                    await self._adapter(adapter.adapter_id)
                except Exception:  # a bad adapter fails only its own requests, inside the engine
                    pass

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def generate_batch(self, payloads: list[dict]) -> list[dict]:
        await self._ensure(payloads)
        return await asyncio.to_thread(self.core.generate_batch, payloads)

    async def generate(self, payload: dict) -> dict:
        return await self.generate_batch(payload)

    async def stream(self, payload: dict):
        await self._ensure([payload])
        events = self.core.stream(payload)
        done = object()
        while (event := await asyncio.to_thread(next, events, done)) is not done:
            yield event

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

    def _for(self, payload: dict):
        adapter = payload.get("adapter")
        if self.route_by_adapter and adapter:
            return self.handle.options(multiplexed_model_id=adapter["adapter_id"])
        return self.handle

    async def generate(self, payload: dict) -> dict:
        return await self._for(payload).generate.remote(payload)

    async def stream(self, payload: dict):
        async for event in self._for(payload).options(stream=True).stream.remote(payload):
            yield event


@serve.deployment(max_ongoing_requests=256)
@serve.ingress()
class Gateway:
    def __init__(self, blue, green, args: dict):
        from llmft.serving.gateway import GatewayCore
        from llmft.serving.metrics import ServingMetrics
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
        from llmft.serving.http import create_app

        return create_app(self.core)


def build_app(args: dict):
    """Serve application builder: `args` is `llmft.serving.app_config.AppArgs` as a dict."""
    a = AppArgs(**args)
    dump = a.model_dump(mode="json")
    blue = LLMServer.options(name="blue").bind("blue", dump)
    green = LLMServer.options(name="green").bind("green", dump)
    return Gateway.bind(blue, green, dump)
