"""Ray Data wiring of exact + MinHash-LSH dedupe: signatures in map_batches, bands as rows,
a hash shuffle on band keys, verification, connected components, the keep rule.

Exact verification is distributed: the candidate pairs (handles only) are joined
with the rows' shingle sets (a `_sh` list<uint32> column made with the signatures)
twice, on `a` then on `b` (a union of pair rows and set rows hash-partitioned on the
key, matched inside `map_batches`; `Dataset.join` would need polars), and the
Jaccard of the two sets is computed where they meet; the sets never gather on one node. Inputs of at most
`local_max_rows` rows skip the shuffles and run the same steps in one Ray task
(`engine: "in-process"` in the report): on small inputs the shuffles' fixed cost
dominates.

Why a hash shuffle (`repartition(keys=...)`) with pyarrow/numpy grouping inside
`map_batches` and not `groupby().map_groups()`: the latter costs ~90 us per group,
and LSH produces millions of tiny groups. Connected components run in one Ray task
when the verified edge list is small (`cc_local_max` edges), otherwise as
hash-to-min rounds over Ray Data, so the edge list never gathers on one node.

What reaches the driver: counts and a few sample pairs. The keys of the rows on a
decided pair (the duplicates), their cluster labels and the set of removed rows
(sorted 64-bit handles) live in that task and in the object store: the workers that
drop rows fetch the removed set from there, and the labels come back only when the
caller asks for them (`want_labels`; curation does not). Scale limits: that task
holds what is proportional to the duplicates (below `cc_local_max` edges); above it
the hash-to-min labels still come back to the driver; with estimated verification
every key and the signature table (rows x num_perm x 4 bytes) gather on the driver.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from llmft.data import dedupe as dd
from llmft.data import minhash as mh
from llmft.data.components_ray import components_distributed

if TYPE_CHECKING:
    from ray.data import Dataset


def _sig_fn(batch, text_field: str, key_field: str, params: dd.DedupeParams):
    """Append `_h`, `_exact`, `_sig` and (exact verification) `_sh` to the rows (read once, filtered later)."""
    import pyarrow as pa

    cols = {n: batch.column(n).to_pylist() for n in (text_field, key_field)}
    out = dd.signature_batch(cols, text_field, key_field, params)
    batch = batch.append_column("_h", pa.array(out["_h"], pa.uint64()))
    batch = batch.append_column("_exact", pa.array(out["_exact"].tolist(), pa.string()))
    if params.near:
        sig = out["_sig"]
        batch = batch.append_column("_sig", pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1)), sig.shape[1]))
    if "_sets" in out:
        off, val = out["_sets"]
        batch = batch.append_column("_sh", pa.LargeListArray.from_arrays(pa.array(off, pa.int64()),
                                                                          pa.array(val, pa.uint32())))
    return batch


def _csr(col) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a list<uint32> column."""
    import pyarrow as pa

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lens = col.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    off = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    return off, col.flatten().to_numpy(zero_copy_only=False).astype(np.uint32)


def _join_table(k, other, is_set, sh, ex):
    import pyarrow as pa

    return pa.table({"k": pa.array(k, pa.uint64()), "other": pa.array(other, pa.uint64()),
                     "is_set": pa.array(is_set, pa.bool_()), "sh": sh, "ex": pa.array(ex, pa.uint64())})


def _near_fn(batch: dict):
    """The unverified near candidates of a pair batch (NaN jaccard), keyed by `a` for the first join."""
    import pyarrow as pa

    sel = np.isnan(np.asarray(batch["jaccard"], np.float64))
    a, b = np.asarray(batch["a"], np.uint64)[sel], np.asarray(batch["b"], np.uint64)[sel]
    empty = pa.LargeListArray.from_arrays(pa.array(np.zeros(len(a) + 1, np.int64)), pa.array([], pa.uint32()))
    return _join_table(a, b, np.zeros(len(a), bool), empty, np.zeros(len(a), np.uint64))


def _set_rows_fn(batch):
    """A row's shingle set keyed by its handle: the other side of both joins."""
    n = batch.num_rows
    return _join_table(batch.column("_h").to_numpy(), np.zeros(n, np.uint64), np.ones(n, bool), batch.column("_sh"),
                       dd.exact_handles(batch.column("_exact").to_pylist()))


def _match(batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair rows, their set rows, k) within a block hash-partitioned on `k`; pairs without a set drop out."""
    k = batch.column("k").to_numpy().astype(np.uint64)
    is_set = batch.column("is_set").to_numpy(zero_copy_only=False)
    pairs, sets = np.flatnonzero(~is_set), np.flatnonzero(is_set)
    order = np.argsort(k[sets], kind="stable")
    sets, sk = sets[order], k[sets][order]
    at = np.minimum(np.searchsorted(sk, k[pairs]), max(len(sk) - 1, 0))
    found = (sk[at] == k[pairs]) if len(sk) else np.zeros(len(pairs), bool)
    return pairs[found], sets[at[found]], k


def _attach_a_fn(batch):
    """First join: each candidate (a, b) picks up a's set and is re-keyed by b."""
    import pyarrow as pa

    pairs, sets, k = _match(batch)
    other = batch.column("other").to_numpy().astype(np.uint64)
    sh = batch.column("sh").combine_chunks().take(pa.array(sets, pa.int64()))
    ex = batch.column("ex").to_numpy().astype(np.uint64)[sets]
    return _join_table(other[pairs], k[pairs], np.zeros(len(pairs), bool), sh, ex)


def _verify_fn(batch, threshold: float, exact: bool) -> dict:
    """Second join: b's set meets (a, b, a's set) here; exact Jaccard decides (a pair from several bands once;
    exact copies, already linked by the exact band, drop out)."""
    pairs, sets, k = _match(batch)
    if exact:
        ex = batch.column("ex").to_numpy().astype(np.uint64)
        differ = ex[pairs] != ex[sets]
        pairs, sets = pairs[differ], sets[differ]
    a = batch.column("other").to_numpy().astype(np.uint64)[pairs]
    b = k[pairs]
    first = np.unique(np.c_[a, b], axis=0, return_index=True)[1] if len(a) else np.zeros(0, np.int64)
    pairs, sets, a, b = pairs[first], sets[first], a[first], b[first]
    off, val = _csr(batch.column("sh"))
    jac = mh.exact_jaccard(off, val, pairs, sets)
    return dd.verify_pairs(np.minimum(a, b), np.maximum(a, b), jac, threshold)


def _decided_fn(batch: dict) -> dict:
    """A pair batch without its unverified rows (counters and exact pairs stay)."""
    keep = ~np.isnan(np.asarray(batch["jaccard"], np.float64))
    return {k: np.asarray(v)[keep] for k, v in batch.items()}


def _drop_keys_fn(batch, removed_ref: Any, key_field: str):
    import pyarrow as pa
    import ray

    removed = ray.get(removed_ref) if isinstance(removed_ref, ray.ObjectRef) else removed_ref
    keys = [str(k) for k in batch.column(key_field).to_pylist()]
    h = np.fromiter(map(dd.key_handle, keys), np.uint64, count=len(keys))
    mask = ~np.isin(h, removed) if len(removed) else np.ones(len(h), dtype=bool)
    return batch.filter(pa.array(mask))


def _sig_matrix(batch, num_perm: int) -> np.ndarray:
    col = batch.column("_sig").combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), num_perm)


def _bands_fn(batch, params: dd.DedupeParams) -> dict:
    cols = {"_h": batch.column("_h").to_numpy(), "_exact": batch.column("_exact").to_pylist()}
    if params.near:
        cols["_sig"] = _sig_matrix(batch, params.num_perm)
    return dd.band_rows(cols, params)


def _pairs_fn(batch: dict, params: dd.DedupeParams, table_ref: Any) -> dict:
    import ray

    table = ray.get(table_ref) if isinstance(table_ref, ray.ObjectRef) else table_ref
    return dd.bucket_pairs(batch, params, table)


def _drop_fn(batch, removed_ref: Any, drop_cols: tuple[str, ...]):
    import pyarrow as pa
    import ray

    removed = ray.get(removed_ref) if isinstance(removed_ref, ray.ObjectRef) else removed_ref
    h = batch.column("_h").to_numpy()
    mask = ~np.isin(h, removed) if len(removed) else np.ones(len(h), dtype=bool)
    return batch.filter(pa.array(mask)).drop_columns(list(drop_cols))


def default_blocks() -> int:
    import ray

    return max(2, int(ray.cluster_resources().get("CPU", 2)) * 4)


def dedupe_dataset(ds: "Dataset", text_field: str, key_field: str, params: dd.DedupeParams, *,
                   num_blocks: int | None = None, cc_local_max: int = 2_000_000, want_labels: bool = True
                   ) -> tuple["Dataset", dict[str, str] | None, dd.DedupeStats]:
    """Return (kept rows, key -> cluster key for keys in clusters of 2+, stats).

    `want_labels=False` leaves the labels (one entry per duplicate row) off the driver and returns None
    for them: curation only needs the kept rows and the counts.
    """
    import ray

    num_blocks = num_blocks or default_blocks()
    lsh = params.lsh  # resolve bands x rows once here, not in every worker
    params = replace(params, bands=lsh.bands, rows=lsh.rows)
    ds = ds.materialize()
    n_rows = ds.count()
    if n_rows <= params.local_max_rows:
        return _dedupe_local(ds, text_field, key_field, params, n_rows, want_labels)
    sig_ds = ds.map_batches(_sig_fn, batch_format="pyarrow",
                            fn_kwargs={"text_field": text_field, "key_field": key_field, "params": params})
    sig_ds = sig_ds.materialize()
    estimate = params.near and params.verify != "exact"
    table = _doc_table(sig_ds, key_field, params) if estimate else None
    pairs_ds = (sig_ds.map_batches(_bands_fn, batch_format="pyarrow", fn_kwargs={"params": params})
                .repartition(num_blocks, keys=["band", "bkey"])
                .map_batches(_pairs_fn, batch_format="numpy", batch_size=None,
                             fn_kwargs={"params": params, "table_ref": ray.put(table) if estimate else None})
                .materialize())
    if params.near and params.verify == "exact":
        pairs_ds = _verify_exact(pairs_ds, sig_ds, params, num_blocks)
    n_pairs = pairs_ds.count()
    reason = f"{n_rows} rows > local_max_rows {params.local_max_rows}"
    if n_pairs <= cc_local_max:  # components in one Ray task: names, labels and removed keys stay off the driver
        pair_refs = pairs_ds.to_arrow_refs()
        if table is None:  # names only for the rows on a decided pair (duplicates), not every row's key
            only_ref = _task(_edge_handles_task).remote(pair_refs)
            names: Any = (sig_ds.select_columns([key_field, "_h"])
                          .map_batches(_only_fn, batch_format="pyarrow", fn_kwargs={"only_ref": only_ref})
                          .to_arrow_refs())
        else:
            names = ray.put(table)  # Ray resolves a top-level ObjectRef argument: the task gets the table
        stats_ref, removed_ref, labels_ref = _task(_settle_task, 3).remote(
            pair_refs, names, key_field, n_rows, params, reason, want_labels)
        stats, labels = _fetch(stats_ref, labels_ref)
    else:
        if table is None:
            table = _doc_table(sig_ds, key_field, params, only=_edge_handles(pairs_ds))
        edges = pairs_ds.filter(lambda r: not r["jaccard"] < 0).map_batches(
            _name_fn, batch_format="numpy", fn_kwargs={"table_ref": ray.put(table)})
        labels = components_distributed(edges, num_blocks)
        stats = dd.summarise([_counter_totals(pairs_ds, table)], labels, n_rows, params, engine="ray",
                             engine_reason=reason)
        removed_ref = ray.put(_removed_handles(labels))
        labels = labels if want_labels else None
    drop_cols = ("_h", "_exact") + (("_sig",) if params.near else ()) + (("_sh",) if "_sh" in sig_ds.columns() else ())
    kept = sig_ds.map_batches(_drop_fn, batch_format="pyarrow",
                              fn_kwargs={"removed_ref": removed_ref, "drop_cols": drop_cols})
    return kept, labels, stats


def _task(fn, num_returns: int = 1):
    """`fn` as a Ray task (remote functions are made on use: this module never imports ray at load time)."""
    import ray

    return ray.remote(num_returns=num_returns)(fn)


def _fetch(stats_ref: Any, labels_ref: Any) -> tuple[dd.DedupeStats, dict[str, str] | None]:
    """The report's numbers (and the labels when asked for); a task's error surfaces as its own exception."""
    import ray

    try:
        stats, labels = ray.get([stats_ref, labels_ref])
    except ray.exceptions.RayTaskError as e:
        raise (e.cause if isinstance(e.cause, Exception) else e) from None
    return dd.DedupeStats(**stats), labels


def _numpy(table) -> dict:
    return {c: table.column(c).to_numpy() for c in table.column_names}


def _removed_handles(labels: dict[str, str]) -> np.ndarray:
    """Sorted handles of the rows that are not their cluster's keeper (what the workers drop)."""
    removed_keys = [k for k, root in labels.items() if k != root]
    return np.sort(np.fromiter(map(dd.key_handle, removed_keys), np.uint64, count=len(removed_keys)))


def _edge_handles_task(pair_refs: list) -> np.ndarray:
    """The sorted handles of the rows on a decided pair (a Ray task: the array stays in the object store)."""
    import ray

    hs = [_pair_handles_fn(_numpy(t))["h"] for t in ray.get(list(pair_refs)) if t.num_rows]
    return np.unique(np.concatenate(hs)) if hs else np.zeros(0, np.uint64)


def _settle_task(pair_refs: list, names: Any, key_field: str, n_rows: int, params: dd.DedupeParams, reason: str,
                 want_labels: bool) -> tuple[dict, np.ndarray, dict | None]:
    """A Ray task: name the decided pairs, connected components, the report's numbers and the removed handles.

    What is proportional to the duplicates (their keys, the labels, the removed set) lives here and in the
    object store, never on the driver, which gets the stats (and the labels only when asked for).
    """
    import ray

    if isinstance(names, dd.DocTable):  # estimated verification: the driver's whole table (a top-level ref: resolved)
        table = names
    else:
        keys, handles = [], []
        for t in ray.get(list(names)):
            keys.extend(str(k) for k in t.column(key_field).to_pylist())
            handles.append(t.column("_h").to_numpy())
        table = dd.DocTable(keys, None, np.concatenate(handles) if handles else np.zeros(0, np.uint64))
    batches = [dd.named_pairs(_numpy(t), table) for t in ray.get(list(pair_refs)) if t.num_rows]
    real = [dd.is_pair(b) for b in batches]
    a = np.concatenate([b["a"][m] for b, m in zip(batches, real)]) if batches else np.zeros(0, object)
    bb = np.concatenate([b["b"][m] for b, m in zip(batches, real)]) if batches else np.zeros(0, object)
    labels = dd.components(a, bb)
    stats = dd.summarise(batches, labels, n_rows, params, engine="ray", engine_reason=reason)
    return stats.as_dict(), _removed_handles(labels), labels if want_labels else None


def _doc_table(sig_ds: "Dataset", key_field: str, params: dd.DedupeParams, only: np.ndarray | None = None
               ) -> dd.DocTable:
    """Handle -> key (and, for estimated verification, signature) of every row, or of the rows in `only`."""
    import ray

    ds = sig_ds.select_columns([key_field, "_h"] + (["_sig"] if only is None and params.near else []))
    if only is not None:
        ds = ds.map_batches(_only_fn, batch_format="pyarrow", fn_kwargs={"only_ref": ray.put(only)})
    keys, handles, sigs = [], [], []
    for b in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        keys.extend(str(k) for k in b.column(key_field).to_pylist())
        handles.append(b.column("_h").to_numpy())
        if "_sig" in b.column_names:
            sigs.append(_sig_matrix(b, params.num_perm))
    return dd.DocTable(keys, np.concatenate(sigs) if sigs else None,
                       np.concatenate(handles) if handles else np.zeros(0, np.uint64))


def _only_fn(batch, only_ref: Any):
    import pyarrow as pa
    import ray

    only = ray.get(only_ref) if isinstance(only_ref, ray.ObjectRef) else only_ref
    return batch.filter(pa.array(np.isin(batch.column("_h").to_numpy(), only)))


def _pair_handles_fn(batch: dict) -> dict:
    real = dd.is_pair(batch)
    return {"h": np.unique(np.r_[np.asarray(batch["a"], np.uint64)[real], np.asarray(batch["b"], np.uint64)[real]])}


def _edge_handles(pairs_ds: "Dataset") -> np.ndarray:
    """The sorted handles of the rows on a decided pair (8 bytes per duplicate row come back)."""
    hs = [np.asarray(b["h"], np.uint64) for b in pairs_ds.map_batches(_pair_handles_fn, batch_format="numpy")
          .iter_batches(batch_format="numpy", batch_size=None)]
    return np.unique(np.concatenate(hs)) if hs else np.zeros(0, np.uint64)


def _verify_exact(pairs_ds: "Dataset", sig_ds: "Dataset", params: dd.DedupeParams, num_blocks: int) -> "Dataset":
    """Decided pairs: the band stage's counters and exact pairs, plus the near candidates that pass exact
    Jaccard, found by joining the candidates with the shingle sets on `a`, then on `b`."""
    near = pairs_ds.map_batches(_near_fn, batch_format="numpy", batch_size=None).materialize()
    decided = pairs_ds.map_batches(_decided_fn, batch_format="numpy", batch_size=None)
    if near.count() == 0:
        return decided.materialize()
    sets = sig_ds.select_columns(["_h", "_sh", "_exact"]).map_batches(_set_rows_fn, batch_format="pyarrow")
    keyed_b = (near.union(sets).repartition(num_blocks, keys=["k"])
               .map_batches(_attach_a_fn, batch_format="pyarrow", batch_size=None))
    verified = (keyed_b.union(sets).repartition(num_blocks, keys=["k"])
                .map_batches(_verify_fn, batch_format="pyarrow", batch_size=None,
                             fn_kwargs={"threshold": params.threshold, "exact": params.exact}))
    return decided.union(verified).materialize()


def _dedupe_local(ds: "Dataset", text_field: str, key_field: str, params: dd.DedupeParams, n_rows: int,
                  want_labels: bool = True) -> tuple["Dataset", dict[str, str] | None, dd.DedupeStats]:
    """Below `local_max_rows`: the in-process steps in one Ray task (keys and texts never reach the driver)."""
    reason = f"{n_rows} rows <= local_max_rows {params.local_max_rows}: Ray's shuffle costs would dominate"
    refs = ds.select_columns([key_field, text_field]).to_arrow_refs()
    stats_ref, removed_ref, labels_ref = _task(_local_task, 3).remote(refs, text_field, key_field, params, reason,
                                                                      want_labels)
    stats, labels = _fetch(stats_ref, labels_ref)
    kept = ds.map_batches(_drop_keys_fn, batch_format="pyarrow",
                          fn_kwargs={"removed_ref": removed_ref, "key_field": key_field})
    return kept, labels, stats


def _local_task(refs: list, text_field: str, key_field: str, params: dd.DedupeParams, reason: str,
                want_labels: bool) -> tuple[dict, np.ndarray, dict | None]:
    """The in-process engine as a Ray task: (stats, sorted removed handles, labels when asked for)."""
    import pyarrow as pa
    import ray

    tables = [t for t in ray.get(list(refs)) if t.num_rows]
    batch = pa.concat_tables(tables) if tables else pa.table({key_field: pa.array([], pa.string()),
                                                              text_field: pa.array([], pa.string())})
    labels, stats = dd.dedupe_columns(batch.column(key_field).to_pylist(), batch.column(text_field).to_pylist(),
                                      params, engine="in-process", engine_reason=reason)
    return stats.as_dict(), _removed_handles(labels), labels if want_labels else None


def _name_fn(batch: dict, table_ref: Any) -> dict:
    import ray

    table = ray.get(table_ref) if isinstance(table_ref, ray.ObjectRef) else table_ref
    return {"a": table.names(batch["a"]).astype(str), "b": table.names(batch["b"]).astype(str)}


def _counter_totals(pairs_ds: "Dataset", table: dd.DocTable) -> dict:
    cand = int(pairs_ds.sum("candidates") or 0)
    rejected = int(pairs_ds.sum("rejected") or 0)
    exact_removed = int(pairs_ds.sum("exact_removed") or 0)
    real = pairs_ds.filter(lambda r: r["jaccard"] >= 0 and not r["exact"])
    exact_count = pairs_ds.filter(lambda r: r["jaccard"] >= 0 and r["exact"]).count()
    sample = real.take(5)
    names = lambda col: [""] + list(table.names(np.asarray([r[col] for r in sample], np.uint64)))  # noqa: E731
    return {"a": np.asarray(names("a"), object), "b": np.asarray(names("b"), object),
            "exact": np.asarray([False] * (1 + len(sample))), "verified": real.count() - len(sample),
            "exact_count": exact_count,
            "jaccard": np.asarray([-1.0] + [float(r["jaccard"]) for r in sample], np.float32),
            "candidates": np.asarray([cand] + [0] * len(sample)),
            "rejected": np.asarray([rejected] + [0] * len(sample)),
            "exact_removed": np.asarray([exact_removed] + [0] * len(sample))}
