"""The curation pipeline on Ray Data: snapshot -> PII -> filters -> exact+near dedupe -> format -> split
-> replay -> Parquet + manifest + report -> a curated snapshot linked to its source and spec digest.

Every step runs as Ray Data operators, the write included: the workers write the
curated rows as part files (`llmft.data.parts`: a row's file and place follow from
the row itself), so the same input and spec give the same bytes (and so the same
snapshot id) whatever the partitioning, and no row passes through the driver. The
driver only sees counts: per-block tallies, split counts, files written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmft.data import dedupe as dd
from llmft.data import parts, readers, replay, report, rows, snapshots
from llmft.errors import SpecError

def check(spec: Any, store: Any) -> snapshots.OpenSnapshot:
    """Everything that can be refused before work starts (tenant, source snapshot, tokenizer, replay)."""
    store.get_tenant(spec.tenant)
    snap = snapshots.open_snapshot(store, spec.tenant, spec.source)  # another tenant's -> NotFoundError
    documents = snap.meta.get("format") == "documents"  # chunks become text rows: no chat template, no replay
    if documents and spec.replay.fraction > 0:
        raise SpecError("replay: mixes instruction rows into instruction curation; not for a documents snapshot")
    if documents and spec.documents.chunk_tokens > spec.filters.max_tokens:
        raise SpecError(f"documents.chunk_tokens ({spec.documents.chunk_tokens}) exceeds filters.max_tokens "
                        f"({spec.filters.max_tokens}): every full chunk would be dropped as too_long")
    if not documents and spec.documents != type(spec.documents)():
        raise SpecError(f"documents: only for a snapshot registered with format: documents "
                        f"(this one is {snap.meta.get('format', 'jsonl')})")
    if spec.format.style == "chat" and not spec.tokenizer and not documents:
        raise SpecError("tokenizer: required for format.style=chat (the chat template comes from the base tokenizer)")
    if not documents:  # field names the spec does not map: one line now, not every row dropped later
        problem = rows.format_problem(snapshots.data_files(snap), snap.meta.get("format", "jsonl"), snap.path,
                                      snap.meta.get("text_field", "text"), spec.format.input, spec.format.field_map())
        if problem:
            raise SpecError(f"format: {problem}")
    if spec.tokenizer:
        from llmft.models.loading import resolve_base

        resolve_base(spec.tokenizer)
    if spec.replay.fraction > 0 and not spec.replay.source:
        raise SpecError("replay.source: required when replay.fraction > 0")
    if spec.replay.source and spec.replay.fraction > 0:
        replay.locate(spec.replay.source, store, spec.tenant)
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


CLEAN_COLS = rows.CLEAN_COLS


def _clean_fn(batch, plan: rows.RowPlan):
    return _columnar(rows.clean(batch.to_pylist(), plan), CLEAN_COLS)


def _tally_fn(batch) -> dict:
    return {"tally": [json.dumps(rows.tally(batch.to_pylist()))]}


def _ok_fn(batch):
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch.column("status"), "ok"))


def output_schema():
    return parts.output_schema()


def _format_fn(batch, plan: rows.RowPlan, replay_from: str | None = None):
    """Contract rows of a batch; `replay_from` marks them as replay rows drawn from that source."""
    import pyarrow as pa

    items = batch.to_pylist()
    if replay_from is not None:
        for r in items:
            r["source_snapshot"] = replay_from
    return pa.Table.from_pylist(rows.format_rows(items, plan, replay=replay_from is not None),
                                schema=output_schema())


RANK_BINS = 4096  # the replay draw's histogram of ranks (by their first 3 hex digits)


def _rank_fn(batch):
    import pyarrow as pa

    return batch.append_column("_rank", pa.array([replay.rank(i) for i in batch.column("id").to_pylist()],
                                                 pa.string()))


def _rank_hist_fn(batch) -> dict:
    import numpy as np

    bins = np.fromiter((int(r[:3], 16) for r in batch.column("_rank").to_pylist()), np.int64, count=batch.num_rows)
    return {"hist": np.bincount(bins, minlength=RANK_BINS)[None, :]}


def _rank_key(rank: str, source_file: str, line: int) -> tuple:
    return (rank, source_file or "", int(line or 0))


def _in_bin_fn(batch, b: int):
    import pyarrow as pa

    keep = [int(r[:3], 16) == b for r in batch.column("_rank").to_pylist()]
    return batch.filter(pa.array(keep, pa.bool_())).select(["_rank", "source_file", "source_line"])


def _up_to_fn(batch, cutoff: tuple):
    import pyarrow as pa

    cols = [batch.column(c).to_pylist() for c in ("_rank", "source_file", "source_line")]
    keep = [_rank_key(*k) <= cutoff for k in zip(*cols)]
    return batch.filter(pa.array(keep, pa.bool_())).drop_columns(["_rank"])


def _draw(good, n: int):
    """The n replay rows of smallest (rank, source file, line), chosen whatever the block order.

    A histogram of ranks (one small row per block) finds the bin holding the n-th row; only the keys in
    that bin (about available / RANK_BINS of them) come back to settle the exact cutoff.
    """
    import numpy as np

    ranked = good.map_batches(_rank_fn, batch_format="pyarrow").materialize()
    hist = np.sum([r["hist"] for r in ranked.map_batches(_rank_hist_fn, batch_format="pyarrow",
                                                         batch_size=None).take_all()], axis=0)
    cum = np.cumsum(hist)
    b = int(np.searchsorted(cum, n))
    need = n - (int(cum[b - 1]) if b else 0)
    keys = sorted(_rank_key(r["_rank"], r["source_file"], r["source_line"]) for r in
                  ranked.map_batches(_in_bin_fn, batch_format="pyarrow", fn_kwargs={"b": b}).take_all())
    return ranked.map_batches(_up_to_fn, batch_format="pyarrow", fn_kwargs={"cutoff": keys[need - 1]})


def _split_counts(ds) -> dict[str, int]:
    """Rows per split, by a Ray Data aggregation (three rows come back)."""
    counts = {s: 0 for s in ("train", "validation", "test")}
    for r in ds.groupby("split", num_partitions=1).count().take_all():
        counts[r["split"]] = int(r["count()"])
    return counts


def _read(files: list[str], fmt: str, root: str, prov: readers.Provenance, text_field: str):
    import ray

    return ray.data.from_items([{"path": p} for p in files]).map_batches(
        _read_fn, batch_size=1, fn_kwargs={"fmt": fmt, "root": root, "prov": prov, "text_field": text_field})


def _read_documents(spec: Any, snap: snapshots.OpenSnapshot):
    """Chunk rows of a documents snapshot, parsed on the workers (llmft.data.documents_ray)."""
    from llmft.data import documents, documents_ray

    d = spec.documents
    limits = documents.Limits(max_file_bytes=d.max_file_bytes, max_line_bytes=d.max_line_bytes,
                              max_unzipped_bytes=d.max_unzipped_bytes, max_zip_ratio=d.max_zip_ratio,
                              max_pages=d.max_pages)
    return documents_ray.read_dataset(snap.path, snapshots.provenance(snap), limits=limits,
                                      chunk_tokens=d.chunk_tokens, overlap_tokens=d.overlap_tokens,
                                      tokenizer_ref=spec.tokenizer, refused_before=snap.meta.get("refused", []))


def _replay(spec: Any, store: Any, plan: rows.RowPlan, n_train: int, num_blocks: int):
    """(replay rows as a Dataset or None, the report's replay info, the replay snapshot id or None).

    The replay set is read, cleaned, ranked and drawn on the workers; only counts and a few rank
    keys come back here.
    """
    info: dict = {"fraction": spec.replay.fraction, "rows": 0, "available": 0}
    if not (spec.replay.source and spec.replay.fraction > 0):
        return None, info, None
    src = replay.locate(spec.replay.source, store, spec.tenant)
    good = (_read(list(src.files), src.fmt, src.root, src.prov, src.text_field).repartition(num_blocks)
            .map_batches(_clean_fn, batch_format="pyarrow", fn_kwargs={"plan": plan})
            .map_batches(_ok_fn, batch_format="pyarrow").materialize())
    available = good.count()
    n = min(replay.count_for(n_train, spec.replay.fraction), available)
    info.update(src.where, rows=n, available=available)
    if n == 0:
        return None, info, src.where["snapshot"]
    source = src.where["snapshot"] or src.where["source"]
    chosen = _draw(good, n).map_batches(_format_fn, batch_format="pyarrow",
                                        fn_kwargs={"plan": plan, "replay_from": source})
    return chosen, info, src.where["snapshot"]


def run(spec: Any, store: Any, actor: str, *, num_blocks: int | None = None,
        rows_per_file: int = parts.ROWS_PER_FILE) -> dict:
    """Curate `spec` (a CurationSpec); returns a summary with the curated snapshot and the report."""
    from llmft.config import spec_digest
    from llmft.data import dedupe_ray

    snap = check(spec, store)
    digest = spec_digest(spec)
    fmt = snap.meta.get("format", "jsonl")
    plan = rows.RowPlan.from_spec(spec, snap.record.id, documents=fmt == "documents")
    files = [str(p) for p in snapshots.data_files(snap)]
    num_blocks = num_blocks or dedupe_ray.default_blocks()
    raw = (_read_documents(spec, snap) if fmt == "documents" else
           _read(files, fmt, str(snap.path), snapshots.provenance(snap), snap.meta.get("text_field", "text")))
    cleaned = (raw.repartition(num_blocks)
               .map_batches(_clean_fn, batch_format="pyarrow", fn_kwargs={"plan": plan}).materialize())
    tally = rows.merge_tallies([json.loads(r["tally"]) for r in  # one small row per block
                                cleaned.map_batches(_tally_fn, batch_format="pyarrow", batch_size=None).take_all()])
    ok = cleaned.map_batches(_ok_fn, batch_format="pyarrow")
    params = dd.DedupeParams.from_spec(spec.dedupe)
    if params.exact or params.near:
        kept, _labels, dstats = dedupe_ray.dedupe_dataset(ok, "_text", "_dkey", params, num_blocks=num_blocks,
                                                          want_labels=False)  # labels stay off the driver
        dedupe_stats = dstats.as_dict()
    else:
        kept, dedupe_stats = ok, {}
    formatted = kept.map_batches(_format_fn, batch_format="pyarrow", fn_kwargs={"plan": plan}).materialize()
    own = _split_counts(formatted)
    replayed, replay_info, replay_snap = _replay(spec, store, plan, own["train"], num_blocks)
    parents = [snap.record.id] + ([replay_snap] if replay_snap else [])
    splits = {**own, "train": own["train"] + replay_info["rows"]}
    output_rows = sum(splits.values())
    rep = report.build(source={"id": snap.record.id, "dataset": snap.record.dataset, "version": snap.record.version},
                       tally=tally, dedupe=dedupe_stats, splits=splits, replay=replay_info,
                       output_rows=output_rows, spec_digest=digest,
                       params={"dedupe": spec.dedupe.model_dump(), "pii": spec.pii.model_dump(),
                               "filters": spec.filters.model_dump(), "format": spec.format.model_dump(),
                               "split": spec.split.model_dump(), "replay": spec.replay.model_dump(),
                               **({"documents": spec.documents.model_dump()} if plan.text_only else {})})
    out = formatted if replayed is None else formatted.union(replayed)
    return _write(spec, store, actor, snap, out, rep, digest, parents, replay_info, rows_per_file, num_blocks)


def _write(spec: Any, store: Any, actor: str, snap: snapshots.OpenSnapshot, out: Any, rep: dict,
           digest: str, parents: list[str], replay_info: dict, rows_per_file: int, num_blocks: int) -> dict:
    """The workers write the part files into the staging area (a local directory, or a prefix in the bucket
    with object storage); it is then content-addressed and recorded."""
    from llmft.data import formatting

    staging = snapshots.stage(spec.tenant, spec.output)
    try:
        written = parts.write_dataset(out, staging, rep["splits"], output_schema(), rows_per_file,
                                      num_partitions=num_blocks)
        n_rows = sum(f["rows"] for f in written)
        meta = {"kind": "curated", "classification": snap.record.classification, "owner": spec.tenant,
                "row_count": n_rows, "format": "parquet", "source_snapshot": snap.record.id,
                "spec_digest": digest, "splits": rep["splits"], "replay": replay_info,
                "columns": list(formatting.COLUMNS), "files": {f["file"]: f["rows"] for f in written},
                "style": spec.documents.output if snap.meta.get("format") == "documents" else spec.format.style,
                "tokenizer": spec.tokenizer}
        hashes = {f["file"]: {"sha256": f["sha256"], "size": f["size"]} if f["sha256"] else None for f in written}
        snap_id, uri, _manifest = snapshots.commit_staged(staging, meta, hashes, report.files(rep))
    except BaseException:
        snapshots.discard_staged(staging)
        raise
    record = store.add_snapshot(tenant=spec.tenant, dataset=spec.output, snapshot_id=snap_id, uri=uri,
                                classification=snap.record.classification, row_count=n_rows, kind="curated",
                                parents=parents, spec_digest=digest, actor=actor,
                                meta={k: v for k, v in meta.items() if k not in ("columns", "files")})
    return {"snapshot": {"id": record.id, "dataset": record.dataset, "version": record.version, "uri": uri,
                         "created": getattr(record, "created", True)},
            "rows": n_rows, "splits": rep["splits"], "report": f"{uri}/report.json",
            "report_html": f"{uri}/report.html", "steps": rep["steps"], "files": len(written)}


def run_curation(spec: Any, ctx: Any) -> dict:
    """A curation job's run (`ctx` is the job model's StageContext): the curated snapshot, its rows and report."""
    check(spec, ctx.store)
    result = run(spec, ctx.store, ctx.actor, num_blocks=ctx.options.get("num_blocks"))
    return {k: result[k] for k in ("snapshot", "rows", "splits", "report", "report_html")}
