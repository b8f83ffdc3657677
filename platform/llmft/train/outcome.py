"""A run's outcome file: rank 0's result, left next to the checkpoints of its run.

Ray Train V2's results carry only checkpointed metrics, so the driver (and a sweep's trial)
reads the whole outcome from here; it is cleared before a run starts.
"""

from __future__ import annotations

import json

from llmft.train import checkpointing as ck


def write_outcome(run_uri: str, outcome: dict) -> None:
    """Rank 0 leaves the outcome next to the checkpoints (V2 results only carry checkpointed metrics)."""
    fs, root = ck._fs(run_uri)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/outcome.json") as fh:
        fh.write(json.dumps(outcome, default=str).encode())


def clear_outcome(run_uri: str) -> None:
    fs, root = ck._fs(run_uri)
    try:
        fs.delete_file(f"{root}/outcome.json")
    except (FileNotFoundError, OSError):
        pass


def read_outcome(run_uri: str) -> dict | None:
    fs, root = ck._fs(run_uri)
    try:
        with fs.open_input_stream(f"{root}/outcome.json") as fh:
            return json.loads(fh.read().decode())
    except (FileNotFoundError, OSError):
        return None
