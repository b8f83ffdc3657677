"""`ray job submit -- python jobs/sweep.py --spec jobs/specs/sweep-lora.yaml [a.b=c ...]`: one sweep.

Validates every sampled trial before any starts, runs them on Ray Tune (each a Ray Train
run, ASHA on val_loss), and registers the best trial's adapter as `candidate`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="SweepSpec YAML file")
    parser.add_argument("--actor", default=os.environ.get("LLMFT_ACTOR", "ray-job"))
    parser.add_argument("overrides", nargs="*", help="KEY.PATH=VALUE")
    args = parser.parse_args(argv)

    from llmft.config import SweepSpec, load_spec
    from llmft.errors import LlmftError
    from llmft.store import Store
    from llmft.tune.sweep import ray_session, run_sweep

    try:
        spec = load_spec(args.spec, args.overrides, expect=SweepSpec)
        with ray_session():  # under `ray job submit` this attaches to the job's cluster (RAY_ADDRESS)
            result = run_sweep(spec, Store(), args.actor, ray_job_id=os.environ.get("RAY_JOB_ID"))
    except LlmftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"status": "failed", "error": str(exc)}))
        return 1
    print(json.dumps(result, default=str))
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
