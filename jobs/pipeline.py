"""The platform's main job: the whole lifecycle on the tiny model (what `make demo` runs).

    python jobs/pipeline.py [--seed N] [--tickets N] [--only STAGE ...]
    ray job submit --working-dir . -- python jobs/pipeline.py
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="Seed for data, training and sampling.")
    parser.add_argument("--tickets", type=int, default=600, help="Support tickets to generate.")
    parser.add_argument("--only", nargs="*", help="Run only these stages (the platform stage always runs).")
    args = parser.parse_args(argv)

    from llmft.errors import LlmftError
    from llmft.pipeline import run_demo

    try:
        ctx = run_demo(seed=args.seed, n_tickets=args.tickets, only=args.only)
    except LlmftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if ctx.results["audit"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
