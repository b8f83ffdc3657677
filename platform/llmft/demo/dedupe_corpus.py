"""A large English-like corpus with planted exact and near duplicates, for the MinHash-LSH dedupe benchmark.

Words are drawn with numpy from a fixed vocabulary (common English words first,
then pronounceable made-up words) under Zipf-like frequencies, so 200k documents
take a few seconds and unplanted documents share almost no word 5-grams.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

_COMMON = """the of and to a in is it you that he was for on are with as his they be at one have this from or
had by hot word but what some we can out other were all there when up use your how said an each she which do
their time if will way about many then them write would like so these her long make thing see him two has look
more day could go come did number sound no most people my over know water than call first who may down side been
now find any new work part take get place made live where after back little only round man year came show every
good me give our under name very through just form sentence great think say help low line differ turn cause much
mean before move right boy old too same tell does set three want air well also play small end put home read hand
port large spell add even land here must big high such follow act why ask men change went light kind off need
house picture try us again animal point mother world near build self earth father head stand own page should
country found answer school grow study still learn plant cover food sun four between state keep eye never last
let thought city tree cross farm hard start might story saw far sea draw left late run while press close night
real life few north open seem together next white children begin got walk example ease paper group always music
those both mark often letter until mile river car feet care second book carry took science eat room friend began
idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual young
ready above ever red list though feel talk bird soon body dog family direct pose leave song measure door product
black short numeral class wind question happen complete ship area half rock order fire south problem piece told
knew pass since top whole king space heard best hour better true during hundred five remember step early hold
west ground interest reach fast verb sing listen six table travel less morning ten simple several vowel toward
war lay against pattern slow center love person money serve appear road map rain rule govern pull cold notice
voice unit power town fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest
correct able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean warm
free minute strong special mind behind clear tail produce fact street inch multiply nothing course stay wheel
full force blue object decide surface deep moon island foot system busy test record boat common gold possible
plane stead dry wonder laugh thousand ago ran check game shape equate miss brought heat snow tire bring yes
distant fill east paint language among""".split()
_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "st", "tr",
           "pl", "gr", "br", "ch", "sh", "th", "cl", "fr", "sp", "qu"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "ee", "oa"]
_CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt", "x"]
_TABLE = 1 << 20  # sampling resolution; the rarest word still owns ~25 table slots
_SUFFIXES = ["", "", "", "ing", "er", "ly", "tion", "ness", "ment", "ive", "al", "ed"]


@lru_cache(maxsize=4)
def vocabulary(size: int = 4000, exponent: float = 1.05) -> tuple[list[str], np.ndarray]:
    """(words, sampling table) under Zipf-Mandelbrot weights; fixed whatever the corpus seed."""
    rng = np.random.default_rng(20240611)
    words = list(dict.fromkeys(_COMMON))
    seen = set(words)
    while len(words) < size:
        onsets = _ONSETS
        w = ""
        for _ in range(int(rng.choice([1, 2, 2, 3]))):
            w += onsets[rng.integers(len(onsets))] + _VOWELS[rng.integers(len(_VOWELS))]
            onsets = _ONSETS[:18]  # later syllables start with a single consonant
        w += _CODAS[rng.integers(len(_CODAS))] + _SUFFIXES[rng.integers(len(_SUFFIXES))]
        if w not in seen and 2 < len(w) < 14:
            seen.add(w)
            words.append(w)
    weights = 1.0 / (np.arange(size) + 2.7) ** exponent  # Zipf-Mandelbrot
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    # inverse-CDF lookup table: one integer draw + one gather per word instead of a binary search
    table = np.searchsorted(cdf, (np.arange(_TABLE) + 0.5) / _TABLE, side="right")
    return words, np.minimum(table, size - 1).astype(np.int32)


def _draw(rng: np.random.Generator, table: np.ndarray, n: int) -> np.ndarray:
    return table[rng.integers(0, len(table), n)]


def generate_dedupe_corpus(n_docs: int, *, seed: int = 0, near_dup_rate: float = 0.1, exact_dup_rate: float = 0.05,
                           words_changed: tuple[int, int] = (1, 3),
                           doc_words: tuple[int, int] = (40, 120)) -> tuple[list[dict], dict]:
    """`n_docs` documents {"id", "text"} and the truth: planted duplicate groups and every true pair.

    A near duplicate substitutes `words_changed` (inclusive range) words of its
    source; an exact duplicate copies it. Sources are original documents only, so a
    group is one source plus all its copies; every pair inside a group is a true pair.
    """
    if n_docs < 1:
        raise ValueError(f"n_docs must be at least 1 (got {n_docs})")
    if near_dup_rate < 0 or exact_dup_rate < 0 or near_dup_rate + exact_dup_rate >= 1:
        raise ValueError("near_dup_rate and exact_dup_rate must be >= 0 and sum to less than 1")
    lo, hi = doc_words
    k_lo, k_hi = words_changed
    if not 1 <= lo <= hi or not 1 <= k_lo <= k_hi or k_hi > lo:
        raise ValueError(f"need 1 <= words_changed <= doc_words bounds (got {words_changed}, {doc_words})")
    words, table = vocabulary()
    rng = np.random.default_rng(seed)
    n_near, n_exact = int(round(n_docs * near_dup_rate)), int(round(n_docs * exact_dup_rate))
    n_orig = n_docs - n_near - n_exact

    lengths = rng.integers(lo, hi + 1, n_orig)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    tokens = _draw(rng, table, bounds[-1])
    vocab_words = list(map(words.__getitem__, tokens.tolist()))
    texts = [" ".join(vocab_words[bounds[i]:bounds[i + 1]]) for i in range(n_orig)]
    del vocab_words

    near_src = rng.integers(0, n_orig, n_near).tolist()
    near_k = rng.integers(k_lo, k_hi + 1, n_near).tolist()
    replacements = _draw(rng, table, sum(near_k)).tolist()
    r = 0
    for src, k in zip(near_src, near_k):
        doc = tokens[bounds[src]:bounds[src + 1]].copy()
        for pos in rng.choice(len(doc), size=k, replace=False).tolist():
            new = replacements[r]
            r += 1
            doc[pos] = new if new != doc[pos] else (new + 1) % len(words)
        texts.append(" ".join(map(words.__getitem__, doc.tolist())))
    exact_src = rng.integers(0, n_orig, n_exact).tolist()
    texts.extend(texts[s] for s in exact_src)

    position = rng.permutation(n_docs)  # logical index -> place in the output
    ids = [f"doc-{p:07d}" for p in position.tolist()]
    docs: list[dict] = [{}] * n_docs
    for i, p in enumerate(position.tolist()):
        docs[p] = {"id": ids[i], "text": texts[i]}

    groups: dict[int, list[str]] = {}
    near_pairs, exact_pairs = [], []
    for j, (src, k) in enumerate(zip(near_src, near_k)):
        groups.setdefault(src, [ids[src]]).append(ids[n_orig + j])
        near_pairs.append([ids[src], ids[n_orig + j], k])
    for j, src in enumerate(exact_src):
        groups.setdefault(src, [ids[src]]).append(ids[n_orig + n_near + j])
        exact_pairs.append([ids[src], ids[n_orig + n_near + j]])
    group_list = [groups[s] for s in sorted(groups)]
    pairs = sorted([min(a, b), max(a, b)] for g in group_list for i, a in enumerate(g) for b in g[i + 1:])
    truth = {
        "n_docs": n_docs, "seed": seed,
        "params": {"near_dup_rate": near_dup_rate, "exact_dup_rate": exact_dup_rate,
                   "words_changed": list(words_changed), "doc_words": list(doc_words), "vocabulary": len(words)},
        "groups": group_list,  # source first, then its near and exact copies
        "near_pairs": near_pairs,  # [source, copy, words changed]
        "exact_pairs": exact_pairs,  # [source, copy]
        "pairs": pairs,  # every true duplicate pair (within groups), sorted ids
        "duplicates_to_remove": sum(len(g) - 1 for g in group_list),
    }
    return docs, truth


def write_dedupe_corpus(path: str | Path, n_docs: int, **kwargs) -> dict:
    """Write the corpus as JSONL (.jsonl/.json) or Parquet (.parquet) and its truth beside it; returns the truth.

    The truth goes to `<path without suffix>.truth.json`; kwargs as `generate_dedupe_corpus`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise ValueError(f"unsupported corpus format '{path.suffix}': use .jsonl or .parquet")
    docs, truth = generate_dedupe_corpus(n_docs, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
        pq.write_table(table, path)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(d) + "\n" for d in docs)
    truth_path = path.with_suffix(".truth.json")
    truth_path.write_text(json.dumps(truth) + "\n", encoding="utf-8")
    return {**truth, "data_path": str(path), "truth_path": str(truth_path)}
