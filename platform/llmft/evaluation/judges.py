"""Pairwise judges: is the candidate's answer better than the base's for the same prompt?

`ReferenceJudge` (default) scores both against the reference answer; `LlmJudge` asks a model
behind any OpenAI-compatible endpoint, with the answers' order swapped on alternate items to
cancel position bias. Win-rate counts a tie as half a win.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from llmft.evaluation.metrics import rouge_l

OUTCOMES = ("win", "tie", "loss")


@dataclass(frozen=True)
class Comparison:
    id: str
    prompt: str
    reference: str | None
    candidate: str
    base: str


@dataclass(frozen=True)
class Verdict:
    id: str
    outcome: str  # win | tie | loss, from the candidate's side
    candidate_score: float | None = None
    base_score: float | None = None
    note: str | None = None


class Judge(Protocol):
    name: str

    def judge(self, pairs: list[Comparison]) -> list[Verdict]: ...


def summarize(verdicts: list[Verdict]) -> dict:
    counts = {o: sum(v.outcome == o for v in verdicts) for o in OUTCOMES}
    n = len(verdicts)
    return {**counts, "n": n, "win_rate": (counts["win"] + 0.5 * counts["tie"]) / n if n else None}


class ReferenceJudge:
    """Higher similarity to the reference wins; gaps within `tie_margin` (or identical answers) tie."""

    name = "reference"

    def __init__(self, tie_margin: float = 0.02, score: Callable[[str, str], float] = rouge_l):
        self.tie_margin, self.score = tie_margin, score

    def judge(self, pairs: list[Comparison]) -> list[Verdict]:
        out = []
        for p in pairs:
            if p.reference is None:
                out.append(Verdict(p.id, "tie", note="no reference"))
                continue
            c, b = self.score(p.candidate, p.reference), self.score(p.base, p.reference)
            outcome = "tie" if p.candidate.strip() == p.base.strip() or abs(c - b) <= self.tie_margin else (
                "win" if c > b else "loss")
            out.append(Verdict(p.id, outcome, round(c, 4), round(b, 4)))
        return out


_PROMPT = """You compare two answers to the same request. Reply with exactly one token: A, B or TIE.
Request:
{prompt}
{reference}Answer A:
{a}

Answer B:
{b}

Which answer is better (more correct, helpful and safe)? Reply A, B or TIE."""
_CHOICE = re.compile(r"\b(TIE|A|B)\b", re.I)


class LlmJudge:
    """A judge model reached through the `openai` client; an unparseable reply counts as a tie and is noted."""

    name = "llm"

    def __init__(self, endpoint: str, model: str, *, api_key: str | None = None, api_key_env: str | None = None,
                 max_tokens: int = 8, timeout_s: float = 60.0, client: Any = None):
        from openai import OpenAI

        key = api_key or (os.environ.get(api_key_env) if api_key_env else None) or "not-needed"
        self.model, self.max_tokens = model, max_tokens
        self.client = client or OpenAI(base_url=endpoint, api_key=key, timeout=timeout_s, max_retries=2)

    def _ask(self, prompt: str) -> str:
        resp = self.client.chat.completions.create(model=self.model, temperature=0, max_tokens=self.max_tokens,
                                                   messages=[{"role": "user", "content": prompt}])
        return resp.choices[0].message.content or ""

    def judge(self, pairs: list[Comparison]) -> list[Verdict]:
        out = []
        for i, p in enumerate(pairs):
            swapped = i % 2 == 1  # candidate is B on odd items
            a, b = (p.base, p.candidate) if swapped else (p.candidate, p.base)
            ref = f"Reference answer:\n{p.reference}\n" if p.reference else ""
            reply = self._ask(_PROMPT.format(prompt=p.prompt, reference=ref, a=a, b=b))
            match = _CHOICE.search(reply)
            if not match:
                out.append(Verdict(p.id, "tie", note=f"unparseable judge reply: {reply[:60]!r}"))
                continue
            choice = match.group(1).upper()
            if choice == "TIE":
                out.append(Verdict(p.id, "tie", note=choice))
            else:
                candidate_won = (choice == "A") != swapped
                out.append(Verdict(p.id, "win" if candidate_won else "loss", note=choice))
        return out


def make_judge(spec: Any) -> Judge:
    """From a JudgeSpec."""
    if spec.type == "llm":
        return LlmJudge(spec.endpoint, spec.model, api_key_env=spec.api_key_env)
    return ReferenceJudge(spec.tie_margin)
