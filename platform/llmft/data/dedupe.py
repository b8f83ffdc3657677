"""Exact + MinHash-LSH near-duplicate removal on plain record batches (no Ray).

The steps are batch functions so the Ray Data pipeline (`llmft.data.dedupe_ray`)
and the in-process path run the same code:

  signature_batch -> band_rows (exact key as band -1, LSH bands 0..b-1)
  -> bucket_pairs (group rows by band key; pairs, verified by estimated Jaccard)
  -> connected components (min-label) -> keep the smallest key of each cluster.

Keys are strings; the keep rule (smallest key wins) and the cluster label (the
keeper's key) depend only on the input, never on partitioning or order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmft.data import minhash as mh

EXACT_BAND = -1
MAX_BUCKET_ALL_PAIRS = 64  # larger buckets link every member to the bucket's smallest key (star)
SEP = "\x1f"  # separates the id from a tiebreak (source position) inside a dedupe key


@dataclass(frozen=True)
class DedupeParams:
    """Everything that changes which rows survive."""

    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    threshold: float = 0.8
    bands: int | None = None
    rows: int | None = None
    exact: bool = True
    near: bool = True
    verify: bool = True

    @classmethod
    def from_spec(cls, spec) -> "DedupeParams":
        return cls(ngram=spec.ngram, num_perm=spec.num_perm, seed=spec.seed, threshold=spec.threshold,
                   bands=spec.bands, rows=spec.rows, exact=spec.exact, near=spec.near, verify=spec.verify)

    @property
    def lsh(self) -> mh.LshParams:
        return mh.LshParams.choose(self.threshold, self.num_perm, self.bands, self.rows)


@dataclass
class DedupeStats:
    rows: int = 0
    exact_removed: int = 0
    near_removed: int = 0
    candidate_pairs: int = 0  # near pairs out of LSH buckets (summed over shuffle partitions)
    verified_pairs: int = 0  # near pairs kept after verification (same counting)
    clusters: int = 0
    largest_cluster: int = 0
    bands: int = 0
    rows_per_band: int = 0
    sample_pairs: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def display_id(key: str) -> str:
    return key.split(SEP, 1)[0]


def signature_batch(batch: dict, text_field: str, key_field: str, params: DedupeParams) -> dict:
    """Add `_exact` (normalised-text hash) and `_sig` (MinHash signature) columns."""
    texts = [t if isinstance(t, str) else "" for t in batch[text_field]]
    keys = np.asarray([str(k) for k in batch[key_field]], dtype=object)
    out = {"_key": keys, "_exact": np.asarray([mh.exact_key(t) for t in texts], dtype=object)}
    if params.near:
        out["_sig"] = mh.signatures(texts, params.ngram, params.num_perm, params.seed)
    return out


def band_rows(batch: dict, params: DedupeParams) -> dict:
    """One row per (document, band): band -1 carries the exact key, bands 0.. the LSH keys."""
    keys = np.asarray(batch["_key"], dtype=object)
    n = len(keys)
    bands, bkeys, owners = [], [], []
    if params.exact and n:
        bands.append(np.full(n, EXACT_BAND, dtype=np.int32))
        bkeys.append(np.asarray([int(e[:16], 16) for e in batch["_exact"]], dtype=np.uint64))
        owners.append(keys)
    if params.near and n:
        lsh = params.lsh
        kb = mh.band_keys(np.asarray(batch["_sig"]), lsh)
        bands.append(np.tile(np.arange(lsh.bands, dtype=np.int32), n))
        bkeys.append(kb.reshape(-1))
        owners.append(np.repeat(keys, lsh.bands))
    if not bands:
        return {"band": np.zeros(0, np.int32), "bkey": np.zeros(0, np.uint64), "_key": np.zeros(0, object)}
    return {"band": np.concatenate(bands), "bkey": np.concatenate(bkeys), "_key": np.concatenate(owners)}


class SignatureTable:
    """Sorted key -> signature lookup used to verify candidate pairs."""

    def __init__(self, keys: np.ndarray, sigs: np.ndarray | None):
        order = np.argsort(keys.astype(str), kind="stable")
        self.keys = keys.astype(str)[order]
        self.sigs = None if sigs is None else np.asarray(sigs)[order]

    def rows(self, keys: np.ndarray) -> np.ndarray:
        return self.sigs[np.searchsorted(self.keys, keys.astype(str))]


def bucket_pairs(batch: dict, params: DedupeParams, table: SignatureTable | None) -> dict:
    """Pairs (a < b) of keys sharing a bucket; near pairs kept if estimated Jaccard >= threshold.

    Expects every row of a (band, bkey) bucket in this batch (hash-partitioned upstream).
    """
    band = np.asarray(batch["band"], dtype=np.int64)
    bkey = np.asarray(batch["bkey"], dtype=np.uint64)
    keys = np.asarray(batch["_key"]).astype(str)
    empty = {"a": np.zeros(0, object), "b": np.zeros(0, object), "exact": np.zeros(0, bool),
             "jaccard": np.zeros(0, np.float32), "candidates": np.zeros(0, np.int64),
             "exact_removed": np.zeros(0, np.int64)}
    if not len(keys):
        return empty
    order = np.lexsort((keys, bkey, band))
    band, bkey, keys = band[order], bkey[order], keys[order]
    new = np.r_[True, (band[1:] != band[:-1]) | (bkey[1:] != bkey[:-1])]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, len(keys)])
    a_list, b_list, ex_list = [], [], []
    exact_removed = 0
    for s, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        members = np.unique(keys[s:s + size])
        if len(members) < 2:
            continue
        is_exact = band[s] == EXACT_BAND
        if is_exact:
            exact_removed += len(members) - 1
        if len(members) <= MAX_BUCKET_ALL_PAIRS and not is_exact:
            i, j = np.triu_indices(len(members), 1)
            a_list.append(members[i])
            b_list.append(members[j])
        else:
            a_list.append(np.repeat(members[0], len(members) - 1))
            b_list.append(members[1:])
        ex_list.append(np.full(len(a_list[-1]), is_exact))
    if not a_list:
        out = dict(empty)
        out["exact_removed"] = np.asarray([exact_removed], np.int64)
        out["candidates"] = np.asarray([0], np.int64)
        out["a"], out["b"] = np.asarray([""], object), np.asarray([""], object)
        out["exact"], out["jaccard"] = np.asarray([False]), np.asarray([-1.0], np.float32)
        return out
    a, b, ex = np.concatenate(a_list), np.concatenate(b_list), np.concatenate(ex_list)
    pair = np.unique(np.char.add(np.char.add(a, SEP * 2), b), return_index=True)[1]
    a, b, ex = a[pair], b[pair], ex[pair]
    # a pair found by both the exact band and an LSH band counts once, as exact
    candidates = int((~ex).sum())
    jac = np.ones(len(a), dtype=np.float32)
    if table is not None and table.sigs is not None and (~ex).any():
        near = ~ex
        jac[near] = mh.estimated_jaccard(table.rows(a[near]), table.rows(b[near]))
        if params.verify:
            keep = ex | (jac >= params.threshold)
            a, b, ex, jac = a[keep], b[keep], ex[keep], jac[keep]
    # per-batch counters ride on the first row; rows with jaccard < 0 are counters only
    counters_a = np.r_[np.asarray([""], object), a.astype(object)]
    return {"a": counters_a, "b": np.r_[np.asarray([""], object), b.astype(object)],
            "exact": np.r_[[False], ex], "jaccard": np.r_[np.float32(-1.0), jac],
            "candidates": np.r_[candidates, np.zeros(len(a), np.int64)],
            "exact_removed": np.r_[exact_removed, np.zeros(len(a), np.int64)]}


def components(a: np.ndarray, b: np.ndarray) -> dict[str, str]:
    """key -> smallest key of its connected component, for every key on an edge (in memory)."""
    if not len(a):
        return {}
    nodes, inv = np.unique(np.r_[a.astype(str), b.astype(str)], return_inverse=True)
    ai, bi = inv[: len(a)], inv[len(a):]
    label = np.arange(len(nodes))
    while True:
        low = np.minimum(label[ai], label[bi])
        nxt = label.copy()
        np.minimum.at(nxt, ai, low)
        np.minimum.at(nxt, bi, low)
        nxt = nxt[nxt]  # pointer jumping: follow labels to their own labels
        if np.array_equal(nxt, label):
            break
        label = nxt
    return dict(zip(nodes.tolist(), nodes[label].tolist()))


def summarise(pair_batches: list[dict], labels: dict[str, str], n_rows: int, params: DedupeParams,
              samples: int = 5) -> DedupeStats:
    """Fold per-batch counters and the component labels into the report's numbers."""
    lsh = params.lsh
    stats = DedupeStats(rows=n_rows, bands=lsh.bands if params.near else 0, rows_per_band=lsh.rows if params.near else 0)
    for pb in pair_batches:
        real = np.asarray(pb["jaccard"]) >= 0
        stats.candidate_pairs += int(np.asarray(pb["candidates"]).sum())
        stats.exact_removed += int(np.asarray(pb["exact_removed"]).sum())
        stats.verified_pairs += int((real & ~np.asarray(pb["exact"], bool)).sum()) + int(pb.get("verified", 0))
        if len(stats.sample_pairs) < samples:
            for a, b, j in zip(np.asarray(pb["a"])[real], np.asarray(pb["b"])[real], np.asarray(pb["jaccard"])[real]):
                if len(stats.sample_pairs) >= samples:
                    break
                stats.sample_pairs.append({"a": display_id(a), "b": display_id(b), "estimated_jaccard": round(float(j), 3)})
    removed = sum(1 for k, root in labels.items() if k != root)
    stats.near_removed = max(0, removed - stats.exact_removed)
    sizes: dict[str, int] = {}
    for root in labels.values():
        sizes[root] = sizes.get(root, 0) + 1
    stats.clusters = len(sizes)
    stats.largest_cluster = max(sizes.values(), default=0)
    return stats


@dataclass
class DedupeResult:
    kept: list[dict]
    clusters: list[dict]  # {"id": ..., "cluster": ...} for every input row, in input order
    labels: dict[str, str]
    stats: DedupeStats


def dedupe_records(records: list[dict], text_field: str, key_field: str, params: DedupeParams) -> DedupeResult:
    """In-process exact + near dedupe of a list of records (small inputs, tests)."""
    batch = {text_field: [r.get(text_field) for r in records], key_field: [r[key_field] for r in records]}
    sig = signature_batch(batch, text_field, key_field, params)
    table = SignatureTable(sig["_key"], sig.get("_sig"))
    pairs = bucket_pairs(band_rows(sig, params), params, table)
    real = pairs["jaccard"] >= 0
    labels = components(pairs["a"][real], pairs["b"][real])
    stats = summarise([pairs], labels, len(records), params)
    kept, clusters = [], []
    for r in records:
        key = str(r[key_field])
        root = labels.get(key, key)
        clusters.append({"id": display_id(key), "cluster": display_id(root)})
        if root == key:
            kept.append(r)
    return DedupeResult(kept, clusters, labels, stats)
