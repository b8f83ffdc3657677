"""What a training worker runs on: rank, world size, device, the rows of a split, checkpoints, collectives.

The Ray layer (trainer.py) implements `Runtime` over Ray Train; `LocalRuntime` runs the same
worker code as a plain single process (unit tests, benchmark baseline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from llmft.train import checkpointing as ck


class Runtime(Protocol):
    rank: int
    world_size: int
    device: Any

    def rows(self, split: str) -> list[dict]: ...
    def checkpoint_candidates(self) -> list[str]: ...
    def report(self, metrics: dict, checkpoint_dir: Path | None, name: str | None) -> None: ...
    def all_reduce_sum(self, values: list[float]) -> list[float]: ...
    def gather(self, obj: Any) -> list[Any]: ...


class LocalRuntime:
    """Single process, no Ray: rows from Parquet, checkpoints under `run_uri`."""

    rank = 0
    world_size = 1

    def __init__(self, snapshot_dir: str | Path, run_uri: str | Path) -> None:
        import torch

        self.device = torch.device("cpu")
        self.snapshot_dir = Path(snapshot_dir)
        self.run_uri = str(run_uri)
        self.reports: list[dict] = []

    def rows(self, split: str) -> list[dict]:
        return read_split(self.snapshot_dir, split)

    def checkpoint_candidates(self) -> list[str]:
        return [uri for _, uri in ck.list_checkpoints(self.run_uri)]

    def report(self, metrics: dict, checkpoint_dir: Path | None, name: str | None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None and name:
            ck.copy_tree(Path(checkpoint_dir), Path(self.run_uri) / name)

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        return list(values)

    def gather(self, obj: Any) -> list[Any]:
        return [obj]


def read_split(snapshot_dir: Path, split: str) -> list[dict]:
    """Rows of one split of a curated snapshot (its Parquet files; the manifest and report beside them skipped)."""
    import pyarrow.dataset as pads

    ds = pads.dataset([str(p) for p in sorted(Path(snapshot_dir).rglob("*.parquet"))], format="parquet")
    table = ds.to_table(columns=["id", "split", "prompt", "completion"], filter=pads.field("split") == split)
    return table.to_pylist()
