"""Exact + MinHash-LSH near-duplicate removal on plain record batches (no Ray).

The steps are batch functions so the Ray Data pipeline (`llmft.data.dedupe_ray`)
and the in-process path run the same code:

  signature_batch -> band_rows (exact key as band -1, LSH bands 0..b-1)
  -> bucket_pairs (group rows by band key: candidate pairs)
  -> verify (exact Jaccard of the two shingle sets by default; estimated from
     the signatures as an option) -> connected components (min-label)
  -> keep the smallest key of each cluster.

With exact verification the bands are designed for candidate recall near 1 at
the threshold (`minhash.recall_bands`): LSH only proposes, the shingle sets decide,
so a pair at J = 0.79 is never linked at threshold 0.8 and one at 0.81 always is
(up to the ~0.5% candidate miss rate at exactly the threshold, falling fast above it).

Keys are strings; the keep rule (smallest key wins) and the cluster label (the
keeper's key) depend only on the input, never on partitioning or order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from llmft.data import minhash as mh

EXACT_BAND = -1
VERIFY_MODES = ("exact", "estimate", "none")
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
    verify: str = "exact"  # exact | estimate | none
    recall: float = 0.995  # candidate recall at the threshold the bands are designed for (exact verification)
    local_max_rows: int = 250_000  # inputs up to this size run in-process (in one Ray task on the Ray path)

    def __post_init__(self) -> None:
        if isinstance(self.verify, bool):  # the old switch (CLI --no-verify): True verifies, False links all
            object.__setattr__(self, "verify", "exact" if self.verify else "none")
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"dedupe verify must be one of {VERIFY_MODES} (got {self.verify!r})")

    @classmethod
    def from_spec(cls, spec) -> "DedupeParams":
        return cls(ngram=spec.ngram, num_perm=spec.num_perm, seed=spec.seed, threshold=spec.threshold,
                   bands=spec.bands, rows=spec.rows, exact=spec.exact, near=spec.near, verify=spec.verify,
                   recall=spec.candidate_recall, local_max_rows=spec.local_max_rows)

    @property
    def lsh(self) -> mh.LshParams:
        if self.bands is not None and self.rows is not None:
            return mh.LshParams(self.bands, self.rows)
        if self.verify == "exact":
            return mh.LshParams(*mh.recall_bands(self.threshold, self.num_perm, self.recall))
        return mh.LshParams(*mh.optimal_bands(self.threshold, self.num_perm))


@dataclass
class DedupeStats:
    rows: int = 0
    exact_removed: int = 0
    near_removed: int = 0
    candidate_pairs: int = 0  # near candidate pairs out of the LSH buckets (Ray path: summed over partitions)
    verified_pairs: int = 0  # candidates whose Jaccard passed the threshold: linked as near duplicates
    rejected_pairs: int = 0  # candidates below the threshold: not linked
    exact_pairs: int = 0  # pairs with equal normalised text (linked without verification)
    clusters: int = 0
    largest_cluster: int = 0
    bands: int = 0
    rows_per_band: int = 0
    verify: str = "exact"
    engine: str = "in-process"
    engine_reason: str = ""
    sample_pairs: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def display_id(key: str) -> str:
    return key.split(SEP, 1)[0]


def key_handle(key: str) -> int:
    """64-bit handle of a dedupe key: band rows and pairs carry it instead of the string (smaller shuffles)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def signature_batch(batch: dict, text_field: str, key_field: str, params: DedupeParams) -> dict:
    """`_h` (key handle), `_exact` (normalised-text hash), `_sig` (MinHash signature) and, for exact
    verification, `_sets` (CSR offsets, values of each row's sorted unique shingle hashes)."""
    texts = [mh.normalise(t) if isinstance(t, str) else "" for t in batch[text_field]]
    keys = [str(k) for k in batch[key_field]]
    out = {"_h": np.fromiter(map(key_handle, keys), dtype=np.uint64, count=len(keys)),
           "_exact": np.asarray([mh.exact_key(t, True) for t in texts], dtype=object)}
    out["_ex"] = exact_handles(out["_exact"])
    if params.near and params.verify == "exact":
        out["_sig"], off, val = mh.sketch(texts, params.ngram, params.num_perm, params.seed, normalised=True)
        out["_sets"] = (off, val)
    elif params.near:
        out["_sig"] = mh.signatures(texts, params.ngram, params.num_perm, params.seed, normalised=True)
    return out


def exact_handles(exact: list[str] | np.ndarray) -> np.ndarray:
    """64-bit handles of exact keys: the exact band's bucket key, and how verification spots exact copies."""
    return np.fromiter((int(e[:16], 16) for e in exact), dtype=np.uint64, count=len(exact))


def band_rows(batch: dict, params: DedupeParams) -> dict:
    """One row per (document, band): band -1 carries the exact key, bands 0.. the LSH keys."""
    h = np.asarray(batch["_h"], dtype=np.uint64)
    n = len(h)
    bands, bkeys, owners = [], [], []
    if params.exact and n:
        bands.append(np.full(n, EXACT_BAND, dtype=np.int32))
        bkeys.append(exact_handles(batch["_exact"]))
        owners.append(h)
    if params.near and n:
        lsh = params.lsh
        kb = mh.band_keys(np.asarray(batch["_sig"]), lsh)
        bands.append(np.tile(np.arange(lsh.bands, dtype=np.int32), n))
        bkeys.append(kb.reshape(-1))
        owners.append(np.repeat(h, lsh.bands))
    if not bands:
        return {"band": np.zeros(0, np.int32), "bkey": np.zeros(0, np.uint64), "_h": np.zeros(0, np.uint64)}
    return {"band": np.concatenate(bands), "bkey": np.concatenate(bkeys), "_h": np.concatenate(owners)}


class DocTable:
    """Handle -> (key, signature, shingle set) lookup: names candidate pairs and verifies them."""

    def __init__(self, keys: list[str] | np.ndarray, sigs: np.ndarray | None, handles: np.ndarray | None = None,
                 sets: tuple[np.ndarray, np.ndarray] | None = None, exact: np.ndarray | None = None):
        keys = np.asarray(keys, dtype=object)
        h = handles if handles is not None else np.fromiter(map(key_handle, keys), np.uint64, count=len(keys))
        order = np.argsort(h, kind="stable")
        self.h = np.asarray(h, dtype=np.uint64)[order]
        if len(self.h) > 1 and (self.h[1:] == self.h[:-1]).any():
            from llmft.errors import ConflictError

            raise ConflictError("dedupe: two rows share a key (or a 64-bit key hash); keys must be unique")
        self.order = order  # sorted position -> input row (the CSR sets stay in input order)
        self.keys = keys[order]
        self.sigs = None if sigs is None else np.asarray(sigs)[order]
        self.sets = sets
        self.exact = None if exact is None else np.asarray(exact, np.uint64)[order]

    def _idx(self, h: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.h, np.asarray(h, dtype=np.uint64))

    def rows(self, h: np.ndarray) -> np.ndarray:
        return self.sigs[self._idx(h)]

    def names(self, h: np.ndarray) -> np.ndarray:
        return self.keys[self._idx(h)]

    def same_text(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pairs whose normalised texts are equal (exact copies: the exact band links them)."""
        return self.exact[self._idx(a)] == self.exact[self._idx(b)]

    def jaccard(self, a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
        """Exact (shingle sets) or estimated (signature agreement) Jaccard of pairs of handles."""
        if mode == "exact":
            off, val = self.sets
            return mh.exact_jaccard(off, val, self.order[self._idx(a)], self.order[self._idx(b)])
        return mh.estimated_jaccard(self.rows(a), self.rows(b))


SignatureTable = DocTable  # the name before exact verification


def _counters_only(exact_removed: int) -> dict:
    return {"a": np.zeros(1, np.uint64), "b": np.zeros(1, np.uint64), "exact": np.zeros(1, bool),
            "jaccard": np.full(1, -1.0, np.float32), "candidates": np.zeros(1, np.int64),
            "rejected": np.zeros(1, np.int64), "exact_removed": np.asarray([exact_removed], np.int64)}


def is_pair(pb: dict) -> np.ndarray:
    """Rows of a pair batch that are pairs (the counter row has jaccard -1; unverified pairs NaN)."""
    return ~(np.asarray(pb["jaccard"]) < 0)


def pair_batch(a: np.ndarray, b: np.ndarray, ex: np.ndarray, jac: np.ndarray, *, exact_removed: int = 0,
               candidates: int = 0, rejected: int = 0) -> dict:
    """Pairs behind one counter row (the batch's counts), the layout every pair step emits."""
    head = _counters_only(exact_removed)
    head["candidates"][0], head["rejected"][0] = candidates, rejected
    z = np.zeros(len(a), np.int64)
    return {"a": np.r_[head["a"], a], "b": np.r_[head["b"], b], "exact": np.r_[head["exact"], ex],
            "jaccard": np.r_[head["jaccard"], np.asarray(jac, np.float32)], "candidates": np.r_[head["candidates"], z],
            "rejected": np.r_[head["rejected"], z], "exact_removed": np.r_[head["exact_removed"], z]}


def bucket_pairs(batch: dict, params: DedupeParams, table: DocTable | None) -> dict:
    """Pairs (a < b, as key handles) sharing a bucket; near pairs verified against `table` when given.

    Expects every row of a (band, bkey) bucket in this batch (hash-partitioned upstream).
    Without a table (or with verify "none") near pairs pass unverified: jaccard is NaN, to be
    decided downstream (the Ray path joins them with their shingle sets). The first output
    row carries this batch's counters (jaccard < 0 marks it).
    """
    band = np.asarray(batch["band"], dtype=np.int64)
    bkey = np.asarray(batch["bkey"], dtype=np.uint64)
    h = np.asarray(batch["_h"], dtype=np.uint64)
    if not len(h):
        return _counters_only(0)
    order = np.lexsort((h, bkey, band))
    band, bkey, h = band[order], bkey[order], h[order]
    starts = np.flatnonzero(np.r_[True, (band[1:] != band[:-1]) | (bkey[1:] != bkey[:-1])])
    sizes = np.diff(np.r_[starts, len(h)])
    is_exact = band == EXACT_BAND
    exact_removed = int((sizes[(sizes > 1) & is_exact[starts]] - 1).sum())
    two = starts[sizes == 2]  # buckets of two (the vast majority): the two adjacent rows
    a_list, b_list, ex_list = [h[two]], [h[two + 1]], [is_exact[two]]
    for s, size in zip(starts[sizes > 2], sizes[sizes > 2]):
        members = h[s:s + size]
        if band[s] == EXACT_BAND or size > MAX_BUCKET_ALL_PAIRS:
            i, j = np.zeros(size - 1, dtype=np.int64), np.arange(1, size)  # star on the bucket's first member
        else:
            i, j = np.triu_indices(size, 1)
        a_list.append(members[i])
        b_list.append(members[j])
        ex_list.append(np.full(len(i), band[s] == EXACT_BAND))
    a, b, ex = np.concatenate(a_list), np.concatenate(b_list), np.concatenate(ex_list)
    keep = a != b
    a, b, ex = a[keep], b[keep], ex[keep]
    if not len(a):
        return _counters_only(exact_removed)
    # one row per pair; a pair found by the exact band and an LSH band counts once, as exact
    first = np.lexsort((~ex, b, a))
    a, b, ex = a[first], b[first], ex[first]
    uniq = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    a, b, ex = a[uniq], b[uniq], ex[uniq]
    if params.exact and table is not None and table.exact is not None:  # copies met again in an LSH band
        drop = ~ex & table.same_text(a, b)
        a, b, ex = a[~drop], b[~drop], ex[~drop]
    candidates = int((~ex).sum())
    jac = np.where(ex, 1.0, np.nan).astype(np.float32)
    rejected = 0
    near = ~ex
    if near.any() and table is not None:
        mode = params.verify
        if mode == "exact" and table.sets is not None or mode != "exact" and table.sigs is not None:
            jac[near] = table.jaccard(a[near], b[near], "exact" if mode == "exact" else "estimate")
        if mode != "none":
            ok = ex | (jac >= params.threshold)
            rejected = int((~ok).sum())
            a, b, ex, jac = a[ok], b[ok], ex[ok], jac[ok]
    return pair_batch(a, b, ex, jac, exact_removed=exact_removed, candidates=candidates, rejected=rejected)


def verify_pairs(a: np.ndarray, b: np.ndarray, jac: np.ndarray, threshold: float) -> dict:
    """A pair batch of the near candidates (a, b) whose (already computed) Jaccard passes the threshold."""
    ok = jac >= threshold
    return pair_batch(a[ok], b[ok], np.zeros(int(ok.sum()), bool), jac[ok], rejected=int((~ok).sum()))


def named_pairs(pb: dict, table: DocTable) -> dict:
    """A pair batch with handles replaced by key strings (counter rows keep empty names)."""
    real = is_pair(pb)
    out = dict(pb)
    for col in ("a", "b"):
        names = np.full(len(real), "", dtype=object)
        names[real] = table.names(np.asarray(pb[col])[real])
        out[col] = names
    return out


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
              samples: int = 5, engine: str = "in-process", engine_reason: str = "") -> DedupeStats:
    """Fold per-batch counters and the component labels into the report's numbers."""
    lsh = params.lsh
    stats = DedupeStats(rows=n_rows, bands=lsh.bands if params.near else 0,
                        rows_per_band=lsh.rows if params.near else 0,
                        verify=params.verify if params.near else "", engine=engine, engine_reason=engine_reason)
    for pb in pair_batches:
        real = is_pair(pb)
        ex = np.asarray(pb["exact"], bool)
        stats.candidate_pairs += int(np.asarray(pb["candidates"]).sum())
        stats.rejected_pairs += int(np.asarray(pb.get("rejected", [0])).sum())
        stats.exact_removed += int(np.asarray(pb["exact_removed"]).sum())
        stats.exact_pairs += int((real & ex).sum()) + int(pb.get("exact_count", 0))
        stats.verified_pairs += int((real & ~ex).sum()) + int(pb.get("verified", 0))
        if len(stats.sample_pairs) < samples:
            near = real & ~ex
            for a, b, j in zip(np.asarray(pb["a"])[near], np.asarray(pb["b"])[near], np.asarray(pb["jaccard"])[near]):
                if len(stats.sample_pairs) >= samples:
                    break
                j = round(float(j), 3)
                stats.sample_pairs.append({"a": display_id(a), "b": display_id(b), "jaccard": j,
                                           "estimated_jaccard": j, "verify": params.verify})
    removed = sum(1 for k, root in labels.items() if k != root)
    stats.near_removed = max(0, removed - stats.exact_removed)
    sizes: dict[str, int] = {}
    for root in labels.values():
        sizes[root] = sizes.get(root, 0) + 1
    stats.clusters = len(sizes)
    stats.largest_cluster = max(sizes.values(), default=0)
    return stats


def dedupe_columns(keys: list[str], texts: list, params: DedupeParams, engine: str = "in-process",
                   engine_reason: str = "") -> tuple[dict[str, str], DedupeStats]:
    """In-process dedupe of parallel key / text columns: (key -> cluster key for keys in clusters, stats)."""
    keys = [str(k) for k in keys]
    sig = signature_batch({"t": texts, "k": keys}, "t", "k", params)
    table = DocTable(keys, sig.get("_sig"), sig["_h"], sig.get("_sets"), sig["_ex"])
    pairs = named_pairs(bucket_pairs(band_rows(sig, params), params, table), table)
    real = is_pair(pairs)
    labels = components(pairs["a"][real], pairs["b"][real])
    return labels, summarise([pairs], labels, len(keys), params, engine=engine, engine_reason=engine_reason)


@dataclass
class DedupeResult:
    kept: list[dict]
    clusters: list[dict]  # {"id": ..., "cluster": ...} for every input row, in input order
    labels: dict[str, str]
    stats: DedupeStats


def dedupe_records(records: list[dict], text_field: str, key_field: str, params: DedupeParams) -> DedupeResult:
    """In-process exact + near dedupe of a list of records (small inputs, tests)."""
    labels, stats = dedupe_columns([r[key_field] for r in records], [r.get(text_field) for r in records], params)
    kept, clusters = [], []
    for r in records:
        key = str(r[key_field])
        root = labels.get(key, key)
        clusters.append({"id": display_id(key), "cluster": display_id(root)})
        if root == key:
            kept.append(r)
    return DedupeResult(kept, clusters, labels, stats)
