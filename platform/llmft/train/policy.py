"""Training policy: defaults by model size and data classification, and rules a spec may not break.

Each rule has a name; a refusal names it. A default only applies where the spec
left the field unset (pydantic's `model_fields_set`), so explicit choices win
unless a rule forbids them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmft.config.training import Method, TrainingSpec
from llmft.errors import PermissionDeniedError


@dataclass(frozen=True)
class Policy:
    large_model_params: int = 7_000_000_000  # at or above: QLoRA by default
    full_ft_max_params_cpu: int = 1_000_000_000  # full fine-tuning above this needs GPUs
    restricted_max_epsilon: float = 8.0  # restricted data: no run may target more


@dataclass
class Decision:
    rule: str
    action: str  # "default" | "refuse"
    detail: str


@dataclass
class PolicyResult:
    spec: TrainingSpec
    decisions: list[Decision] = field(default_factory=list)


def _explicit(model: object, *path: str) -> bool:
    node = model
    for part in path:
        if part not in getattr(node, "model_fields_set", set()):
            return False
        node = getattr(node, part)
    return True


def refuse(rule: str, detail: str) -> None:
    raise PermissionDeniedError(f"policy rule '{rule}': {detail}")


def apply_policy(spec: TrainingSpec, params: int, classification: str, policy: Policy | None = None) -> PolicyResult:
    """Fill policy defaults into `spec` and refuse what a rule forbids (before any worker starts)."""
    policy = policy or Policy()
    out = spec.model_copy(deep=True)
    decisions: list[Decision] = []
    cls = str(getattr(classification, "value", classification))

    if cls == "restricted":
        if not out.privacy.enabled:
            if _explicit(spec, "privacy", "enabled"):
                refuse("restricted-data-requires-dp",
                       "the dataset is classified restricted; privacy.enabled=false is not allowed")
            out.privacy.enabled = True
            decisions.append(Decision("restricted-data-requires-dp", "default", "privacy.enabled=true"))
        if out.privacy.target_epsilon > policy.restricted_max_epsilon:
            refuse("restricted-data-epsilon-cap", f"privacy.target_epsilon={out.privacy.target_epsilon:g} is above "
                   f"{policy.restricted_max_epsilon:g} for restricted data")

    if params >= policy.large_model_params and out.method != Method.qlora:
        if not _explicit(spec, "method"):
            out.method = Method.qlora
            decisions.append(Decision("large-model-defaults-to-qlora", "default",
                                      f"method=qlora ({params / 1e9:.1f}B parameters)"))
    if out.method == Method.full and params > policy.full_ft_max_params_cpu and not out.resources.use_gpu:
        refuse("full-ft-needs-gpu", f"method=full on a {params / 1e9:.1f}B-parameter model needs resources.use_gpu=true")
    if out.privacy.enabled:
        if out.method != Method.lora:
            if _explicit(spec, "method"):
                refuse("dp-needs-lora", f"privacy.enabled with method={out.method.value}")
            out.method = Method.lora
            decisions.append(Decision("dp-needs-lora", "default", "method=lora"))
        if out.data.packing and not _explicit(spec, "data", "packing"):
            out.data.packing = False
    return PolicyResult(out, decisions)
