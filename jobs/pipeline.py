"""Thin wrapper: the demo lives in the package (`python -m llmft.demo`, see llmft/demo/__main__.py).

    python jobs/pipeline.py [--seed N] [--tickets N] [--only STAGE ...]
"""

import sys

from llmft.demo.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
