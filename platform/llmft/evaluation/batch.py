"""Batch inference for evaluation: every side's suites as one Ray Data job, one vLLM engine per actor.

The HTTP path sends each prompt through the serving gateway; at 10,000+ prompts the batch path
is cheaper: rows (model, prompt) go through `map_batches` over an actor pool, each actor holding
one `VllmEngine` with the base and the evaluated adapters (hash-verified on load, as in serving),
and vLLM's continuous batching keeps it full. The outputs come back as the same `GenerationRun`s,
so the scoring, judging and gates are exactly the HTTP path's. Ray and vLLM are imported lazily.
"""

from __future__ import annotations

import json
import time
from typing import Any

from llmft.evaluation.client import EndpointError, GenerationRun
from llmft.serving.endpoint import BASE_NAME as BASE_MODEL  # the bare base's model name, as over HTTP


class VllmBatchPredictor:
    """A Ray Data actor: one vLLM engine over the base and the named adapters; rows in, outputs out."""

    def __init__(self, base_ref: str, adapters: dict[str, Any], engine_options: dict | None = None):
        from llmft.serving.engine.vllm_engine import VllmEngine

        self.adapters = adapters
        self.engine = VllmEngine(base_ref, max_adapters=max(1, len(adapters)), **(engine_options or {}))

    def __call__(self, batch: dict) -> dict:
        from llmft.serving.engine.interface import GenerationRequest, SamplingParams

        requests = []
        for model, prompt, api, max_tokens, stop in zip(batch["model"], batch["prompt"], batch["api"],
                                                        batch["max_tokens"], batch["stop"]):
            payload = json.loads(prompt)
            params = SamplingParams(max_tokens=int(max_tokens), stop=tuple(json.loads(stop)))  # greedy, as over HTTP
            adapter = self.adapters.get(str(model))
            if api == "chat":
                messages = payload if isinstance(payload, list) else [{"role": "user", "content": payload}]
                requests.append(GenerationRequest(messages=tuple(messages), adapter=adapter, params=params))
            else:
                requests.append(GenerationRequest(prompt=payload, adapter=adapter, params=params))
        results = self.engine.generate(requests)
        ok = [not isinstance(r, Exception) for r in results]
        return {"i": batch["i"],
                "text": [r.text if good else "" for r, good in zip(results, ok)],
                "error": [None if good else str(r) for r, good in zip(results, ok)],
                "completion_tokens": [r.completion_tokens if good else 0 for r, good in zip(results, ok)],
                "served": [json.dumps({"adapter_version": r.adapter_version, "base_revision": r.base_revision,
                                       "engine": "vllm-batch"}) if good else "{}" for r, good in zip(results, ok)]}


class BatchInference:
    """Runs (model, prompts) jobs as one Ray Data job over `actors` vLLM engines."""

    def __init__(self, base_ref: str, adapters: dict[str, Any], *, actors: int = 1, batch_size: int = 64,
                 actor_cpus: float = 1.0, engine_options: dict | None = None, max_failed_share: float = 0.1):
        self.base_ref, self.adapters = str(base_ref), dict(adapters)
        self.actors, self.batch_size, self.actor_cpus = actors, batch_size, actor_cpus
        self.engine_options = dict(engine_options or {})
        self.max_failed_share = max_failed_share
        if BASE_MODEL in self.adapters:
            raise EndpointError(f"adapter name {BASE_MODEL!r} is reserved for the base")

    def run(self, jobs: list[tuple[str, list, int, str]], stop: list[str] | None = None) -> list[GenerationRun]:
        """`jobs`: (model, prompts, max_tokens, api); one GenerationRun per job, prompts in order."""
        import ray

        rows = []
        for j, (model, prompts, max_tokens, api) in enumerate(jobs):
            if model != BASE_MODEL and model not in self.adapters:
                raise EndpointError(f"batch inference: model {model!r} is neither {BASE_MODEL!r} nor a loaded adapter")
            rows += [{"i": len(rows) + k, "job": j, "model": model, "prompt": json.dumps(p), "api": api,
                      "max_tokens": int(max_tokens), "stop": json.dumps(stop or [])} for k, p in enumerate(prompts)]
        if not rows:
            return [GenerationRun([], [], 0.0) for _ in jobs]
        started = time.perf_counter()
        ds = ray.data.from_items(rows).map_batches(
            VllmBatchPredictor, batch_size=self.batch_size, concurrency=self.actors, num_cpus=self.actor_cpus,
            fn_constructor_kwargs={"base_ref": self.base_ref, "adapters": self.adapters,
                                   "engine_options": self.engine_options})
        out = {int(r["i"]): r for r in ds.take_all()}
        seconds = time.perf_counter() - started
        runs = []
        for j, (model, prompts, _, _) in enumerate(jobs):
            mine = [out[r["i"]] for r in rows if r["job"] == j]
            run = GenerationRun([str(r["text"]) for r in mine], [r["error"] or None for r in mine], seconds, 0,
                                sum(int(r["completion_tokens"]) for r in mine),
                                [json.loads(r["served"]) for r in mine])
            if prompts and run.failed / len(prompts) > self.max_failed_share:
                first = next(e for e in run.errors if e)
                raise EndpointError(f"batch inference (model {model!r}) failed {run.failed} of {len(prompts)} "
                                    f"prompts; first error: {first}")
            runs.append(run)
        return runs


class BatchClient:
    """An evaluation side answered by a `BatchInference` (the evaluator runs sides sharing one as one job)."""

    def __init__(self, backend: BatchInference, model: str):
        self.backend, self.model = backend, model

    def describe(self) -> dict:
        return {"url": "ray-data", "model": self.model}

    async def generate(self, prompts: list, *, max_tokens: int, api: str = "chat",
                       stop: list[str] | None = None) -> GenerationRun:
        import asyncio

        return (await asyncio.to_thread(self.backend.run, [(self.model, prompts, max_tokens, api)], stop))[0]
