"""Exact verification of LSH candidates: decisions at the threshold, the report's counts, estimate mode."""

import random

import numpy as np
import pytest

from llmft.config import DedupeSpec
from llmft.data import minhash as mh
from llmft.data.dedupe import DedupeParams, dedupe_records


def _pair(tag: str, n: int, shared: int) -> list[dict]:
    """Two texts of `n` distinct words sharing `shared` of them: unigram Jaccard shared / (2n - shared)."""
    common = [f"{tag}c{i}" for i in range(shared)]
    a = common + [f"{tag}a{i}" for i in range(n - shared)]
    b = common + [f"{tag}b{i}" for i in range(n - shared)]
    return [{"id": f"{tag}-1", "text": " ".join(a)}, {"id": f"{tag}-2", "text": " ".join(b)}]


def _linked(res, tag: str) -> bool:
    clusters = {c["id"]: c["cluster"] for c in res.clusters}
    return clusters[f"{tag}-1"] == clusters[f"{tag}-2"]


def test_exact_jaccard_equals_python_sets():
    rng = random.Random(0)
    texts = [" ".join(rng.choices([f"w{i}" for i in range(200)], k=rng.randint(0, 80))) for _ in range(200)]
    off, val = mh.shingle_sets(texts, 3)
    ia, ib = np.array([rng.randrange(200) for _ in range(1500)]), np.array([rng.randrange(200) for _ in range(1500)])
    got = mh.exact_jaccard(off, val, ia, ib, chunk=700)  # small chunks: exercise the chunking too
    for a, b, j in zip(ia, ib, got):
        sa, sb = mh.shingle_set(texts[a], 3), mh.shingle_set(texts[b], 3)
        assert j == pytest.approx(len(sa & sb) / len(sa | sb) if sa | sb else 1.0, abs=1e-12)


def test_recall_bands_find_pairs_at_the_threshold():
    for t in (0.5, 0.7, 0.8, 0.9):
        p = mh.LshParams(*mh.recall_bands(t, 128))
        assert p.bands * p.rows <= 128 and mh.candidate_recall(t, p) >= 0.995
    assert DedupeParams(threshold=0.8).lsh == mh.LshParams(*mh.recall_bands(0.8, 128))
    assert DedupeParams(threshold=0.5, verify="estimate").lsh == mh.LshParams(25, 5)  # datasketch's choice


def test_pairs_at_079_and_081_are_decided_exactly_where_estimates_err():
    docs, truth = [], {}
    for i in range(20):  # J = 162/200 = 0.81 and 158/200 = 0.79 (unigrams, distinct words)
        docs += _pair(f"hi{i}", 181, 162)
        docs += _pair(f"lo{i}", 179, 158)
        truth[f"hi{i}"], truth[f"lo{i}"] = True, False
    a, b = mh.shingle_set(docs[0]["text"], 1), mh.shingle_set(docs[1]["text"], 1)
    assert len(a & b) / len(a | b) == pytest.approx(0.81)
    exact = dedupe_records(docs, "text", "id", DedupeParams(threshold=0.8, ngram=1))
    assert {tag: _linked(exact, tag) for tag in truth} == truth
    assert exact.stats.verify == "exact" and exact.stats.rejected_pairs >= 15
    # the signature estimate (sigma ~0.035 at 128 permutations) gets some of these wrong
    est = dedupe_records(docs, "text", "id", DedupeParams(threshold=0.8, ngram=1, verify="estimate"))
    assert sum(_linked(est, tag) != want for tag, want in truth.items()) >= 2


def test_report_separates_exact_near_and_rejected():
    rng = random.Random(3)
    vocab = [f"v{i}" for i in range(50_000)]
    base = rng.sample(vocab, 300)
    near = list(base)
    near[150] = "changed"  # one word of 300: 5-gram Jaccard 291/301 ~ 0.967
    far = list(base)
    for i in range(0, 300, 25):  # 12 words changed: Jaccard ~ 0.67, a candidate but below 0.8
        far[i] = f"other{i}"
    docs = [{"id": "a", "text": " ".join(base)}, {"id": "b", "text": " ".join(base).upper()},
            {"id": "c", "text": " ".join(near)}, {"id": "d", "text": " ".join(far)},
            {"id": "e", "text": " ".join(rng.sample(vocab, 300))}]
    jd = len(mh.shingle_set(docs[0]["text"], 5) & mh.shingle_set(docs[3]["text"], 5)) / len(
        mh.shingle_set(docs[0]["text"], 5) | mh.shingle_set(docs[3]["text"], 5))
    assert 0.6 < jd < 0.8
    # bands that make (a, d) a candidate for sure: 64 bands of 2 rows
    res = dedupe_records(docs, "text", "id", DedupeParams(threshold=0.8, bands=64, rows=2))
    s = res.stats
    assert (s.exact_pairs, s.exact_removed) == (1, 1)  # a == b after normalisation
    assert s.verified_pairs == 2 and s.near_removed == 1  # (a, c) and (b, c), one cluster
    assert s.rejected_pairs >= 2  # (a, d), (b, d)
    assert s.candidate_pairs == s.verified_pairs + s.rejected_pairs
    assert sorted(r["id"] for r in res.kept) == ["a", "d", "e"]
    assert all(p["jaccard"] == pytest.approx(291 / 301, abs=1e-3) for p in s.sample_pairs)


def test_estimate_and_none_modes_still_work():
    from llmft.demo.samples import generate_dedupe_corpus

    docs, truth = generate_dedupe_corpus(2000, seed=4)
    truth_pairs = {tuple(p) for p in truth["pairs"]}
    kept = {}
    for mode in ("estimate", "exact"):
        res = dedupe_records(docs, "text", "id", DedupeParams(threshold=0.5, verify=mode))
        groups = {}
        for c in res.clusters:
            groups.setdefault(c["cluster"], []).append(c["id"])
        pred = {tuple(sorted((a, b))) for g in groups.values() for i, a in enumerate(g) for b in g[i + 1:]}
        tp = len(pred & truth_pairs)
        assert tp / len(pred) > 0.97 and tp / len(truth_pairs) > 0.9, mode
        assert res.stats.verify == mode
        kept[mode] = len(res.kept)
    loose = dedupe_records(docs, "text", "id", DedupeParams(threshold=0.5, verify="none"))  # same bands as estimate
    assert loose.stats.rejected_pairs == 0 and len(loose.kept) <= kept["estimate"]


def test_spec_verify_modes_and_legacy_booleans():
    assert DedupeSpec().verify == "exact"
    assert DedupeSpec(verify=True).verify == "exact" and DedupeSpec(verify=False).verify == "none"
    assert DedupeParams.from_spec(DedupeSpec(verify="estimate")).verify == "estimate"
    with pytest.raises(ValueError):
        DedupeSpec(verify="sometimes")
    with pytest.raises(ValueError):
        DedupeParams(verify="sometimes")
