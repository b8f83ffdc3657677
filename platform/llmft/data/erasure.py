"""Right-to-erasure: a new snapshot version without any row referencing a data subject.

A row references the subject when its configured field (e.g. `customer_id`,
also looked up inside a curated row's `extra`) equals the subject id, or, with
no field configured, when any text of the row contains it. Lines that cannot be
parsed are matched on their bytes, so a malformed line naming the subject goes
too. The old snapshot is never modified: it is marked superseded (and so are
the snapshots derived from it), which lets the model registry flag models
trained on them. The subject id itself is stored only as a sha256.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from llmft.data import readers, snapshots


def references(record: dict, subject: str, field: str | None) -> bool:
    if field:
        if str(record.get(field)) == subject:
            return True
        extra = record.get("extra")
        if isinstance(extra, str) and extra.startswith("{"):
            try:
                return str(json.loads(extra).get(field)) == subject
            except json.JSONDecodeError:
                return subject in extra
        return False
    return any(isinstance(v, str) and subject in v for v in record.values())


def _filter_jsonl(src: Path, dst: Path, subject: str, field: str | None) -> int:
    removed = 0
    needle = subject.encode("utf-8")
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for line in fin:
            try:
                record = json.loads(line.decode("utf-8"))
                hit = references(record, subject, field) if isinstance(record, dict) else needle in line
            except (UnicodeDecodeError, json.JSONDecodeError):
                hit = needle in line
            if hit:
                removed += 1
            else:
                fout.write(line)
    return removed


def _filter_parquet(src: Path, dst: Path, subject: str, field: str | None) -> int:
    """Row group by row group (memory bounded by one row group, whatever the file's size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src)
    removed = 0
    with pq.ParquetWriter(dst, pf.schema_arrow, compression="zstd") as writer:
        for i in range(pf.num_row_groups):
            table = pf.read_row_group(i)
            keep = [not references(r, subject, field) for r in table.to_pylist()]
            removed += keep.count(False)
            writer.write_table(table.filter(pa.array(keep, pa.bool_())))
    return removed


def _filter_csv(src: Path, dst: Path, subject: str, field: str | None) -> int:
    text = src.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], extrasaction="ignore")
    writer.writeheader()
    removed = 0
    for row in reader:
        if references(dict(row), subject, field):
            removed += 1
        else:
            writer.writerow(row)
    dst.write_text(out.getvalue(), encoding="utf-8")
    return removed


def _filter_text(src: Path, dst: Path, subject: str, field: str | None) -> int:
    if subject.encode("utf-8") in src.read_bytes():
        return 1
    shutil.copyfile(src, dst)
    return 0


_FILTERS = {"jsonl": _filter_jsonl, "parquet": _filter_parquet, "csv": _filter_csv, "text": _filter_text}


def erase_file(src: str, dst: str, fmt: str, subject: str, field: str | None, text_field: str) -> dict:
    """Filter one file into `dst`; {removed, rows, bad} (rows and bad rows counted in the new file)."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    removed = _FILTERS[fmt](Path(src), Path(dst), subject, field)
    rows = bad = 0
    if Path(dst).exists():
        for row in readers.read_file(Path(dst), fmt, text_field=text_field):
            bad += row.error is not None
            rows += row.error is None
    return {"removed": removed, "rows": rows, "bad": bad}


def erase_staged(src: str, rel: str, staging: snapshots.Staging, fmt: str, subject: str, field: str | None,
                 text_field: str) -> dict:
    """`erase_file` into the snapshot's file `rel` of `staging` (uploaded from this node on object storage);
    adds the file's {sha256, size} when the worker hashed it (object storage), else None."""
    counts, entry = staging.write_file(rel, lambda dst: erase_file(src, str(dst), fmt, subject, field, text_field))
    return {**counts, "file": rel, "hash": entry}


def _erase_batch(batch: dict, staging: snapshots.Staging, fmt: str, subject: str, field: str | None,
                 text_field: str) -> dict:
    out = [erase_staged(s, r, staging, fmt, subject, field, text_field) for s, r in zip(batch["src"], batch["rel"])]
    return {"removed": [o["removed"] for o in out], "rows": [o["rows"] for o in out],
            "file": [o["file"] for o in out], "hash": [json.dumps(o["hash"]) for o in out]}


def _erase_files(pairs: list[tuple[str, str]], staging: snapshots.Staging, fmt: str, subject: str,
                 field: str | None, text_field: str) -> tuple[int, int, dict[str, dict | None]]:
    """(rows removed, rows kept, {file: hash or None}): one Ray task per file when Ray is up (rows never
    reach this process), else file by file here, streaming."""
    import sys

    ray = sys.modules.get("ray")
    kwargs = {"staging": staging, "fmt": fmt, "subject": subject, "field": field, "text_field": text_field}
    if ray is not None and ray.is_initialized() and pairs:
        counts = ray.data.from_items([{"src": s, "rel": r} for s, r in pairs]).map_batches(
            _erase_batch, batch_size=1, fn_kwargs=kwargs).take_all()  # one row per file
        counts = [{**c, "hash": json.loads(c["hash"])} for c in counts]
    else:
        counts = [erase_staged(s, r, **kwargs) for s, r in pairs]
    written = {c["file"]: c["hash"] for c in counts if not staging.remote or c["hash"] is not None}
    return sum(int(c["removed"]) for c in counts), sum(int(c["rows"]) for c in counts), written


def erase(store: Any, tenant: str, ref: str, subject: str, *, actor: str, field: str | None = None) -> dict:
    """Write the erased version, record it, supersede the old one and its descendants."""
    snap = snapshots.open_snapshot(store, tenant, ref)
    field = field or snap.meta.get("subject_field")
    fmt = snap.meta.get("format", "jsonl")
    staging = snapshots.stage(tenant, snap.record.dataset)
    try:
        pairs = [(str(f), f.relative_to(snap.path).as_posix()) for f in snapshots.data_files(snap)]
        removed, rows, written = _erase_files(pairs, staging, fmt, subject, field,
                                              snap.meta.get("text_field", "text"))
        subject_hash = hashlib.sha256(subject.encode("utf-8")).hexdigest()
        if removed == 0:
            snapshots.discard_staged(staging)
            return {"removed": 0, "snapshot": None, "superseded": [], "subject_sha256": subject_hash}
        info = {"subject_sha256": subject_hash, "field": field, "rows_removed": removed,
                "supersedes": [snap.record.id]}
        meta = {**snap.meta, "kind": "erasure", "row_count": rows, "erasure": info}
        for k in ("snapshot_id", "dataset", "tenant", "files"):
            meta.pop(k, None)
        new_id, uri, _ = snapshots.commit_staged(staging, meta, written)
    except BaseException:
        snapshots.discard_staged(staging)
        raise
    record = store.add_snapshot(tenant=tenant, dataset=snap.record.dataset, snapshot_id=new_id, uri=uri,
                                classification=snap.record.classification, row_count=rows, kind="erasure",
                                parents=[snap.record.id], spec_digest=snap.record.spec_digest, actor=actor,
                                meta={"erasure": info, "format": fmt})
    affected = [snap.record] + [d for d in store.descendants(tenant, snap.record.id) if d.id != new_id]
    superseded = []
    for old in affected:
        if old.superseded_by is None:
            store.supersede_snapshot(tenant, old.id, by=new_id, actor=actor,
                                     reason=f"erasure of subject sha256:{subject_hash[:16]}")
            superseded.append({"id": old.id, "dataset": old.dataset, "version": old.version, "kind": old.kind})
    store.audit.append(actor, tenant, "data.erase", f"snapshot/{snap.record.dataset}:{record.version}",
                       {"subject_sha256": subject_hash, "rows_removed": removed, "from": snap.record.id,
                        "to": new_id, "superseded": [s["id"] for s in superseded]})
    return {"removed": removed, "snapshot": {"id": record.id, "dataset": record.dataset, "version": record.version,
                                             "uri": uri},
            "superseded": superseded, "subject_sha256": subject_hash}
