"""The transformers + PEFT engine: one base model per process, many LoRA adapters, mixed-adapter batches.

`PeftEngine` implements `llmft.serving.engine.interface.Engine` (CPU or one GPU); `VllmEngine`
(`vllm_engine.py`, `engine: vllm`) fills the same role with continuous batching. Its `AdapterCache` is the replica's one
adapter LRU. No Ray here: the core is what unit tests exercise.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from llmft.errors import LlmftError
from llmft.serving.engine.adapters import AdapterCache, ResolvedAdapter
from llmft.serving.engine.batched_lora import BatchedLora
from llmft.serving.engine.interface import GenerationRequest, GenResult, RequestError, render_prompt
from llmft.serving.engine.stopping import FlagStop, RowStops, cut_at_stop

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" inside a mixed batch


class PeftEngine:
    """transformers + PEFT engine; every model mutation and every `generate` holds one lock.

    Serve may evict an adapter from another thread while a batch runs; concurrent PEFT calls
    on one shared model corrupt each other, hence the single lock. Batches go through
    `BatchedLora` (all adapters of a batch in three ops per layer) when their adapters allow it,
    else one adapter at a time (see `_plan`); `batched_lora=False` uses PEFT's `adapter_names`
    mixed batches instead (the reference the benchmark compares against).
    """

    def __init__(self, base_ref: str, *, max_adapters: int = 8, dtype: Any = None, device: Any = None,
                 base_name: str | None = None, batched_lora: bool = True):
        import torch

        from llmft.models.loading import load_base

        self._torch = torch
        self.model, self.tokenizer, identity = load_base(base_ref, dtype=dtype, padding_side="left",
                                                         device=device, name=base_name)
        self.tokenizer.padding_side = "left"  # transformers 5.23 does not save it
        self.base_name = identity["name"]
        self.base_revision = identity["sha256"][:12]
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.device = device or "cpu"
        self.peft = None  # a PeftModel wrapping self.model once the first adapter is loaded
        self.batched: BatchedLora | None = None
        self.use_batched_lora = batched_lora
        self.lock = threading.RLock()
        self.cache = AdapterCache(max_adapters, self._load, self._unload)
        self._grammar: Any = None  # JsonGrammar, built on the first response_format request

    # -- adapters -------------------------------------------------------------------------
    def _load(self, adapter: ResolvedAdapter) -> None:
        from peft import PeftModel

        with self.lock:
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.model, adapter.path, adapter_name=adapter.peft_name)
            else:
                self.peft.load_adapter(adapter.path, adapter_name=adapter.peft_name)
            if self.peft.active_adapter not in self.peft.peft_config:
                self.peft.set_adapter(adapter.peft_name)  # PEFT leaves a deleted name active
            self.peft.eval()
            self.batched = self.batched or BatchedLora(self.peft)
            self.batched.forget()

    def _unload(self, adapter: ResolvedAdapter) -> None:
        with self.lock:
            if self.peft is not None and adapter.peft_name in self.peft.peft_config:
                self.peft.delete_adapter(adapter.peft_name)
                if self.batched is not None:
                    self.batched.forget()

    def load_adapter(self, adapter: ResolvedAdapter) -> bool:
        """Make an adapter resident (hash-verified); True if it already was."""
        with self.lock:
            return self.cache.ensure(adapter)

    def unload_adapter(self, adapter_id: str) -> bool:
        with self.lock:
            return self.cache.evict(adapter_id)

    # -- validation -----------------------------------------------------------------------
    def render(self, request: GenerationRequest) -> GenerationRequest:
        return render_prompt(self.tokenizer, request)

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def check(self, request: GenerationRequest) -> int:
        """Prompt token count; refuses an over-long or empty request before anything is loaded."""
        n = self.count_tokens(request.prompt)
        if n == 0:
            raise RequestError("prompt is empty", "invalid_request", "prompt")
        if n + request.params.max_tokens > self.context_length:
            raise RequestError(f"prompt ({n} tokens) + max_tokens ({request.params.max_tokens}) exceeds the "
                               f"context length {self.context_length}", "context_length_exceeded", "prompt")
        self._json_processors(request.params)  # a schema that does not compile is the caller's error
        return n

    def _json_processors(self, params: Any) -> list:
        """The logits processor that keeps a response_format request's output inside its JSON schema."""
        if not params.json_schema:
            return []
        if self._grammar is None:
            from llmft.serving.engine.json_grammar import JsonGrammar

            self._grammar = JsonGrammar(self.tokenizer, int(self.model.config.vocab_size))
        try:
            return [self._grammar.processor(params.json_schema)]
        except LlmftError as exc:
            raise RequestError(str(exc), "invalid_request", "response_format") from None

    # -- generation -----------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[GenResult | RequestError]:
        """Generate for a batch that may mix adapters; bad requests get their error, others proceed."""
        requests = list(requests)
        out: list[GenResult | RequestError | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, req in enumerate(requests):
            try:
                requests[i] = req = self.render(req)
                self.check(req)
            except RequestError as exc:
                out[i] = exc
                continue
            groups.setdefault(req.params.group_key(), []).append(i)
        for idx in groups.values():
            for chunk in self._chunks(idx, requests):
                try:
                    results = self._generate_group([requests[i] for i in chunk])
                except LlmftError as exc:  # e.g. an adapter failed verification: only its requests fail
                    results = [RequestError(str(exc), "adapter_unavailable") for _ in chunk]
                for i, res in zip(chunk, results):
                    out[i] = res
        return out  # type: ignore[return-value]

    def _chunks(self, idx: list[int], requests: list[GenerationRequest]) -> Iterator[list[int]]:
        """Split so that no chunk needs more distinct adapters than the cache holds."""
        chunk: list[int] = []
        ids: set[str] = set()
        for i in idx:
            a = requests[i].adapter
            if a is not None and a.adapter_id not in ids and len(ids) >= self.cache.capacity:
                yield chunk
                chunk, ids = [], set()
            chunk.append(i)
            if a is not None:
                ids.add(a.adapter_id)
        if chunk:
            yield chunk

    def _generate_group(self, group: list[GenerationRequest]) -> list[GenResult | RequestError]:
        """One `generate` call; a request whose adapter cannot be loaded gets its error, the rest run."""
        with self.lock:
            pinned = frozenset(r.adapter.adapter_id for r in group if r.adapter is not None)
            failed: dict[str, RequestError] = {}
            for r in group:
                if r.adapter is not None and r.adapter.adapter_id not in failed:
                    try:
                        self.cache.ensure(r.adapter, pinned)
                    except LlmftError as exc:
                        failed[r.adapter.adapter_id] = RequestError(str(exc), "adapter_unavailable", "model")
            ok = [r for r in group if r.adapter is None or r.adapter.adapter_id not in failed]
            results = iter(self._run(ok) if ok else [])
            return [failed[r.adapter.adapter_id] if r.adapter is not None and r.adapter.adapter_id in failed
                    else next(results) for r in group]

    def _run(self, reqs: list[GenerationRequest]) -> list[GenResult]:
        torch = self._torch
        params = reqs[0].params
        rows = [r.adapter for r in reqs]
        plan = self._plan(rows)
        if plan == "split":
            return self._run_split(reqs)
        with self.lock:
            enc = self.tokenizer([r.prompt for r in reqs], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.device)
            width = enc["input_ids"].shape[1]
            limits = [r.params.max_tokens for r in reqs]
            criteria = RowStops(self.tokenizer, width, limits, [r.params.stop for r in reqs])
            kwargs: dict[str, Any] = dict(max_new_tokens=max(limits), stopping_criteria=[criteria],
                                          pad_token_id=self.tokenizer.pad_token_id, do_sample=not params.greedy,
                                          logits_processor=self._json_processors(params))
            if not params.greedy:
                kwargs.update(temperature=params.temperature, top_p=params.top_p)
                if params.seed is not None:
                    torch.manual_seed(params.seed)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            with torch.no_grad(), self._adapters_applied(rows, plan) as (model, extra):
                output = model.generate(**enc, **extra, **kwargs)
        results = []
        for row, r in enumerate(reqs):
            prompt_tokens = int(enc["attention_mask"][row].sum())
            results.append(self._finish(output[row, width:].tolist(), r, prompt_tokens))
        return results

    def _run_split(self, reqs: list[GenerationRequest]) -> list[GenResult]:
        """One `generate` per adapter (and one for base rows), results back in request order."""
        groups: dict[str | None, list[int]] = {}
        for i, r in enumerate(reqs):
            groups.setdefault(r.adapter.adapter_id if r.adapter else None, []).append(i)
        out: list[GenResult | None] = [None] * len(reqs)
        for idx in groups.values():
            for i, res in zip(idx, self._run([reqs[i] for i in idx])):
                out[i] = res
        return out  # type: ignore[return-value]

    def _plan(self, rows: list[ResolvedAdapter | None]) -> str:
        """How a batch runs: "base"; "batched" (BatchedLora, one pass); "peft_mixed" (PEFT's
        adapter_names, when batched_lora is off); "single" (one adapter made active: what DoRA and
        other variants need); or "split" (several adapters that only run one at a time)."""
        names = {a.peft_name for a in rows if a is not None}
        if not names:
            return "base"
        if self.use_batched_lora and self.batched is not None and self.batched.supports(names):
            return "batched"
        if not self.use_batched_lora and not (self.batched and self.batched.has_variant(names)):
            return "peft_mixed"
        return "single" if len(names) == 1 and all(a is not None for a in rows) else "split"

    @contextmanager
    def _adapters_applied(self, rows: list[ResolvedAdapter | None], plan: str) -> Iterator[tuple[Any, dict]]:
        """The model to call and extra generate kwargs so that row i runs with `rows[i]` (resident),
        following `plan` (from `_plan(rows)`)."""
        names = [a.peft_name if a is not None else None for a in rows]
        if plan == "base":
            if self.peft is not None and self.peft.peft_config:
                with self.peft.disable_adapter():
                    yield self.peft, {}
            else:
                yield self.model, {}
        elif plan == "batched":
            with self.batched.apply(names):
                yield self.peft, {}
        elif plan == "peft_mixed":
            yield self.peft, {"adapter_names": [n or BASE_ADAPTER for n in names]}
        elif plan == "single":
            self.peft.set_adapter(names[0])
            yield self.peft, {}
        else:
            raise LlmftError("internal: a batch mixing adapters that cannot share a pass must be split first")

    def _finish(self, ids: list[int], req: GenerationRequest, prompt_tokens: int) -> GenResult:
        eos = self.tokenizer.eos_token_id
        ids = ids[: req.params.max_tokens]
        stopped = False
        if eos in ids:
            ids, stopped = ids[: ids.index(eos)], True
        pad = self.tokenizer.pad_token_id
        while ids and ids[-1] == pad:  # rows a stopping criterion ended early are padded by generate
            ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        text, hit = cut_at_stop(text, req.params.stop)
        return GenResult(text=text, finish_reason="stop" if (stopped or hit) else "length",
                         prompt_tokens=prompt_tokens, completion_tokens=len(ids) + (1 if stopped else 0),
                         adapter_id=req.adapter.adapter_id if req.adapter else None,
                         adapter_version=req.adapter.version if req.adapter else None,
                         base_revision=self.base_revision)

    def stream(self, request: GenerationRequest) -> Iterator[dict]:
        """Yield `{"text": delta}` events then a final `{"finish_reason", "usage"}` event.

        Generation runs in a thread (holding the engine lock) feeding a `TextIteratorStreamer`;
        text that could be the start of a stop sequence is held back until it is decided.
        """
        from transformers import TextIteratorStreamer

        request = self.render(request)
        prompt_tokens = self.check(request)
        params = request.params
        if request.adapter is not None:
            self.load_adapter(request.adapter)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        stop_flag = threading.Event()
        errors: list[BaseException] = []
        counts = {"completion": 0}

        def run() -> None:
            try:
                result = self._stream_generate(request, streamer, stop_flag)
                counts["completion"] = result
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text, sent, hit = "", 0, False
        hold = max((len(s) for s in params.stop), default=1) - 1
        for piece in streamer:
            text += piece
            cut, hit = cut_at_stop(text, params.stop)
            if hit:
                stop_flag.set()
                if len(cut) > sent:
                    yield {"text": cut[sent:]}
                sent = len(cut)
                break
            safe = len(text) - hold if hold else len(text)
            if safe > sent:
                yield {"text": text[sent:safe]}
                sent = safe
        if hit:
            for _ in streamer:  # drain after an early stop so the generating thread can finish
                pass
        thread.join()
        if errors:
            raise LlmftError(f"generation failed: {errors[0]}")
        if not hit and len(text) > sent:
            yield {"text": text[sent:]}
        n = counts["completion"]
        finish = "stop" if hit or n < params.max_tokens else "length"
        yield {"finish_reason": finish, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                                                 "total_tokens": prompt_tokens + n},
               "adapter_id": request.adapter.adapter_id if request.adapter else None,
               "adapter_version": request.adapter.version if request.adapter else None,
               "base_revision": self.base_revision}

    def _stream_generate(self, request: GenerationRequest, streamer: Any, stop_flag: threading.Event) -> int:
        torch = self._torch
        params = request.params
        with self.lock:
            if request.adapter is not None:
                self.cache.ensure(request.adapter, frozenset({request.adapter.adapter_id}))
            enc = self.tokenizer([request.prompt], return_tensors="pt", add_special_tokens=False).to(self.device)
            width = enc["input_ids"].shape[1]
            kwargs: dict[str, Any] = dict(max_new_tokens=params.max_tokens, streamer=streamer,
                                          pad_token_id=self.tokenizer.pad_token_id, do_sample=not params.greedy,
                                          stopping_criteria=[FlagStop(stop_flag)],
                                          logits_processor=self._json_processors(params))
            if params.greedy:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(temperature=params.temperature, top_p=params.top_p)
                if params.seed is not None:
                    torch.manual_seed(params.seed)
            rows = [request.adapter]
            with torch.no_grad(), self._adapters_applied(rows, self._plan(rows)) as (model, extra):
                out = model.generate(**enc, **extra, **kwargs)
        new = out[0, width:].tolist()
        eos = self.tokenizer.eos_token_id
        return new.index(eos) + 1 if eos in new else len(new)

    def info(self) -> dict:
        stats = self.cache.stats
        return {"base_name": self.base_name, "base_revision": self.base_revision,
                "context_length": self.context_length, "resident_adapters": self.cache.resident(),
                "capacity": self.cache.capacity, "hits": stats.hits, "misses": stats.misses,
                "evictions": stats.evictions}
