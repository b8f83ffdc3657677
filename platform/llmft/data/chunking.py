"""The chunker: long document text -> overlapping windows of at most `chunk_tokens` tokens.

Tokens are the base model's (the tokenizer training loads, through its offset mapping) so a
chunk fits the context the spec was written for; without a tokenizer a token is a
whitespace-delimited word (about 1.3 tokens of an English BPE vocabulary), the same count the
quality filters use then. Every chunk is an exact substring of its text, so its provenance
keeps the byte offset where it starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offset in the chunked text
    byte_start: int  # the same offset in UTF-8 bytes
    tokens: int


def token_spans(text: str, tokenizer: Any = None) -> list[tuple[int, int]]:
    """(start, end) character spans of the tokens of `text`."""
    if tokenizer is None:
        return [m.span() for m in _WORD.finditer(text)]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [(a, b) for a, b in enc["offset_mapping"] if b > a]


def chunk_text(text: str, chunk_tokens: int, overlap_tokens: int, tokenizer: Any = None) -> list[Chunk]:
    """Windows of `chunk_tokens` tokens, each starting `chunk_tokens - overlap_tokens` after the last.

    The last window ends at the text's end; no window lies wholly inside the overlap of another.
    """
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(f"overlap_tokens ({overlap_tokens}) must be >= 0 and < chunk_tokens ({chunk_tokens})")
    spans = token_spans(text, tokenizer)
    out: list[Chunk] = []
    step = chunk_tokens - overlap_tokens
    done_chars = done_bytes = 0  # byte offsets counted incrementally: linear in the text, not quadratic
    for first in range(0, len(spans), step):
        last = min(first + chunk_tokens, len(spans)) - 1
        start, end = spans[first][0], spans[last][1]
        done_bytes += len(text[done_chars:start].encode("utf-8"))
        done_chars = start
        out.append(Chunk(text[start:end], start, done_bytes, last - first + 1))
        if last == len(spans) - 1:
            break
    return out
