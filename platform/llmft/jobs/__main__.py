"""`python -m llmft.jobs <kind> --spec FILE [a.b=c ...]`: run one job (what `ray job submit` and RayJob run).

    python -m llmft.jobs training --spec jobs/specs/train-lora.yaml lora.r=16 [--dry-run]
    python -m llmft.jobs curation --job-id cujob-...     # a job the platform created (spec from the store)
    ray job submit -- python -m llmft.jobs evaluation --spec jobs/specs/eval-support.yaml model=support:2

Exit codes: 0 succeeded, 1 failed or refused (one `error:` line; --debug adds the traceback),
3 an evaluation whose gates blocked the model (with --strict).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    from llmft.jobs.kinds import KINDS

    p = argparse.ArgumentParser(prog="python -m llmft.jobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=sorted(KINDS), help="the kind of job")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", type=Path, help="the job's spec (YAML)")
    source.add_argument("--job-id", help="run a job the platform already created; its spec comes from the store")
    p.add_argument("overrides", nargs="*", help="KEY.PATH=VALUE overrides of the spec")
    p.add_argument("--dry-run", action="store_true", help="validate the spec and run the preflight; change nothing")
    p.add_argument("--actor", default=os.environ.get("LLMFT_ACTOR", "ray-job"), help="recorded as the job's actor")
    p.add_argument("--num-blocks", type=int, help="curation: shuffle partitions (default 4 x CPUs)")
    p.add_argument("--out", type=Path, help="evaluation: directory for report.json / report.html")
    p.add_argument("--strict", action="store_true", help="evaluation: exit 3 when a gate blocks the model")
    p.add_argument("--debug", action="store_true", help="print the traceback of a failure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    from llmft.config import load_spec, spec_from_dict
    from llmft.errors import LlmftError
    from llmft.jobs import failure_cause, kind, run_job
    from llmft.jobs.cluster import ray_session
    from llmft.store import Store

    k = kind(args.kind)
    try:
        store = Store()
        if args.job_id:
            job = store.job_by_id(args.job_id)
            spec = spec_from_dict(k.spec_type, job.spec, args.overrides)
        else:
            spec = load_spec(args.spec, args.overrides, expect=k.spec_type)
        if args.dry_run:
            print(json.dumps({"dry_run": True, "kind": k.name, "plan": k.preflight(spec, store)}, default=str))
            return 0
        options = {"num_blocks": args.num_blocks, "out_dir": args.out,
                   "spec_dir": args.spec.parent if args.spec else None}
        ray_job_id = os.environ.get("RAY_JOB_SUBMISSION_ID") or os.environ.get("RAY_JOB_ID")
        if k.needs_ray:
            with ray_session(dashboard=k.name == "sweep", worker_logs=k.name == "training"):
                result = run_job(k.name, spec, store, args.actor, job_id=args.job_id, options=options,
                                 ray_job_id=ray_job_id)
        else:
            result = run_job(k.name, spec, store, args.actor, job_id=args.job_id, options=options)
    except Exception as exc:  # noqa: BLE001 - one line for the user; the job records the traceback
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc if isinstance(exc, LlmftError) else failure_cause(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    if result["status"] != "succeeded":
        return 1
    return 3 if args.strict and k.name == "evaluation" and not result["result"].get("passed") else 0


if __name__ == "__main__":
    sys.exit(main())
