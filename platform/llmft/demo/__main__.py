"""The whole lifecycle on the tiny model, what `make demo` runs.

    python -m llmft.demo [--seed N] [--tickets N] [--only STAGE ...]
    ray job submit -- python -m llmft.demo
"""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    """The demo's command line (the README docs test parses documented commands with it)."""
    p = argparse.ArgumentParser(prog="python -m llmft.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="Seed for data, training and sampling.")
    p.add_argument("--tickets", type=int, default=600, help="Support tickets to generate.")
    p.add_argument("--only", nargs="*", help="Run only these stages (the platform stage always runs).")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    from llmft.demo.pipeline import run_demo
    from llmft.errors import LlmftError

    try:
        ctx = run_demo(seed=args.seed, n_tickets=args.tickets, only=args.only)
    except LlmftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if ctx.results["audit"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
