"""Quality filters: each returns the named reason a row is dropped, or None to keep it.

Reasons (counted in the curation report): `empty`, `too_short`, `too_long`,
`repetitive_lines`, `repetitive_ngrams`, `toxic`. Toxicity is pluggable: the
default `lexicon` scorer is a weighted word list (fast, transparent, crude: it
knows no context or sarcasm); any scorer the operator registered (llmft.plugins,
entry-point group `llmft.toxicity_scorers`) taking a string and returning a score
in [0, 1] can replace it, by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

_WORDS = re.compile(r"[a-z']+")

# A small lexicon of insults and profanity; weight 1 for words aimed at a person,
# 0.5 for words common in heated but acceptable complaints.
LEXICON: dict[str, float] = {
    **{w: 1.0 for w in ("idiot", "idiots", "moron", "morons", "imbecile", "stupid", "dumb", "loser", "losers",
                        "pathetic", "clueless", "incompetent", "cretin", "dimwit", "halfwit", "scum", "shut",
                        "retard", "fuck", "fucking", "shit", "bastard", "asshole", "bitch", "crap", "jerk")},
    **{w: 0.5 for w in ("useless", "worthless", "garbage", "trash", "hate", "damn", "ridiculous", "awful")},
}


def lexicon_toxicity(text: str) -> float:
    """w / (w + 1) for the summed lexicon weight w: one insult scores 0.5, two 0.67."""
    weight = sum(LEXICON.get(w, 0.0) for w in _WORDS.findall(text.lower()))
    return weight / (weight + 1.0)


def load_scorer(name: str, field: str = "filters.toxicity_scorer") -> Callable[[str], float]:
    """A registered scorer by name (`lexicon` built in); anything else is refused, naming the allowed ones."""
    from llmft import plugins

    return plugins.load("toxicity_scorer", name, field)


def duplicate_line_ratio(text: str) -> float:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)


def ngram_repeat_ratio(text: str, n: int = 3) -> float:
    words = text.lower().split()
    if len(words) < n + 1:
        return 0.0
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


@dataclass
class QualityFilter:
    """The configured filters, applied in order; the first failing one names the reason."""

    fields: tuple[str, ...]
    min_tokens: int = 4
    max_tokens: int = 2048
    max_duplicate_line_ratio: float = 0.3
    max_ngram_repeat_ratio: float = 0.3
    toxicity_max: float = 0.5
    scorer: Callable[[str], float] = lexicon_toxicity
    count_tokens: Callable[[str], int] | None = None

    @classmethod
    def from_spec(cls, spec: Any, fields: tuple[str, ...], tokenizer: Any = None) -> "QualityFilter":
        counter = None
        if tokenizer is not None:
            counter = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        return cls(fields=fields, min_tokens=spec.min_tokens, max_tokens=spec.max_tokens,
                   max_duplicate_line_ratio=spec.max_duplicate_line_ratio,
                   max_ngram_repeat_ratio=spec.max_ngram_repeat_ratio, toxicity_max=spec.toxicity_max,
                   scorer=load_scorer(spec.toxicity_scorer), count_tokens=counter)

    def tokens(self, text: str) -> int:
        return self.count_tokens(text) if self.count_tokens else len(text.split())

    def reason(self, row: dict) -> str | None:
        values = [row.get(f) for f in self.fields]
        if any(not isinstance(v, str) or not v.strip() for v in values):
            return "empty"
        text = "\n".join(values)
        n = self.tokens(text)
        if n < self.min_tokens:
            return "too_short"
        if n > self.max_tokens:
            return "too_long"
        if any(duplicate_line_ratio(v) > self.max_duplicate_line_ratio for v in values):
            return "repetitive_lines"
        if any(ngram_repeat_ratio(v) > self.max_ngram_repeat_ratio for v in values):
            return "repetitive_ngrams"
        if self.scorer(text) > self.toxicity_max:
            return "toxic"
        return None
