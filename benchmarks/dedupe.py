"""Dedupe throughput and quality: the llmft Ray Data pipeline vs a single-process datasketch baseline.

    python benchmarks/dedupe.py [--quick] [--docs N] [--threshold 0.5] [--ngram 5]

Both run on the same generated corpus (planted near duplicates with a few words
changed, plus exact copies) with the same shingles (word n-grams of the same
normalised text), num_perm, seed and LSH threshold (so the same bands x rows),
and the same candidate verification (estimated Jaccard >= threshold); both are
scored by precision / recall / F1 of the duplicate pairs implied by their
clusters against the planted truth. The baseline (datasketch `MinHash` +
`MinHashLSH`, one process) runs in this driver, the pipeline in this driver's
Ray workers: one process tree, one after the other. The last line is JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def pairs_of(labels: dict[str, str]) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for key, root in labels.items():
        groups.setdefault(root, []).append(key)
    return {tuple(sorted(p)) for g in groups.values() for p in itertools.combinations(sorted(g), 2)}


def score(pred: set, truth: set) -> dict:
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(truth) if truth else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def baseline(docs: list[dict], threshold: float, ngram: int, num_perm: int, seed: int) -> tuple[dict, float]:
    """datasketch MinHash (sha1 per shingle) + MinHashLSH, candidates verified, union-find clusters."""
    from datasketch import MinHash, MinHashLSH

    from llmft.data.minhash import normalise

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = {}
    for d in docs:
        words = normalise(d["text"]).split()
        k = min(ngram, len(words))
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch([" ".join(words[i:i + k]).encode("utf-8") for i in range(len(words) - k + 1)])
        lsh.insert(d["id"], m)
        sketches[d["id"]] = m
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for key, m in sketches.items():
        for other in lsh.query(m):
            if other > key and m.jaccard(sketches[other]) >= threshold:
                ra, rb = find(key), find(other)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    labels = {k: find(k) for k in list(parent)}
    for root in set(labels.values()):
        labels.setdefault(root, root)
    return labels, time.perf_counter() - t0


def pipeline(path: Path, threshold: float, ngram: int, num_perm: int, seed: int) -> tuple[dict, float, dict]:
    import ray

    from llmft.data import dedupe_ray
    from llmft.data.dedupe import DedupeParams, display_id

    params = DedupeParams(ngram=ngram, num_perm=num_perm, seed=seed, threshold=threshold)
    t0 = time.perf_counter()
    blocks = dedupe_ray.default_blocks()
    ds = ray.data.read_parquet(str(path)).repartition(blocks)
    kept, labels, stats = dedupe_ray.dedupe_dataset(ds, "text", "id", params, num_blocks=blocks)
    n_kept = kept.count()
    elapsed = time.perf_counter() - t0
    labels = {display_id(k): display_id(v) for k, v in labels.items()}
    return labels, elapsed, {**stats.as_dict(), "kept": n_kept}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30k docs, scaling at 10k/30k (a minute or two)")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n = args.docs or (30_000 if args.quick else 200_000)
    scale_sizes = sorted({max(1000, n // 3), n}) if args.quick else [50_000, 100_000, 200_000]

    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from llmft.data.minhash import optimal_bands
    from llmft.data.samples import generate_dedupe_corpus

    workdir = Path(tempfile.mkdtemp(prefix="llmft-dedupe-bench-"))
    corpora = {}
    for size in sorted(set(scale_sizes + [n])):
        docs, truth = generate_dedupe_corpus(size, seed=0)
        path = workdir / f"corpus-{size}.parquet"
        pq.write_table(pa.Table.from_pylist(docs), path)
        corpora[size] = (docs, truth, path)
    bands, rows = optimal_bands(args.threshold, args.num_perm)
    print(f"corpus: {n} docs, planted pairs {len(corpora[n][1]['pairs'])}; threshold {args.threshold} -> "
          f"{bands} bands x {rows} rows, {args.ngram}-word shingles, num_perm {args.num_perm}", flush=True)

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    init_s = time.perf_counter() - t0

    docs, truth, path = corpora[n]
    true_pairs = {tuple(p) for p in truth["pairs"]}
    labels, llmft_s, stats = pipeline(path, args.threshold, args.ngram, args.num_perm, args.seed)
    llmft_q = score(pairs_of(labels), true_pairs)
    print(f"llmft pipeline: {llmft_s:.1f}s = {n / llmft_s:,.0f} docs/s, {llmft_q}, kept {stats['kept']}", flush=True)
    base_labels, base_s = baseline(docs, args.threshold, args.ngram, args.num_perm, args.seed)
    base_q = score(pairs_of(base_labels), true_pairs)
    print(f"datasketch baseline: {base_s:.1f}s = {n / base_s:,.0f} docs/s, {base_q}", flush=True)

    scaling = {}
    for size in scale_sizes:
        if size == n:
            scaling[str(size)] = round(llmft_s, 2)
            continue
        _l, s, _st = pipeline(corpora[size][2], args.threshold, args.ngram, args.num_perm, args.seed)
        scaling[str(size)] = round(s, 2)
        print(f"llmft pipeline at {size}: {s:.1f}s = {size / s:,.0f} docs/s", flush=True)
    ray.shutdown()

    result = {
        "benchmark": "dedupe", "n_docs": n, "quick": args.quick,
        "llmft_docs_per_s": round(n / llmft_s, 1), "baseline_docs_per_s": round(n / base_s, 1),
        "ratio": round(base_s / llmft_s, 3), "llmft_f1": llmft_q["f1"], "baseline_f1": base_q["f1"],
        "llmft_precision": llmft_q["precision"], "llmft_recall": llmft_q["recall"],
        "baseline_precision": base_q["precision"], "baseline_recall": base_q["recall"],
        "llmft_seconds": round(llmft_s, 2), "baseline_seconds": round(base_s, 2), "ray_init_seconds": round(init_s, 2),
        "llmft_seconds_by_size": scaling, "planted_pairs": len(true_pairs),
        "params": {"threshold": args.threshold, "ngram": args.ngram, "num_perm": args.num_perm,
                   "bands": bands, "rows": rows, "verify": True},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "ray": ray.__version__},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
