"""Strict pydantic base, YAML loading, `a.b=c` overrides and dotted-path errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from llmft.errors import SpecError

T = TypeVar("T", bound=BaseModel)

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class StrictModel(BaseModel):
    """Every spec section: unknown keys are refused, assignments are re-validated, numbers are finite.

    `1e309`, `Infinity`, `"inf"` and NaN are refused in every float field (a learning rate, an
    epsilon or a budget of infinity would silently mean "unlimited" and is not valid JSON).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True,
                              allow_inf_nan=False)


def origin(info: Any) -> str | None:
    """Who submitted the spec being validated (`"api"` for the REST API), from the validation context."""
    context = getattr(info, "context", None)
    return context.get("origin") if isinstance(context, dict) else None


def dotted(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as `a.b[0].c`, dropping union-branch tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (part.startswith("function-") or part[:1].isupper()):
            continue  # tags pydantic adds for validators / union members, not user keys
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{dotted(tuple(e['loc']))}: {msg}")
    return f"{source}: invalid spec: " + "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`lora.r=16` -> (['lora', 'r'], 16); the value is parsed as YAML (so 1e-4, true, [a,b] work)."""
    if "=" not in text:
        raise SpecError(f"override {text!r}: expected KEY.PATH=VALUE")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise SpecError(f"override {text!r}: empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise SpecError(f"override {key}: value is not valid YAML ({exc.problem})") from exc
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides onto a raw spec dict (validation happens afterwards)."""
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise SpecError(f"override {'.'.join(parts)}: {'.'.join(parts[:i + 1])} is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one clear error for a missing, non-UTF-8 or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: spec file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 (invalid byte at offset {exc.start})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{p}: malformed YAML{where}") from exc
    if data is None:
        raise SpecError(f"{p}: empty spec file")
    if not isinstance(data, dict):
        raise SpecError(f"{p}: a spec must be a YAML mapping, got {type(data).__name__}")
    return data


def validate(model: type[T], data: dict[str, Any], source: str = "spec", origin: str | None = None) -> T:
    """Validate `data`; `origin="api"` applies the stricter rules for specs a caller sent over the API."""
    try:
        return model.model_validate(data, context={"origin": origin} if origin else None)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, source)) from None


def spec_digest(spec: BaseModel) -> str:
    """sha256 of the canonical JSON of a validated spec: the spec's identity in lineage."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
