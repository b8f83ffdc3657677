"""`ray job submit -- python jobs/train.py --spec jobs/specs/train-lora.yaml [a.b=c ...]`: one training job.

Validates the spec, policy and privacy budget before any worker starts, then runs
Ray Train and records job state, events and checkpoints in the llmft store.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", help="TrainingSpec YAML file")
    parser.add_argument("--spec-b64", help="the resolved spec as base64 JSON (what `llmft train submit` sends)")
    parser.add_argument("--actor", default=os.environ.get("LLMFT_ACTOR", "ray-job"))
    parser.add_argument("overrides", nargs="*", help="KEY.PATH=VALUE")
    args = parser.parse_args(argv)

    from llmft.config import TrainingSpec, load_spec, spec_from_dict
    from llmft.errors import LlmftError
    from llmft.store import Store
    from llmft.train.job import submit

    try:
        if args.spec_b64:
            spec = spec_from_dict(TrainingSpec, json.loads(base64.b64decode(args.spec_b64)), args.overrides)
        elif args.spec:
            spec = load_spec(args.spec, args.overrides, expect=TrainingSpec)
        else:
            parser.error("give --spec or --spec-b64")
        import ray

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS", "auto"))
        result = submit(spec, Store(), args.actor, job_id=os.environ.get("LLMFT_JOB_ID"),
                        ray_job_id=os.environ.get("RAY_JOB_SUBMISSION_ID") or os.environ.get("RAY_JOB_ID"))
    except LlmftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"status": "failed", "error": str(exc)}))
        return 1
    print(json.dumps(result, default=str))
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
