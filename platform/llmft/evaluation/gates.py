"""Gates: pure functions from the evaluation's figures to pass/fail with a reason per gate.

Relative gates compare with the base (win-rate, toxicity rise, regression drop); absolute gates
ask for task figures whatever the base does (JSON validity, exact match, ROUGE-L, accuracy per
JSON field, distinct answers), so a model that is merely less bad than a bad base is refused.
A gate whose suite was not run is `skipped` and one left unset is `off` (both recorded, not
blocking); every failed gate adds one reason naming the gate and the figure, which the registry
stores and `promote` repeats when it refuses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateCheck:
    name: str
    status: str  # passed | failed | skipped | off
    value: float | None
    threshold: float | None
    op: str  # ">=" or "<="
    detail: str

    @property
    def passed(self) -> bool:
        return self.status != "failed"


@dataclass
class GateResult:
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if c.status == "failed"]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reasons": self.reasons,
                "checks": [{**asdict(c), "passed": c.passed} for c in self.checks]}


def _check(name: str, value: float | None, threshold: float, op: str, what: str, missing: str) -> GateCheck:
    if value is None:
        return GateCheck(name, "skipped", None, threshold, op, missing)
    ok = value >= threshold - 1e-12 if op == ">=" else value <= threshold + 1e-12
    verb = "at least" if op == ">=" else "at most"
    detail = f"{what} {value:.3f} ({'ok' if ok else 'must be'} {verb} {threshold:.3f})"
    return GateCheck(name, "passed" if ok else "failed", round(value, 6), threshold, op, detail)


def _off(name: str, op: str) -> GateCheck:
    return GateCheck(name, "off", None, None, op, "not set in the spec")


def gate_figures(suites: dict[str, dict], win_rate: float | None) -> dict[str, Any]:
    """The figures the gates read, from per-suite `{"kind", "base", "candidate"}` aggregates."""

    def pick(kind: str, key: str, side: str) -> list[float]:
        return [s[side][key] for s in suites.values()
                if s["kind"] == kind and s[side].get(key) is not None]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    def weighted(pairs: list[tuple[float, int]]) -> float | None:
        total = sum(n for _, n in pairs)
        return sum(v * n for v, n in pairs) / total if total else None

    golden = [s["candidate"] for s in suites.values() if s["kind"] == "golden"]
    json_valid = [(s["candidate"]["json_valid_rate"], s["candidate"]["json_prompts"]) for s in suites.values()
                  if s["candidate"].get("json_valid_rate") is not None]
    tox_c, tox_b = mean(pick("safety", "toxicity_rate", "candidate")), mean(pick("safety", "toxicity_rate", "base"))
    reg_c, reg_b = mean(pick("regression", "rouge_l", "candidate")), mean(pick("regression", "rouge_l", "base"))
    fields: dict[str, list[tuple[float, int]]] = {}
    for agg in golden:
        for name, acc in (agg.get("field_accuracy") or {}).items():
            fields.setdefault(name, []).append((acc, agg["field_prompts"]))
    distinct = [(agg["distinct_answers"], agg.get("distinct_references")) for agg in golden
                if agg.get("distinct_answers") is not None]
    return {
        "win_rate_vs_base": win_rate,
        "toxicity_delta": None if tox_c is None or tox_b is None else tox_c - tox_b,
        "json_valid": weighted(json_valid),
        "regression_drop": None if reg_c is None or reg_b is None else reg_b - reg_c,
        "memorization": mean(pick("memorization", "extraction_rate", "candidate")),
        "exact_match": weighted([(a["exact_match"], a["prompts"]) for a in golden if a.get("exact_match") is not None]),
        "rouge_l": weighted([(a["rouge_l"], a["prompts"]) for a in golden if a.get("rouge_l") is not None]),
        "field_accuracy": {name: weighted(pairs) for name, pairs in sorted(fields.items())},
        "distinct_answers": distinct,
    }


def _distinct_check(pairs: list[tuple[int, int | None]], minimum: int) -> GateCheck:
    """The fewest different answers a golden suite got, among suites whose references differ that much."""
    name = "distinct_answers_min"
    if minimum <= 0:
        return _off(name, ">=")
    eligible = [answers for answers, refs in pairs if refs is None or refs >= minimum]
    if not eligible:
        return GateCheck(name, "skipped", None, minimum, ">=", f"no golden suite with {minimum}+ distinct references")
    low = min(eligible)
    ok = low >= minimum
    detail = (f"distinct candidate answers in a golden suite {low} ({'ok' if ok else 'must be'} at least {minimum}"
              f"{'' if ok else ': the model gives the same answer to every prompt' if low == 1 else ''})")
    return GateCheck(name, "passed" if ok else "failed", float(low), float(minimum), ">=", detail)


def evaluate_gates(figures: dict[str, Any], gates: Any) -> GateResult:
    """Apply a GateSpec to the figures from `gate_figures`: relative gates first, then absolute ones."""
    checks = [
        _check("win_rate_vs_base_min", figures.get("win_rate_vs_base"), gates.win_rate_vs_base_min, ">=",
               "pairwise win-rate vs base", "no suite with references to judge"),
        _check("toxicity_max_delta", figures.get("toxicity_delta"), gates.toxicity_max_delta, "<=",
               "toxicity-rate rise vs base on red-team prompts", "no safety suite"),
        _check("json_valid_min", figures.get("json_valid"), gates.json_valid_min, ">=",
               "schema-valid JSON share", "no structured (expect_json) prompts"),
        _check("regression_max_drop", figures.get("regression_drop"), gates.regression_max_drop, "<=",
               "general-slice ROUGE-L drop vs base", "no regression suite"),
        _check("memorization_max", figures.get("memorization"), gates.memorization_max, "<=",
               "share of planted canaries extracted", "no memorization suite"),
    ]
    for name, key, what in (("exact_match_min", "exact_match", "golden exact-match share"),
                            ("rouge_l_min", "rouge_l", "golden ROUGE-L vs references")):
        threshold = getattr(gates, name, None)
        checks.append(_off(name, ">=") if threshold is None else
                      _check(name, figures.get(key), threshold, ">=", what, "no golden suite"))
    accuracy = figures.get("field_accuracy") or {}
    for field_name, threshold in sorted((getattr(gates, "field_accuracy_min", None) or {}).items()):
        checks.append(_check(f"field_accuracy_min.{field_name}", accuracy.get(field_name), threshold, ">=",
                             f"accuracy of JSON field {field_name!r}",
                             f"no golden reference is a JSON object with field {field_name!r}"))
    checks.append(_distinct_check(figures.get("distinct_answers") or [], getattr(gates, "distinct_answers_min", 0)))
    return GateResult(checks)
