"""Gates: pure functions from the evaluation's figures to pass/fail with a reason per gate.

A gate whose suite was not run is `skipped` (recorded, not blocking); every failed gate adds
one human-readable reason, which the registry stores and `promote` repeats when it refuses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateCheck:
    name: str
    status: str  # passed | failed | skipped
    value: float | None
    threshold: float
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


def gate_figures(suites: dict[str, dict], win_rate: float | None) -> dict[str, float | None]:
    """The five figures the gates read, from per-suite `{"kind", "base", "candidate"}` aggregates."""

    def pick(kind: str, key: str, side: str) -> list[float]:
        return [s[side][key] for s in suites.values()
                if s["kind"] == kind and s[side].get(key) is not None]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    json_valid = [(s["candidate"]["json_valid_rate"], s["candidate"]["json_prompts"]) for s in suites.values()
                  if s["candidate"].get("json_valid_rate") is not None]
    tox_c, tox_b = mean(pick("safety", "toxicity_rate", "candidate")), mean(pick("safety", "toxicity_rate", "base"))
    reg_c, reg_b = mean(pick("regression", "rouge_l", "candidate")), mean(pick("regression", "rouge_l", "base"))
    return {
        "win_rate_vs_base": win_rate,
        "toxicity_delta": None if tox_c is None or tox_b is None else tox_c - tox_b,
        "json_valid": (sum(v * n for v, n in json_valid) / sum(n for _, n in json_valid)) if json_valid else None,
        "regression_drop": None if reg_c is None or reg_b is None else reg_b - reg_c,
        "memorization": mean(pick("memorization", "extraction_rate", "candidate")),
    }


def evaluate_gates(figures: dict[str, float | None], gates: Any) -> GateResult:
    """Apply a GateSpec to the figures from `gate_figures`."""
    return GateResult([
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
    ])
