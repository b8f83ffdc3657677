"""Evaluate a registered version against its base through HTTP; gates decide promotion.

    python jobs/evaluate.py --spec jobs/specs/eval-support.yaml [key.path=value ...] [--out DIR]
    ray job submit --working-dir . -- python jobs/evaluate.py --spec jobs/specs/eval-support.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, type=Path, help="EvalSpec YAML.")
    parser.add_argument("overrides", nargs="*", help="Overrides as KEY.PATH=VALUE.")
    parser.add_argument("--out", type=Path, help="Directory for report.json / report.html.")
    parser.add_argument("--strict", action="store_true", help="Exit 3 when a gate fails.")
    args = parser.parse_args(argv)

    from llmft.config import EvalSpec, load_spec
    from llmft.errors import LlmftError
    from llmft.evaluation.tracking import run_job

    try:
        spec = load_spec(args.spec, args.overrides, expect=EvalSpec)
        result = run_job(spec, spec_dir=args.spec.parent, actor=os.environ.get("LLMFT_ACTOR", "job:evaluate"),
                         out_dir=args.out)
    except LlmftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 3 if args.strict and not result["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
