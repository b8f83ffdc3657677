"""Standalone dedupe of one JSONL/Parquet file: `DIR/kept.jsonl`, `DIR/clusters.jsonl`, `DIR/summary.json`.

clusters.jsonl has one `{"id": ..., "cluster": ...}` line per readable input row
(in input order); rows of one near-duplicate group share the cluster value (the
id of the row kept, the smallest). Unreadable rows are counted in summary.json
with their line and reason.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from llmft.data import dedupe as dd
from llmft.data import readers


def load(path: Path, text_field: str, id_field: str) -> tuple[list[dict], list[dict]]:
    """(rows with `_key`, bad rows with file/line/reason)."""
    path = Path(path)
    fmt = "parquet" if path.suffix == ".parquet" else "jsonl"
    good, bad = [], []
    for r in readers.read_file(path, fmt, text_field=text_field):
        if r.error:
            bad.append({"file": r.source_file, "line": r.source_line, "reason": r.error})
            continue
        problem = readers.check_fields(r.record, {text_field: str})
        if problem:
            bad.append({"file": r.source_file, "line": r.source_line, "reason": problem})
            continue
        rid = r.record.get(id_field)
        rid = f"line-{r.source_line}" if rid in (None, "") else str(rid)
        good.append({"record": r.record, "_key": f"{rid}{dd.SEP}{r.source_line:09d}", "_text": r.record[text_field]})
    return good, bad


def run(in_path: Path, out_dir: Path, *, text_field: str, id_field: str, params: dd.DedupeParams,
        engine: str = "ray", num_blocks: int | None = None) -> dict:
    rows, bad = load(Path(in_path), text_field, id_field)
    if engine == "local":
        res = dd.dedupe_records(rows, "_text", "_key", params)
        labels, stats = res.labels, res.stats
    else:
        import ray

        from llmft.data import dedupe_ray

        ds = ray.data.from_items([{"_key": r["_key"], "_text": r["_text"]} for r in rows])
        blocks = num_blocks or dedupe_ray.default_blocks()
        _kept, labels, stats = dedupe_ray.dedupe_dataset(ds.repartition(blocks), "_text", "_key", params,
                                                         num_blocks=blocks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept = 0
    with open(out / "kept.jsonl", "w", encoding="utf-8") as fk, open(out / "clusters.jsonl", "w") as fc:
        for r in rows:
            root = labels.get(r["_key"], r["_key"])
            fc.write(json.dumps({"id": dd.display_id(r["_key"]), "cluster": dd.display_id(root)}) + "\n")
            if root == r["_key"]:
                kept += 1
                fk.write(json.dumps(r["record"], ensure_ascii=False) + "\n")
    summary = {"input": str(in_path), "rows": len(rows), "kept": kept, "removed": len(rows) - kept,
               "bad_rows": len(bad), "bad_by_reason": dict(Counter(b["reason"] for b in bad)),
               "bad_locations": bad[:100], "engine": engine, "dedupe": stats.as_dict(),
               "params": {"threshold": params.threshold, "ngram": params.ngram, "num_perm": params.num_perm,
                          "bands": stats.bands, "rows_per_band": stats.rows_per_band, "verify": params.verify}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
