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

from llmft.data import formatting, pii, readers
from llmft.data.dedupe import SEP
from llmft.data.quality import QualityFilter

SAMPLE_LOCATIONS = 20  # bad-row locations kept per reason per block (counts are always complete)


@dataclass(frozen=True)
class RowPlan:
    """What the row steps need from a CurationSpec, in a picklable, Ray-free form."""

    prompt_field: str
    response_field: str
    id_field: str
    pii_fields: tuple[str, ...]
    pii_types: tuple[str, ...]
    pii_policy: str
    filters: Any  # FilterSpec
    tokenizer: str | None
    style: str
    system_prompt: str | None
    train: float
    validation: float
    source_snapshot: str

    @classmethod
    def from_spec(cls, spec: Any, source_snapshot: str) -> "RowPlan":
        return cls(prompt_field=spec.format.prompt_field, response_field=spec.format.response_field,
                   id_field="id", pii_fields=tuple(spec.pii.fields), pii_types=tuple(spec.pii.types),
                   pii_policy=spec.pii.policy, filters=spec.filters, tokenizer=spec.tokenizer,
                   style=spec.format.style, system_prompt=spec.format.system_prompt,
                   train=spec.split.train, validation=spec.split.validation, source_snapshot=source_snapshot)


def _dkey(row_id: str, source_file: str, line: int) -> str:
    return f"{row_id}{SEP}{source_file}:{int(line):09d}"


def clean(flat_rows: list[dict], plan: RowPlan) -> list[dict]:
    """Parse, validate, redact and filter; every input row comes out once, with a `status`."""
    tok = formatting.cached_tokenizer(plan.tokenizer)
    qf = QualityFilter.from_spec(plan.filters, (plan.prompt_field, plan.response_field), tok)
    required = {plan.prompt_field: str, plan.response_field: str}
    out = []
    for flat in flat_rows:
        row = {k: flat.get(k) for k in readers.PROVENANCE}
        row.update(status="ok", id=None, prompt=None, response=None, extra="{}", pii="{}", _dkey=None, _text=None)
        status = flat.get("error")
        record = json.loads(flat["record"]) if flat.get("record") else None
        if status is None and record is not None:
            status = readers.check_fields(record, required)
        if status is None:
            rid = record.get(plan.id_field)
            row["id"] = str(rid) if rid not in (None, "") else f"{row['source_file']}:{row['source_line']}"
            redacted, counts = pii.apply_policy(record, list(plan.pii_fields), list(plan.pii_types), plan.pii_policy)
            row["pii"] = json.dumps(dict(counts), sort_keys=True)
            if redacted is None:
                status = "pii_drop"
            else:
                status = qf.reason(redacted)
                row["prompt"], row["response"] = redacted[plan.prompt_field], redacted[plan.response_field]
                skip = {plan.prompt_field, plan.response_field, plan.id_field}
                row["extra"] = json.dumps({k: v for k, v in redacted.items() if k not in skip}, default=str,
                                          ensure_ascii=False, sort_keys=True)
                row["_dkey"] = _dkey(row["id"], row["source_file"], row["source_line"])
                row["_text"] = f"{row['prompt']}\n{row['response']}"
        row["status"] = status or "ok"
        out.append(row)
    return out


def tally(rows: list[dict]) -> dict:
    """Counters of one block: status counts, PII findings by type, sample locations of drops."""
    status, found = Counter(), Counter()
    where: dict[str, list] = {}
    for r in rows:
        status[r["status"]] += 1
        found.update(json.loads(r.get("pii") or "{}"))
        if r["status"] != "ok":
            locs = where.setdefault(r["status"], [])
            if len(locs) < SAMPLE_LOCATIONS:
                locs.append({"file": r["source_file"], "line": r["source_line"], "id": r.get("id")})
    return {"status": dict(status), "pii": dict(found), "where": where}


def merge_tallies(parts: list[dict]) -> dict:
    status, found = Counter(), Counter()
    where: dict[str, list] = {}
    for p in parts:
        status.update(p["status"])
        found.update(p["pii"])
        for reason, locs in p["where"].items():
            where.setdefault(reason, []).extend(locs)
    for reason in where:
        where[reason] = sorted(where[reason], key=lambda x: (x["file"], x["line"]))[:SAMPLE_LOCATIONS]
    return {"status": dict(status), "pii": dict(found), "where": where}


def format_rows(rows: list[dict], plan: RowPlan, replay: bool = False) -> list[dict]:
    """Contract rows (see llmft.data.formatting) with the hash split; replay rows all go to train."""
    tok = formatting.cached_tokenizer(plan.tokenizer)
    out = []
    for r in rows:
        ex = formatting.format_example(r["prompt"], r["response"], style=plan.style, tokenizer=tok,
                                       system_prompt=plan.system_prompt)
        split = "train" if replay else formatting.split_for(r["id"], plan.train, plan.validation)
        out.append({"id": r["id"], "split": split, **ex,
                    "source_snapshot": r.get("source_snapshot") or plan.source_snapshot,
                    "source_uri": r["source_uri"], "source_file": r["source_file"],
                    "source_line": int(r["source_line"]), "license_class": r["license_class"],
                    "purpose": r["purpose"], "replay": replay, "extra": r.get("extra") or "{}"})
    return out
