"""datatrove's MinHash dedupe on a JSONL corpus: the peer run of `benchmarks/dedupe.py --peer datatrove`.

    /tmp/dt-venv/bin/python benchmarks/peers/datatrove_dedupe.py DOCS.jsonl WORKDIR [--tasks 2] [--buckets 14 --rows 8]

Runs in datatrove's own virtualenv (llmft's needs nothing): the four stages of its
MinHash pipeline (signatures, buckets, clusters, filter) with the local executor,
then prints one JSON line: the removed ids, the seconds and the configuration.
datatrove links any two documents that share a bucket (no Jaccard check) and uses
its own text normalisation and word tokenizer, so its shingles differ from llmft's.
It lives in a subfolder so `make bench` (every `benchmarks/*.py --quick`) does not run it alone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("docs", help="JSONL with id and text")
    ap.add_argument("workdir")
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--buckets", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8, help="hashes per bucket")
    args = ap.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    docs, work = Path(args.docs), Path(args.workdir)
    config = MinhashConfig(n_grams=args.ngram, num_buckets=args.buckets, hashes_per_bucket=args.rows)

    def reader():
        return JsonlReader(str(docs.parent), glob_pattern=docs.name, text_key="text", id_key="id")

    t0 = time.perf_counter()
    stages = [
        ([reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)], args.tasks),
        ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                              config=config)], config.num_buckets),
        ([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                              config=config)], 1),
        ([reader(), MinhashDedupFilter(input_folder=str(work / "remove"),
                                       exclusion_writer=JsonlWriter(str(work / "removed"))),
          JsonlWriter(str(work / "kept"))], args.tasks),
    ]
    for i, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(tasks, args.tasks),
                              logging_dir=str(work / f"logs-{i}")).run()
    seconds = time.perf_counter() - t0
    removed = []
    for path in sorted((work / "removed").glob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            removed.extend(json.loads(line)["id"] for line in fh)
    print(json.dumps({"removed": removed, "seconds": seconds, "buckets": args.buckets, "rows": args.rows,
                      "ngram": args.ngram, "tasks": args.tasks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
