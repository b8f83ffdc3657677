"""Vectorised MinHash signatures and LSH band keys over batches of documents.

Why not datasketch's `MinHash.update` per shingle: one Python hash call per
shingle caps it at ~5k docs/s. Here shingles are hashed with numpy over the
whole batch and permuted with datasketch's own "affine32" scheme (MurmurHash3
fmix32, then `a*h + b mod 2^32` with datasketch's permutations for the same
seed), so a signature is bit-identical to `datasketch.MinHash(scheme="affine32",
hashfunc=<identity>)` fed the same 32-bit shingle hashes (tested).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_U32 = np.uint32
_MAX32 = np.uint32(0xFFFFFFFF)
# odd 64-bit multipliers combining word hashes into a shingle hash (position-sensitive)
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                dtype=np.uint64)


# ASCII punctuation and control characters become spaces; word characters stay
_PUNCT = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


def normalise(text: str) -> str:
    """Lower-case words (ASCII punctuation removed) joined by single spaces: what both dedupe stages compare."""
    return " ".join(text.lower().translate(_PUNCT).split())


@lru_cache(maxsize=1 << 20)
def _word_hash(word: str) -> int:
    return zlib.crc32(word.encode("utf-8"))


def exact_key(text: str, normalised: bool = False) -> str:
    """Hash of the normalised text: equal keys mean exact duplicates."""
    norm = text if normalised else normalise(text)
    return hashlib.blake2b(norm.encode("utf-8"), digest_size=16).hexdigest()


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U32(16))
    h = h * _U32(0x85EBCA6B)
    h = h ^ (h >> _U32(13))
    h = h * _U32(0xC2B2AE35)
    return h ^ (h >> _U32(16))


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a odd, b) for `seed`."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def word_hashes(text: str, normalised: bool = False) -> np.ndarray:
    words = (text if normalised else normalise(text)).split()
    return np.fromiter(map(_word_hash, words), dtype=np.uint64, count=len(words))


def shingle_hashes(words: np.ndarray, ngram: int) -> np.ndarray:
    """32-bit hashes of word n-grams (one shingle of all words when the text is shorter)."""
    n = len(words)
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    k = min(ngram, n)
    count = n - k + 1
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            acc += (words[j:j + count] + np.uint64(j + 1)) * _MIX[j % len(_MIX)]
        acc ^= acc >> np.uint64(29)
        folded = (acc ^ (acc >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    return folded.astype(np.uint32)


def batch_shingles(texts: list[str], ngram: int, normalised: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All shingle hashes of a batch, concatenated, and the owning text index of each."""
    per_doc = [word_hashes(t or "", normalised) for t in texts]
    lengths = np.fromiter((len(w) for w in per_doc), dtype=np.int64, count=len(per_doc))
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int64)
    words = np.concatenate(per_doc)
    owner = np.repeat(np.arange(len(texts)), lengths)
    count = len(words) - ngram + 1
    parts, owners = [], []
    if count > 0:
        acc = np.zeros(count, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(ngram):
                acc += (words[j:j + count] + np.uint64(j + 1)) * _MIX[j % len(_MIX)]
            acc ^= acc >> np.uint64(29)
            folded = ((acc ^ (acc >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        inside = owner[:count] == owner[ngram - 1:]  # window does not cross a document boundary
        parts.append(folded[inside])
        owners.append(owner[:count][inside])
    for i in np.flatnonzero((lengths > 0) & (lengths < ngram)):
        parts.append(shingle_hashes(per_doc[i], ngram))
        owners.append(np.full(1, i, dtype=np.int64))
    sh, own = np.concatenate(parts), np.concatenate(owners)
    order = np.argsort(own, kind="stable")
    return sh[order], own[order]


def signatures(texts: list[str], ngram: int = 5, num_perm: int = 128, seed: int = 1,
               normalised: bool = False) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures; an empty text gets all 0xFFFFFFFF."""
    sh, owner = batch_shingles(texts, ngram, normalised)
    return signatures_of(sh, owner, len(texts), num_perm, seed)


def signatures_of(sh: np.ndarray, owner: np.ndarray, n: int, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """Signatures from shingle hashes grouped by (sorted) owner: what `signatures` and the exact path share."""
    a, b = permutations(num_perm, seed)
    out = np.full((n, num_perm), _MAX32, dtype=np.uint32)
    if not len(sh):
        return out
    flat = _fmix32(sh)
    step = max(1, (1 << 21) // num_perm)  # bound the (shingles x num_perm) product's memory
    with np.errstate(over="ignore"):
        for lo in range(0, len(flat), step):
            hi = min(len(flat), lo + step)
            phv = flat[lo:hi, None] * a[None, :] + b[None, :]
            docs = owner[lo:hi]
            first = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
            _merge(out, docs[first], np.minimum.reduceat(phv, first, axis=0))
    return out


def _merge(mins: np.ndarray, rows: np.ndarray, red: np.ndarray) -> None:
    # rows are unique within one chunk (segments are contiguous), so fancy assignment is safe
    mins[rows] = np.minimum(mins[rows], red)


@dataclass(frozen=True)
class LshParams:
    """How a signature is cut into bands: `bands` x `rows` permutations each."""

    bands: int
    rows: int

    @classmethod
    def choose(cls, threshold: float, num_perm: int, bands: int | None = None, rows: int | None = None) -> "LshParams":
        if bands is not None and rows is not None:
            return cls(bands, rows)
        return cls(*optimal_bands(threshold, num_perm))


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising equal-weight false-positive + false-negative area, as datasketch does."""
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(b), int(r)


def band_keys(sigs: np.ndarray, params: LshParams) -> np.ndarray:
    """(n, bands) uint64 keys: a hash of each band's `rows` signature values."""
    n = sigs.shape[0]
    keys = np.zeros((n, params.bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(params.bands):
            chunk = sigs[:, band * params.rows:(band + 1) * params.rows].astype(np.uint64)
            acc = np.full(n, np.uint64(band + 1) * _MIX[0], dtype=np.uint64)
            for j in range(params.rows):
                acc = (acc ^ chunk[:, j]) * _MIX[(j + 1) % len(_MIX)]
                acc ^= acc >> np.uint64(31)
            keys[:, band] = acc
    return keys


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of agreeing signature positions, row-wise."""
    return (np.asarray(sig_a) == np.asarray(sig_b)).mean(axis=-1)


def shingle_set(text: str, ngram: int) -> set[int]:
    """The exact shingle-hash set of a text (for exact-Jaccard checks and tests)."""
    return set(shingle_hashes(word_hashes(text or ""), ngram).tolist())


@lru_cache(maxsize=64)
def recall_bands(threshold: float, num_perm: int, recall: float = 0.995) -> tuple[int, int]:
    """(bands, rows) for exact verification: candidate recall >= `recall` at `threshold`, fewest false candidates.

    Why not `optimal_bands`: its S-curve crosses ~0.5 near the threshold, so a pair at
    J = threshold is found about half the time; verification can only reject, never
    recover, so the bands are designed for a lower effective threshold instead.
    """
    best = None
    for r in range(1, num_perm + 1):
        p = threshold ** r
        if p <= 0 or p >= 1:
            continue
        b = int(np.ceil(np.log1p(-recall) / np.log1p(-p)))
        if b < 1 or b * r > num_perm:
            continue
        xs = np.linspace(0.0, threshold, 201)
        fp = float(np.trapezoid(1 - (1 - xs ** r) ** b, xs))  # expected candidate load below the threshold
        if best is None or fp < best[0]:
            best = (fp, b, r)
    if best is None:  # num_perm too small for the recall goal: as many bands of one row as there are permutations
        return num_perm, 1
    return best[1], best[2]


def candidate_recall(jaccard: float, params: LshParams) -> float:
    """Probability that a pair at `jaccard` shares at least one band."""
    return 1.0 - (1.0 - jaccard ** params.rows) ** params.bands


def shingle_sets(texts: list[str], ngram: int, normalised: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values): each text's sorted, unique 32-bit shingle hashes, concatenated (CSR)."""
    sh, owner = batch_shingles(texts, ngram, normalised)
    return unique_sets(sh, owner, len(texts))


def unique_sets(sh: np.ndarray, owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, values) of the sorted unique shingle hashes of each of `n` owners."""
    keyed = (owner.astype(np.uint64) << np.uint64(32)) | sh.astype(np.uint64)
    keyed.sort()  # (np.unique's hash path is several times slower here)
    keyed = keyed[np.r_[True, keyed[1:] != keyed[:-1]]] if len(keyed) else keyed
    docs = (keyed >> np.uint64(32)).astype(np.int64)
    values = (keyed & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(docs, minlength=n), out=offsets[1:])
    return offsets, values


def sketch(texts: list[str], ngram: int, num_perm: int, seed: int, normalised: bool = False
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signatures, offsets, values) in one shingling pass: signatures plus the exact sets that verify them."""
    offsets, values = shingle_sets(texts, ngram, normalised)
    owner = np.repeat(np.arange(len(texts)), np.diff(offsets))
    return signatures_of(values, owner, len(texts), num_perm, seed), offsets, values


def _segments(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of the CSR segments of `rows`, and the index (into `rows`) owning each."""
    starts, lens = offsets[rows], offsets[rows + 1] - offsets[rows]
    owner = np.repeat(np.arange(len(rows)), lens)
    ends = np.cumsum(lens)
    pos = np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lens, lens) + np.repeat(starts, lens)
    return pos, owner


def exact_jaccard(offsets: np.ndarray, values: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                  chunk: int = 1 << 22) -> np.ndarray:
    """Exact Jaccard of the shingle sets of rows `ia[k]` and `ib[k]` (CSR as from `shingle_sets`), vectorised.

    Each set is sorted, so tagging values with the pair number keeps the A side sorted and
    one `searchsorted` of the B side counts the intersection: no per-pair Python, no sort.
    """
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    la, lb = offsets[ia + 1] - offsets[ia], offsets[ib + 1] - offsets[ib]
    out = np.ones(len(ia), dtype=np.float64)  # two empty texts are identical
    lo = 0
    while lo < len(ia):
        hi, size = lo, 0  # a run of pairs whose elements fit the chunk
        while hi < len(ia) and (size == 0 or size + la[hi] + lb[hi] <= chunk):
            size += la[hi] + lb[hi]
            hi += 1
        pa, oa = _segments(offsets, ia[lo:hi])
        pb, ob = _segments(offsets, ib[lo:hi])
        ka = (oa.astype(np.uint64) << np.uint64(32)) | values[pa].astype(np.uint64)
        kb = (ob.astype(np.uint64) << np.uint64(32)) | values[pb].astype(np.uint64)
        at = np.minimum(np.searchsorted(ka, kb), max(len(ka) - 1, 0))
        hit = (ka[at] == kb) if len(ka) else np.zeros(len(kb), bool)
        inter = np.bincount(ob[hit], minlength=hi - lo)
        union = la[lo:hi] + lb[lo:hi] - inter
        out[lo:hi] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        lo = hi
    return out
