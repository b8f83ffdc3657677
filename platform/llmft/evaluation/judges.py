"""Pairwise judges: is the candidate's answer better than the base's for the same prompt?

`ReferenceJudge` (default) scores both against the reference answer; `LlmJudge` asks a model
behind any OpenAI-compatible endpoint, with the answers' order swapped on alternate items to
cancel position bias. Win-rate counts a tie as half a win, except a tie of two wrong answers
(neither matches the reference), which earns nothing: two bad models must not make a win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from llmft.evaluation.metrics import answers_match, rouge_l

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
    both_wrong: bool = False  # a tie where neither answer matches the reference: no credit


class Judge(Protocol):
    name: str

    def judge(self, pairs: list[Comparison]) -> list[Verdict]: ...


def summarize(verdicts: list[Verdict]) -> dict:
    counts = {o: sum(v.outcome == o for v in verdicts) for o in OUTCOMES}
    wrong_ties = sum(v.outcome == "tie" and v.both_wrong for v in verdicts)
    n = len(verdicts)
    credit = counts["win"] + 0.5 * (counts["tie"] - wrong_ties)
    return {**counts, "ties_both_wrong": wrong_ties, "n": n, "win_rate": credit / n if n else None}


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
            c_ok, b_ok = answers_match(p.candidate, p.reference), answers_match(p.base, p.reference)
            same = p.candidate.strip() == p.base.strip() or (c_ok and b_ok)
            outcome = "tie" if same or abs(c - b) <= self.tie_margin else ("win" if c > b else "loss")
            both_wrong = outcome == "tie" and not (c_ok or b_ok)
            out.append(Verdict(p.id, outcome, round(c, 4), round(b, 4), both_wrong=both_wrong))
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

    def __init__(self, endpoint: str, model: str, *, api_key: str | None = None,
                 max_tokens: int = 8, timeout_s: float = 60.0, client: Any = None):
        from openai import OpenAI

        from llmft.outbound import check_url

        if client is None:
            try:  # the judge sees every prompt and answer: only an endpoint the operator allows
                check_url(endpoint)
            except ValueError as exc:
                from llmft.errors import SpecError

                raise SpecError(f"judge.endpoint: {exc}") from None
        key = api_key or "not-needed"
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


def make_judge(spec: Any, tenant: str | None = None) -> Judge:
    """From a JudgeSpec; its key is `tenant`'s named secret `api_key_secret` (llmft.credentials)."""
    if spec.type == "llm":
        key = None
        if spec.api_key_secret:
            from llmft.credentials import resolve

            key = resolve(tenant or "", spec.api_key_secret, "judge.api_key_secret")
        return LlmJudge(spec.endpoint, spec.model, api_key=key)
    return ReferenceJudge(spec.tie_margin)
