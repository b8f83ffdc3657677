"""Load the suite files an EvalSpec names; a missing or malformed file is one clear error.

Suites are read in full before any endpoint is called, so a bad spec changes nothing.
Rows come in the formats training data does (llmft.data.input_formats), with a field mapping:
  {"prompt": ..., "reference": ...}          (`response` is read as the reference too)
  {"instruction": ..., "input": ..., "output": ...}   (output: the reference)
  {"messages": [..., {"role": "user", ...}, {"role": "assistant", ...}]}
      the last user turn is the prompt, a final assistant turn the reference, earlier turns
      are sent as context and a leading system message replaces the suite's system prompt
plus `id`, `secret` (memorization) and `expect_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmft.errors import NotFoundError, SpecError

# fields each kind needs on every row, besides `prompt`
REQUIRED = {"golden": ("reference",), "regression": ("reference",), "safety": (), "memorization": ("secret",)}


@dataclass(frozen=True)
class EvalItem:
    id: str
    prompt: str
    reference: str | None = None
    secret: str | None = None
    expect_json: bool = False
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    context: tuple = ()  # earlier chat turns ({role, content}) sent before the prompt
    system: str | None = None  # the row's own system message (wins over the suite's)

    def chat(self, system_prompt: str | None) -> list[dict]:
        """The chat request's messages: system (the row's, else the suite's), earlier turns, the prompt."""
        system = self.system if self.system is not None else system_prompt
        head = [{"role": "system", "content": system}] if system else []
        return [*head, *self.context, {"role": "user", "content": self.prompt}]


_ROW_FIELDS = ("prompt", "reference", "response", "instruction", "input", "output", "messages", "system", "id",
               "secret")


def normalise_row(row: dict, fields: dict[str, str] | None = None) -> tuple[dict | None, str | None]:
    """{prompt, reference, context, system, id, secret} from any supported row format, or (None, problem)."""
    from llmft.data import input_formats

    f = {**{n: n for n in _ROW_FIELDS}, **(fields or {})}
    out = {"id": row.get(f["id"]), "secret": row.get(f["secret"]), "context": (), "system": row.get(f["system"])}
    if row.get(f["messages"]) is not None:
        msgs, bad = input_formats.messages_of(row[f["messages"]], f["messages"], need_answer=False)
        if bad:
            return None, bad.replace("_", " ").replace(":", ": ")
        reference = msgs.pop()["content"] if msgs[-1]["role"] == "assistant" else None
        if not msgs or msgs[-1]["role"] != "user":
            return None, "messages: the last turn before the answer must be the user's"
        if msgs[0]["role"] == "system":
            out["system"] = msgs.pop(0)["content"]
        out.update(prompt=msgs[-1]["content"], reference=reference, context=tuple(msgs[:-1]))
    elif row.get(f["instruction"]) is not None:
        extra = row.get(f["input"])
        prompt = row[f["instruction"]]
        if isinstance(prompt, str) and isinstance(extra, str) and extra.strip():
            prompt = f"{prompt.strip()}\n\n{extra.strip()}"
        out.update(prompt=prompt, reference=row.get(f["output"]))
    else:
        ref = row.get(f["reference"])
        out.update(prompt=row.get(f["prompt"]), reference=ref if ref is not None else row.get(f["response"]))
    return out, None


@dataclass
class Suite:
    name: str
    kind: str
    path: Path
    items: list[EvalItem]
    api: str
    max_new_tokens: int
    schema: dict | None = None
    schema_path: Path | None = None
    system_prompt: str | None = None  # None: not set in the spec (the runner may default it); "": none

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "prompts": len(self.items),
                "api": self.api, "max_new_tokens": self.max_new_tokens,
                "json_schema": str(self.schema_path) if self.schema_path else None,
                "system_prompt": self.system_prompt or None}


def resolve_path(raw: str, roots: list[Path], what: str) -> Path:
    """First existing candidate of `raw` under `roots` (absolute paths as given); NotFoundError names all tried."""
    path = Path(raw).expanduser()
    tried = [path] if path.is_absolute() else [r / path for r in roots] or [path]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise NotFoundError(f"{what}: file {raw!r} not found (looked at {', '.join(str(t) for t in tried)})")


def read_schema(path: Path, what: str) -> dict:
    import jsonschema

    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"{what}: {path} is not valid JSON ({exc})") from None
    except jsonschema.SchemaError as exc:
        raise SpecError(f"{what}: {path} is not a valid JSON schema ({exc.message})") from None
    return schema


def read_items(path: Path, kind: str, what: str, limit: int | None = None,
               fields: dict[str, str] | None = None) -> list[EvalItem]:
    """Every row must parse and carry its kind's fields: a suite is a fixed yardstick, not data to clean."""
    need = REQUIRED[kind]
    items: list[EvalItem] = []
    bad: list[str] = []
    seen: set[str] = set()
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                bad.append(f"line {line_no}: not JSON")
                continue
            if not isinstance(row, dict):
                bad.append(f"line {line_no}: not an object")
                continue
            norm, problem = normalise_row(row, fields)
            if problem:
                bad.append(f"line {line_no}: {problem}")
                continue
            missing = [k for k in ("prompt", *need) if not isinstance(norm.get(k), str) or not norm[k].strip()]
            if missing:
                bad.append(f"line {line_no}: missing or empty {', '.join(missing)}")
                continue
            item_id = str(norm.get("id") or f"{path.stem}-{line_no}")
            if item_id in seen:
                bad.append(f"line {line_no}: duplicate id {item_id!r}")
                continue
            seen.add(item_id)
            used = {(fields or {}).get(n, n) for n in _ROW_FIELDS} | {"expect_json"}
            meta = {k: v for k, v in row.items() if k not in used}
            ref = norm["reference"] if isinstance(norm["reference"], str) else None
            system = norm["system"] if isinstance(norm["system"], str) else None
            items.append(EvalItem(item_id, norm["prompt"], ref, norm.get("secret"),
                                  bool(row.get("expect_json", False)), meta, norm["context"], system))
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise SpecError(f"{what}: {path} has {len(bad)} malformed row(s): {'; '.join(bad[:3])}{more}")
    if not items:
        raise SpecError(f"{what}: {path} has no prompts")
    return items[:limit] if limit else items


def load_suites(spec: Any, spec_dir: str | Path | None = None) -> list[Suite]:
    """All suites of an EvalSpec, validated; paths resolve against suites_dir, the spec's dir, then the cwd."""
    roots = [Path(spec.suites_dir).expanduser()] if spec.suites_dir else []
    if spec_dir is not None and not spec.suites_dir:
        roots.append(Path(spec_dir))
    if not spec.suites_dir:
        roots.append(Path.cwd())
    suites = []
    for i, s in enumerate(spec.suites):
        what = f"suites[{i}] ({s.name})"
        path = resolve_path(s.path, roots, what)
        items = read_items(path, s.kind, what, s.max_prompts, s.fields)
        schema = schema_path = None
        if s.json_schema:
            schema_path = resolve_path(s.json_schema, roots, f"{what}.json_schema")
            schema = read_schema(schema_path, f"{what}.json_schema")
        elif s.kind == "golden" and any(it.expect_json for it in items):
            raise SpecError(f"{what}: rows expect JSON output but the suite names no json_schema")
        api = s.api or ("completions" if s.kind == "memorization" else "chat")
        system = s.system_prompt if s.system_prompt is not None else spec.system_prompt
        suites.append(Suite(s.name, s.kind, path, items, api, s.max_new_tokens or spec.max_new_tokens,
                            schema, schema_path, system))
    return suites
