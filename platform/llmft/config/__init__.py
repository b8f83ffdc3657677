"""One schema for every spec: load YAML, apply `a.b=c` overrides, validate, refuse with dotted paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

from pydantic import BaseModel, Field

from llmft.config.base import (
    StrictModel,
    apply_overrides,
    read_yaml,
    spec_digest,
    validate,
)
from llmft.config.data import (
    Classification,
    CurationSpec,
    DatasetSpec,
    DedupeSpec,
    DocumentsSpec,
    FilterSpec,
    FormatSpec,
    PiiSpec,
    ReplaySpec,
    SplitSpec,
)
from llmft.config.deployment import DeploymentSpec, SloSpec, TrafficSpec
from llmft.config.evaluation import EvalSpec, GateSpec, JudgeSpec, SuiteSpec
from llmft.config.training import Method, Precision, Strategy, SweepSpec, TrainingSpec
from llmft.errors import SpecError

T = TypeVar("T", bound=BaseModel)

AnySpec = Annotated[
    Union[DatasetSpec, CurationSpec, TrainingSpec, SweepSpec, EvalSpec, DeploymentSpec],
    Field(discriminator="kind"),
]
SPEC_KINDS: dict[str, type[BaseModel]] = {
    "dataset": DatasetSpec,
    "curation": CurationSpec,
    "training": TrainingSpec,
    "sweep": SweepSpec,
    "evaluation": EvalSpec,
    "deployment": DeploymentSpec,
}


def load_spec(path: str | Path, overrides: list[str] | None = None, expect: type[T] | None = None) -> Any:
    """Load a spec file, apply overrides, validate against `expect` (or the file's `kind`)."""
    data = apply_overrides(read_yaml(path), list(overrides or []))
    if expect is not None:
        tag = expect.model_fields["kind"].default
        if data.get("kind", tag) != tag:
            raise SpecError(f"{path}: expected a {tag} spec, got kind={data.get('kind')!r}")
        return validate(expect, data, str(path))
    kind = data.get("kind")
    if kind not in SPEC_KINDS:
        raise SpecError(f"{path}: kind: must be one of {', '.join(SPEC_KINDS)} (got {kind!r})")
    return validate(SPEC_KINDS[kind], data, str(path))


def spec_from_dict(expect: type[T], data: dict[str, Any], overrides: list[str] | None = None,
                   origin: str | None = None) -> T:
    """Validate a spec given as a dict; the API passes `origin="api"` (no `module:callable`, ever)."""
    return validate(expect, apply_overrides(dict(data), list(overrides or [])), origin=origin)


__all__ = [
    "AnySpec", "Classification", "CurationSpec", "DatasetSpec", "DedupeSpec", "DeploymentSpec", "DocumentsSpec",
    "EvalSpec", "FilterSpec", "FormatSpec", "GateSpec", "JudgeSpec", "Method", "PiiSpec", "Precision",
    "ReplaySpec", "SloSpec", "SPEC_KINDS", "SplitSpec", "SpecError", "Strategy", "StrictModel",
    "SuiteSpec", "SweepSpec", "TrafficSpec", "TrainingSpec", "load_spec", "spec_digest",
    "spec_from_dict",
]
