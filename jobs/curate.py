"""`ray job submit -- python jobs/curate.py --spec jobs/specs/curate-tickets.yaml [a.b=c ...]`: one curation job.

Refuses a missing or foreign source snapshot before any work starts, then runs the
Ray Data pipeline (progress bars on) and records the job and the curated snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="CurationSpec YAML file")
    parser.add_argument("--actor", default=os.environ.get("LLMFT_ACTOR", "ray-job"))
    parser.add_argument("--num-blocks", type=int, default=None, help="shuffle partitions (default 4 x CPUs)")
    parser.add_argument("overrides", nargs="*", help="KEY.PATH=VALUE")
    args = parser.parse_args(argv)

    from llmft.config import CurationSpec, load_spec
    from llmft.data import curation
    from llmft.errors import LlmftError
    from llmft.store import Store

    try:
        spec = load_spec(args.spec, args.overrides, expect=CurationSpec)
        store = Store()
        curation.check(spec, store)
        import ray

        ray.init(include_dashboard=False) if not ray.is_initialized() else None
        result = curation.run_job(spec, store, args.actor, num_blocks=args.num_blocks,
                                  job_id=os.environ.get("LLMFT_JOB_ID"))
    except LlmftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: result[k] for k in ("job_id", "snapshot", "rows", "splits", "report")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
