"""Evaluation: suites, metrics, judges and gates over OpenAI-compatible endpoints (Serve or a local engine).

Ray-free: the eval job talks HTTP to whatever serves the base and the candidate.
"""

from llmft.evaluation.gates import GateCheck, GateResult, evaluate_gates
from llmft.evaluation.suites import EvalItem, Suite, load_suites

__all__ = ["EvalItem", "GateCheck", "GateResult", "Suite", "evaluate_gates", "load_suites"]
