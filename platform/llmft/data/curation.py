"""The curation pipeline on Ray Data: snapshot -> PII -> filters -> exact+near dedupe -> format -> split
-> replay -> Parquet + manifest + report -> a curated snapshot linked to its source and spec digest.

Reading, cleaning, signatures, the band shuffle and formatting run as Ray Data
operators; the formatted rows are then written by the driver, sorted, so the
same input and spec give the same bytes (and so the same snapshot id).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmft.data import dedupe as dd
from llmft.data import readers, replay, report, rows, snapshots
from llmft.errors import SpecError

OUTPUT_FILE = "data.parquet"


def check(spec: Any, store: Any) -> snapshots.OpenSnapshot:
    """Everything that can be refused before work starts (tenant, source snapshot, tokenizer, replay)."""
    store.get_tenant(spec.tenant)
    snap = snapshots.open_snapshot(store, spec.tenant, spec.source)  # another tenant's -> NotFoundError
    if spec.format.style == "chat" and not spec.tokenizer:
        raise SpecError("tokenizer: required for format.style=chat (the chat template comes from the base tokenizer)")
    if spec.tokenizer:
        from llmft.models.loading import resolve_base

        resolve_base(spec.tokenizer)
    if spec.replay.fraction > 0 and not spec.replay.source:
        raise SpecError("replay.source: required when replay.fraction > 0")
    if spec.replay.source and spec.replay.fraction > 0:
        replay.resolve(spec.replay.source, store, spec.tenant)
    return snap


def _read_fn(batch: dict, fmt: str, root: str, prov: readers.Provenance, text_field: str) -> dict:
    out: list[dict] = []
    for path in batch["path"]:
        out.extend(r.as_flat() for r in readers.read_file(Path(path), fmt, root=Path(root), prov=prov,
                                                          text_field=text_field))
    return _columnar(out, ("record", *readers.PROVENANCE, "error"))


def _columnar(items: list[dict], cols: tuple[str, ...]) -> dict:
    import pyarrow as pa

    return pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in items],
                                schema=pa.schema([(c, pa.int64() if c == "source_line" else pa.string()) for c in cols]))


CLEAN_COLS = (*readers.PROVENANCE, "status", "id", "prompt", "response", "extra", "pii", "_dkey", "_text")


def _clean_fn(batch, plan: rows.RowPlan):
    return _columnar(rows.clean(batch.to_pylist(), plan), CLEAN_COLS)


def _tally_fn(batch) -> dict:
    return {"tally": [json.dumps(rows.tally(batch.to_pylist()))]}


def _ok_fn(batch):
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch.column("status"), "ok"))


def output_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("split", pa.string()), ("prompt", pa.string()),
                      ("completion", pa.string()), ("messages", pa.string()), ("source_snapshot", pa.string()),
                      ("source_uri", pa.string()), ("source_file", pa.string()), ("source_line", pa.int64()),
                      ("license_class", pa.string()), ("purpose", pa.string()), ("replay", pa.bool_()),
                      ("extra", pa.string())])


def _format_fn(batch, plan: rows.RowPlan):
    import pyarrow as pa

    return pa.Table.from_pylist(rows.format_rows(batch.to_pylist(), plan), schema=output_schema())


def run(spec: Any, store: Any, actor: str, *, num_blocks: int | None = None) -> dict:
    """Curate `spec` (a CurationSpec); returns a summary with the curated snapshot and the report."""
    import ray

    from llmft.config import spec_digest
    from llmft.data import dedupe_ray

    snap = check(spec, store)
    digest = spec_digest(spec)
    plan = rows.RowPlan.from_spec(spec, snap.record.id)
    fmt = snap.meta.get("format", "jsonl")
    files = [str(p) for p in snapshots.data_files(snap)]
    num_blocks = num_blocks or dedupe_ray.default_blocks()
    prov = snapshots.provenance(snap)
    raw = ray.data.from_items([{"path": p} for p in files]).map_batches(
        _read_fn, batch_size=1, fn_kwargs={"fmt": fmt, "root": str(snap.path), "prov": prov,
                                           "text_field": snap.meta.get("text_field", "text")})
    cleaned = (raw.repartition(num_blocks)
               .map_batches(_clean_fn, batch_format="pyarrow", fn_kwargs={"plan": plan}).materialize())
    tally = rows.merge_tallies([json.loads(r["tally"]) for r in
                                cleaned.map_batches(_tally_fn, batch_format="pyarrow", batch_size=None).take_all()])
    ok = cleaned.map_batches(_ok_fn, batch_format="pyarrow")
    params = dd.DedupeParams.from_spec(spec.dedupe)
    if params.exact or params.near:
        kept, _labels, dstats = dedupe_ray.dedupe_dataset(ok, "_text", "_dkey", params, num_blocks=num_blocks)
        dedupe_stats = dstats.as_dict()
    else:
        kept, dedupe_stats = ok, {}
    formatted = kept.map_batches(_format_fn, batch_format="pyarrow", fn_kwargs={"plan": plan})
    out_rows = formatted.take_all()
    n_train = sum(1 for r in out_rows if r["split"] == "train")
    replay_info: dict = {"fraction": spec.replay.fraction, "rows": 0, "available": 0}
    parents = [snap.record.id]
    if spec.replay.source and spec.replay.fraction > 0:
        raw_replay, where = replay.resolve(spec.replay.source, store, spec.tenant)
        good = [r for r in rows.clean([r.as_flat() for r in raw_replay], plan) if r["status"] == "ok"]
        chosen = replay.choose(good, replay.count_for(n_train, spec.replay.fraction))
        for r in chosen:
            r["source_snapshot"] = where["snapshot"] or where["source"]
        out_rows.extend(rows.format_rows(chosen, plan, replay=True))
        replay_info.update(where, rows=len(chosen), available=len(good))
        if where["snapshot"]:
            parents.append(where["snapshot"])
    splits = {s: sum(1 for r in out_rows if r["split"] == s) for s in ("train", "validation", "test")}
    rep = report.build(source={"id": snap.record.id, "dataset": snap.record.dataset, "version": snap.record.version},
                       tally=tally, dedupe=dedupe_stats, splits=splits, replay=replay_info,
                       output_rows=len(out_rows), spec_digest=digest,
                       params={"dedupe": spec.dedupe.model_dump(), "pii": spec.pii.model_dump(),
                               "filters": spec.filters.model_dump(), "format": spec.format.model_dump(),
                               "split": spec.split.model_dump(), "replay": spec.replay.model_dump()})
    return _write(spec, store, actor, snap, out_rows, rep, digest, parents, replay_info)


def _write(spec: Any, store: Any, actor: str, snap: snapshots.OpenSnapshot, out_rows: list[dict], rep: dict,
           digest: str, parents: list[str], replay_info: dict) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmft.data import formatting

    order = {s: i for i, s in enumerate(formatting.SPLITS)}
    out_rows.sort(key=lambda r: (order[r["split"]], r["replay"], r["id"], r["source_file"], r["source_line"]))
    schema = output_schema()
    staging = snapshots._stage(spec.tenant, spec.output)
    table = pa.Table.from_pylist([{c: r.get(c) for c in formatting.COLUMNS} for r in out_rows], schema=schema)
    pq.write_table(table, staging / OUTPUT_FILE, compression="zstd")
    report.write(rep, staging)
    meta = {"kind": "curated", "classification": snap.record.classification, "owner": spec.tenant,
            "row_count": len(out_rows), "format": "parquet", "source_snapshot": snap.record.id,
            "spec_digest": digest, "splits": rep["splits"], "replay": replay_info, "columns": list(formatting.COLUMNS),
            "style": spec.format.style, "tokenizer": spec.tokenizer}
    snap_id, path, _manifest = snapshots.commit(staging, spec.tenant, spec.output, meta)
    record = store.add_snapshot(tenant=spec.tenant, dataset=spec.output, snapshot_id=snap_id, uri=str(path),
                                classification=snap.record.classification, row_count=len(out_rows), kind="curated",
                                parents=parents, spec_digest=digest, actor=actor,
                                meta={k: v for k, v in meta.items() if k != "columns"})
    return {"snapshot": {"id": record.id, "dataset": record.dataset, "version": record.version, "uri": str(path),
                         "created": getattr(record, "created", True)},
            "rows": len(out_rows), "splits": rep["splits"], "report": str(path / "report.json"),
            "report_html": str(path / "report.html"), "steps": rep["steps"]}


def run_curation(spec: Any, ctx: Any) -> dict:
    """A curation job's run (`ctx` is the job model's StageContext): the curated snapshot, its rows and report."""
    check(spec, ctx.store)
    result = run(spec, ctx.store, ctx.actor, num_blocks=ctx.options.get("num_blocks"))
    return {k: result[k] for k in ("snapshot", "rows", "splits", "report", "report_html")}
