"""Ray Data wiring of exact + MinHash-LSH dedupe: signatures in map_batches, bands as rows,
a hash shuffle on band keys, verification, connected components, the keep rule.

Why a hash shuffle (`repartition(keys=...)`) with pyarrow/numpy grouping inside
`map_batches` and not `groupby().map_groups()`: the latter costs ~90 us per group,
and LSH produces millions of tiny groups. Connected components run in memory on
the driver when the verified edge list is small (`cc_local_max` edges), otherwise
as hash-to-min rounds over Ray Data, so the edge list never gathers on one node.
Scale limits: the signature table used for verification (rows x num_perm x 4
bytes) and the set of removed keys are broadcast through the object store.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from llmft.data import dedupe as dd

if TYPE_CHECKING:
    from ray.data import Dataset


def _sig_fn(batch, text_field: str, key_field: str, params: dd.DedupeParams):
    """Append `_h`, `_exact` and `_sig` to the rows (so the input is read once and filtered later)."""
    import pyarrow as pa

    cols = {n: batch.column(n).to_pylist() for n in (text_field, key_field)}
    out = dd.signature_batch(cols, text_field, key_field, params)
    batch = batch.append_column("_h", pa.array(out["_h"], pa.uint64()))
    batch = batch.append_column("_exact", pa.array(out["_exact"].tolist(), pa.string()))
    if params.near:
        sig = out["_sig"]
        batch = batch.append_column("_sig", pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1)), sig.shape[1]))
    return batch


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
                   num_blocks: int | None = None, cc_local_max: int = 2_000_000
                   ) -> tuple["Dataset", dict[str, str], dd.DedupeStats]:
    """Return (kept rows, key -> cluster key for keys in clusters of 2+, stats)."""
    import ray

    num_blocks = num_blocks or default_blocks()
    lsh = params.lsh  # resolve bands x rows once here, not in every worker
    params = replace(params, bands=lsh.bands, rows=lsh.rows)
    sig_ds = ds.map_batches(_sig_fn, batch_format="pyarrow",
                            fn_kwargs={"text_field": text_field, "key_field": key_field, "params": params}).materialize()
    n_rows = sig_ds.count()
    keys, handles, sigs = [], [], []
    wanted = [key_field, "_h"] + (["_sig"] if params.near else [])
    for b in sig_ds.select_columns(wanted).iter_batches(batch_format="pyarrow", batch_size=None):
        keys.extend(str(k) for k in b.column(key_field).to_pylist())
        handles.append(b.column("_h").to_numpy())
        if params.near:
            sigs.append(_sig_matrix(b, params.num_perm))
    table = dd.SignatureTable(keys, np.concatenate(sigs) if sigs else None,
                              np.concatenate(handles) if handles else np.zeros(0, np.uint64))
    table_ref = ray.put(table)
    pairs_ds = (sig_ds.map_batches(_bands_fn, batch_format="pyarrow", fn_kwargs={"params": params})
                .repartition(num_blocks, keys=["band", "bkey"])
                .map_batches(_pairs_fn, batch_format="numpy", batch_size=None,
                             fn_kwargs={"params": params, "table_ref": table_ref})
                .materialize())
    if pairs_ds.count() <= cc_local_max:
        batches = [dd.named_pairs(b, table) for b in pairs_ds.iter_batches(batch_format="numpy", batch_size=None)]
        real = [np.asarray(b["jaccard"]) >= 0 for b in batches]
        a = np.concatenate([b["a"][m] for b, m in zip(batches, real)]) if batches else np.zeros(0, object)
        bb = np.concatenate([b["b"][m] for b, m in zip(batches, real)]) if batches else np.zeros(0, object)
        labels = dd.components(a, bb)
    else:
        edges = pairs_ds.filter(lambda r: r["jaccard"] >= 0).map_batches(
            _name_fn, batch_format="numpy", fn_kwargs={"table_ref": table_ref})
        labels = components_distributed(edges, num_blocks)
        batches = [_counter_totals(pairs_ds, table)]
    stats = dd.summarise(batches, labels, n_rows, params)
    removed_keys = [k for k, root in labels.items() if k != root]
    removed = np.sort(np.fromiter(map(dd.key_handle, removed_keys), np.uint64, count=len(removed_keys)))
    drop_cols = ("_h", "_exact") + (("_sig",) if params.near else ())
    kept = sig_ds.map_batches(_drop_fn, batch_format="pyarrow",
                              fn_kwargs={"removed_ref": ray.put(removed), "drop_cols": drop_cols})
    return kept, labels, stats


def _name_fn(batch: dict, table_ref: Any) -> dict:
    import ray

    table = ray.get(table_ref) if isinstance(table_ref, ray.ObjectRef) else table_ref
    return {"a": table.names(batch["a"]).astype(str), "b": table.names(batch["b"]).astype(str)}


def _counter_totals(pairs_ds: "Dataset", table: dd.SignatureTable) -> dict:
    cand = int(pairs_ds.sum("candidates") or 0)
    exact_removed = int(pairs_ds.sum("exact_removed") or 0)
    real = pairs_ds.filter(lambda r: r["jaccard"] >= 0 and not r["exact"])
    sample = real.take(5)
    names = lambda col: [""] + list(table.names(np.asarray([r[col] for r in sample], np.uint64)))  # noqa: E731
    return {"a": np.asarray(names("a"), object), "b": np.asarray(names("b"), object),
            "exact": np.asarray([True] * (1 + len(sample))), "verified": real.count(),
            "jaccard": np.asarray([-1.0] + [float(r["jaccard"]) for r in sample], np.float32),
            "candidates": np.asarray([cand] + [0] * len(sample)),
            "exact_removed": np.asarray([exact_removed] + [0] * len(sample))}


def _hash_to_min(batch: dict) -> dict:
    """One hash-to-min round on the groups of `src` held by this block."""
    src = np.asarray(batch["src"]).astype(str)
    dst = np.asarray(batch["dst"]).astype(str)
    if not len(src):
        return {"src": np.zeros(0, object), "dst": np.zeros(0, object)}
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    group_min = dst[starts]  # dst is sorted within each src group
    mins = np.repeat(group_min, np.diff(np.r_[starts, len(src)]))
    out_src = np.r_[mins, dst]
    out_dst = np.r_[dst, mins]
    pairs = np.unique(np.char.add(np.char.add(out_src, dd.SEP * 2), out_dst))
    split = np.char.partition(pairs, dd.SEP * 2)
    return {"src": split[:, 0].astype(object), "dst": split[:, 2].astype(object)}


def _fingerprint(batch: dict) -> dict:
    acc = 0
    for s, d in zip(batch["src"], batch["dst"]):
        acc ^= int.from_bytes(hashlib.blake2b(f"{s}\x00{d}".encode(), digest_size=8).digest(), "little")
    return {"fp": np.asarray([acc], dtype=np.uint64), "n": np.asarray([len(batch["src"])])}


def components_distributed(edges: "Dataset", num_blocks: int, max_rounds: int = 64) -> dict[str, str]:
    """Connected components by hash-to-min rounds (each a hash shuffle on `src`).

    Converges in O(log n) rounds; only the final (key, label) map for keys on an
    edge comes back to the driver, never the edge list.
    """
    ds = edges.map_batches(lambda b: {"src": np.r_[b["a"], b["b"], b["a"], b["b"]],
                                      "dst": np.r_[b["b"], b["a"], b["a"], b["b"]]}, batch_format="numpy")
    previous = None
    for _ in range(max_rounds):
        ds = ds.repartition(num_blocks, keys=["src"]).map_batches(
            _hash_to_min, batch_format="numpy", batch_size=None).materialize()
        fps = ds.map_batches(_fingerprint, batch_format="numpy", batch_size=None).take_all()
        fp = (sum(int(r["n"]) for r in fps), int(np.bitwise_xor.reduce(np.asarray([r["fp"] for r in fps], np.uint64))) if fps else 0)
        if fp == previous:
            break
        previous = fp
    labels: dict[str, str] = {}
    for b in ds.repartition(num_blocks, keys=["src"]).iter_batches(batch_format="numpy", batch_size=None):
        src, dst = np.asarray(b["src"]).astype(str), np.asarray(b["dst"]).astype(str)
        for s, d in zip(src, dst):
            if s not in labels or d < labels[s]:
                labels[s] = d
    return labels
