"""Per-row curation steps on plain batches (no Ray): validate, redact PII, filter, format.

Each function takes and returns lists of dicts so the Ray Data pipeline
(`llmft.data.curation`) and tests run the same code. A row that leaves the
pipeline keeps `status` = its reason (e.g. `malformed_json`, `pii_drop`,
`toxic`) so every drop is counted with its location.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from llmft.data import formatting, input_formats, pii, readers, redaction
from llmft.data.dedupe import SEP
from llmft.data.quality import QualityFilter

SAMPLE_LOCATIONS = 20  # bad-row locations kept per reason per block (counts are always complete)


EXAMPLES_PER_TYPE = 3  # masked PII examples the report shows per type
CLEAN_COLS = (*readers.PROVENANCE, "status", "id", "prompt", "response", "context", "extra", "pii", "pii_examples",
              "_dkey", "_text")


@dataclass(frozen=True)
class RowPlan:
    """What the row steps need from a CurationSpec, in a picklable, Ray-free form."""

    fields: tuple[tuple[str, str], ...]  # format name -> dataset field (llmft.data.input_formats)
    input: str  # auto | prompt_response | alpaca | messages
    pii_fields: tuple[str, ...]  # scanned besides the fields that reach training
    pii_exclude: tuple[str, ...]
    pii_types: tuple[str, ...]
    pii_policy: str
    filters: Any  # FilterSpec
    tokenizer: str | None
    style: str
    system_prompt: str | None
    train: float
    validation: float
    source_snapshot: str
    text_only: bool = False  # document chunks: one `text` field, formatted as text/passages rows
    not_pii: tuple[str, ...] = pii.NOT_PII

    @classmethod
    def from_spec(cls, spec: Any, source_snapshot: str, documents: bool = False) -> "RowPlan":
        """`documents`: the source is a documents snapshot, so rows are chunks styled by spec.documents.output."""
        return cls(fields=tuple(spec.format.field_map().items()), input=spec.format.input,
                   pii_fields=tuple(spec.pii.fields), pii_exclude=tuple(spec.pii.exclude),
                   pii_types=tuple(spec.pii.types), pii_policy=spec.pii.policy, filters=spec.filters,
                   tokenizer=spec.tokenizer, style=spec.documents.output if documents else spec.format.style,
                   system_prompt=spec.format.system_prompt, train=spec.split.train,
                   validation=spec.split.validation, source_snapshot=source_snapshot, text_only=documents,
                   not_pii=tuple(spec.pii.not_pii))

    @property
    def field_map(self) -> dict[str, str]:
        return dict(self.fields)

    def scanned(self, layout: str) -> list[str]:
        """Fields PII scanning covers for a row of `layout`: what reaches training, plus extras, less exclusions."""
        used = ["text"] if layout == "text" else input_formats.source_fields(layout, self.field_map)
        return [f for f in dict.fromkeys([*used, *self.pii_fields]) if f not in self.pii_exclude]


def _dkey(row_id: str, source_file: str, line: int) -> str:
    return f"{row_id}{SEP}{source_file}:{int(line):09d}"


def clean(flat_rows: list[dict], plan: RowPlan) -> list[dict]:
    """Parse, validate, redact and filter; every input row comes out once, with a `status`."""
    tok = formatting.cached_tokenizer(plan.tokenizer)
    qf = QualityFilter.from_spec(plan.filters, ("response",) if plan.text_only else ("prompt", "response"), tok)
    fmap = plan.field_map
    out = []
    for flat in flat_rows:
        row = {k: flat.get(k) for k in readers.PROVENANCE}
        row.update(status="ok", id=None, prompt=None, response=None, context=None, extra="{}", pii="{}",
                   pii_examples="[]", _dkey=None, _text=None)
        status = flat.get("error")
        record = json.loads(flat["record"]) if flat.get("record") else None
        layout = None
        if status is None and record is not None:
            if plan.text_only:
                layout, status = "text", readers.check_fields(record, {"text": str})
            else:
                layout, _conv, status = input_formats.parse(record, plan.input, fmap)
                if layout == "messages" and isinstance(record[fmap["messages"]], str):  # a CSV cell's JSON text
                    record = {**record, fmap["messages"]: json.loads(record[fmap["messages"]])}
        if status is None:
            rid = record.get(fmap["id"])
            row["id"] = str(rid) if rid not in (None, "") else f"{row['source_file']}:{row['source_line']}"
            scanned = plan.scanned(layout)
            redacted, counts, examples = redaction.scan_row(record, scanned, list(plan.pii_types),
                                                            plan.pii_policy, plan.not_pii)
            row["pii"] = json.dumps(dict(counts), sort_keys=True)
            row["pii_examples"] = json.dumps(_first_per_type(examples), ensure_ascii=False)
            if redacted is None:
                status = "pii_drop"
            else:
                if plan.text_only:
                    row["prompt"], row["response"] = "", redacted["text"]
                else:
                    conv, _ = input_formats.conversation(redacted, layout, fmap)
                    row["prompt"], row["response"] = conv.prompt, conv.answer
                    if not conv.simple:
                        row["context"] = json.dumps(list(conv.messages[:-1]), ensure_ascii=False)
                status = qf.reason(row)
                used = ["text"] if plan.text_only else input_formats.source_fields(layout, fmap)
                skip = {*used, fmap["id"]}
                row["extra"] = json.dumps({k: v for k, v in redacted.items() if k not in skip}, default=str,
                                          ensure_ascii=False, sort_keys=True)
                row["_dkey"] = _dkey(row["id"], row["source_file"], row["source_line"])
                row["_text"] = row["response"] if plan.text_only else f"{row['prompt']}\n{row['response']}"
        row["status"] = status or "ok"
        out.append(row)
    return out


def _first_per_type(examples: list[dict]) -> list[dict]:
    seen: Counter = Counter()
    out = []
    for ex in examples:
        if seen[ex["type"]] < EXAMPLES_PER_TYPE:
            seen[ex["type"]] += 1
            out.append(ex)
    return out


def tally(rows: list[dict]) -> dict:
    """Counters of one block: status counts, PII findings by type (with masked examples), sample locations of drops."""
    status, found = Counter(), Counter()
    where: dict[str, list] = {}
    examples: dict[str, list] = {}
    for r in rows:
        status[r["status"]] += 1
        found.update(json.loads(r.get("pii") or "{}"))
        for ex in json.loads(r.get("pii_examples") or "[]"):
            examples.setdefault(ex["type"], []).append({"file": r["source_file"], "line": r["source_line"],
                                                        "id": r.get("id"), **{k: v for k, v in ex.items()
                                                                               if k != "type"}})
        if r["status"] != "ok":
            locs = where.setdefault(r["status"], [])
            if len(locs) < SAMPLE_LOCATIONS:
                locs.append({"file": r["source_file"], "line": r["source_line"], "id": r.get("id")})
    return {"status": dict(status), "pii": dict(found), "where": where, "pii_examples": _first_examples(examples)}


def _first_examples(examples: dict[str, list]) -> dict[str, list]:
    """The first EXAMPLES_PER_TYPE examples of each type by (file, line): the same whatever the blocks were."""
    return {t: sorted(exs, key=lambda x: (x["file"], x["line"], x.get("field", "")))[:EXAMPLES_PER_TYPE]
            for t, exs in sorted(examples.items())}


def merge_tallies(parts: list[dict]) -> dict:
    status, found = Counter(), Counter()
    where: dict[str, list] = {}
    examples: dict[str, list] = {}
    for p in parts:
        status.update(p["status"])
        found.update(p["pii"])
        for reason, locs in p["where"].items():
            where.setdefault(reason, []).extend(locs)
        for t, exs in p.get("pii_examples", {}).items():
            examples.setdefault(t, []).extend(exs)
    for reason in where:
        where[reason] = sorted(where[reason], key=lambda x: (x["file"], x["line"]))[:SAMPLE_LOCATIONS]
    return {"status": dict(status), "pii": dict(found), "where": where, "pii_examples": _first_examples(examples)}


def format_rows(rows: list[dict], plan: RowPlan, replay: bool = False) -> list[dict]:
    """Contract rows (see llmft.data.formatting) with the hash split; replay rows all go to train."""
    tok = formatting.cached_tokenizer(plan.tokenizer)
    out = []
    for r in rows:
        if r.get("context"):  # a conversation with earlier turns or its own system message
            messages = [*json.loads(r["context"]), {"role": "assistant", "content": r["response"]}]
            ex = formatting.format_conversation(messages, style=plan.style, tokenizer=tok,
                                                system_prompt=plan.system_prompt)
        else:
            ex = formatting.format_example(r["prompt"], r["response"], style=plan.style, tokenizer=tok,
                                           system_prompt=plan.system_prompt)
        split = "train" if replay else formatting.split_for(r["id"], plan.train, plan.validation)
        out.append({"id": r["id"], "split": split, **ex,
                    "source_snapshot": r.get("source_snapshot") or plan.source_snapshot,
                    "source_uri": r["source_uri"], "source_file": r["source_file"],
                    "source_line": int(r["source_line"]), "license_class": r["license_class"],
                    "purpose": r["purpose"], "replay": replay, "extra": r.get("extra") or "{}"})
    return out


def format_problem(paths: list, fmt: str, root: Any, text_field: str, wanted: str, fields: dict[str, str],
                   sample: int = 200) -> str | None:
    """One line when none of the first `sample` parsed rows fits the row format (a wrong mapping, not a bad row).

    Rows that fit are fine and bad rows among good ones are only counted: this refuses, before
    any work, a dataset whose field names the spec does not map.
    """
    first = None
    seen = 0
    for path in paths[:1]:
        for raw in readers.read_file(path, fmt, root=root, text_field=text_field):
            if raw.record is None:
                continue
            _layout, _conv, status = input_formats.parse(raw.record, wanted, fields)
            if status is None:
                return None
            if first is None:
                first = (status, f"line {raw.source_line} of {raw.source_file}", raw.record)
            seen += 1
            if seen >= sample:
                break
    return input_formats.explain(*first) if first else None
