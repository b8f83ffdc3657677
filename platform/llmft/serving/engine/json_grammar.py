"""Structured outputs for the PEFT engine: xgrammar's JSON-schema grammars as a `generate` logits processor.

vLLM applies the same xgrammar grammars inside its scheduler; here a processor masks each row's
logits to the tokens its grammar allows. Whitespace between JSON tokens is not allowed (as with
the vLLM engine), so a small model cannot spend its budget on newlines. Compiled grammars are
cached per schema text. `xgrammar` ships with vLLM and is imported lazily.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from llmft.errors import LlmftError


class JsonGrammar:
    """Compiles JSON schemas against one tokenizer and makes per-call logits processors."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        try:
            import xgrammar as xgr
        except ImportError:
            raise LlmftError("response_format on the peft engine needs xgrammar (pip install xgrammar)") from None
        self._xgr = xgr
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgr.GrammarCompiler(info)
        self.compile = lru_cache(maxsize=64)(self._compile)

    def _compile(self, schema_text: str) -> Any:
        try:
            return self._compiler.compile_json_schema(json.loads(schema_text), any_whitespace=False)
        except Exception as exc:
            raise LlmftError(f"response_format: cannot compile the JSON schema ({exc})") from None

    def processor(self, schema_text: str) -> "GrammarLogits":
        return GrammarLogits(self._xgr, self.compile(schema_text))


class GrammarLogits:
    """A transformers logits processor: row i may only emit what its grammar allows next.

    Unlike xgrammar's contrib processor, a row that stopped for another reason (its own
    max_tokens or stop sequence in a shared batch, then padded) is simply left alone.
    """

    def __init__(self, xgr: Any, compiled: Any):
        self.xgr, self.compiled = xgr, compiled
        self.matchers: list[Any] = []
        self.live: list[bool] = []
        self.mask: Any = None
        self.started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        xgr = self.xgr
        rows = input_ids.shape[0]
        if not self.matchers:
            self.matchers = [xgr.GrammarMatcher(self.compiled) for _ in range(rows)]
            self.live = [True] * rows
            self.mask = xgr.allocate_token_bitmask(rows, self.compiled.tokenizer_info.vocab_size)
        if self.started:
            for i, m in enumerate(self.matchers):
                if self.live[i] and not m.is_terminated() and not m.accept_token(int(input_ids[i, -1])):
                    self.live[i] = False  # finished for another reason and padded: no longer constrained
        self.started = True
        self.mask.fill_(-1)  # all allowed, then each live row's grammar narrows its own row
        for i, m in enumerate(self.matchers):
            if self.live[i] and not m.is_terminated():
                m.fill_next_token_bitmask(self.mask, i)
        out = scores.to("cpu") if scores.device.type != "cpu" else scores
        xgr.apply_token_bitmask_inplace(out, self.mask, vocab_size=out.shape[-1])
        return out.to(scores.device)
