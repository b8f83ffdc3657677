"""Replay mixing: a share of a general-instruction set goes into the train split, against forgetting.

`fraction` is the share of the final train split drawn from the replay set, so
n_replay = fraction / (1 - fraction) * n_train. Rows are picked by a hash of
their id (same input, same picks; ties by source file and line) and recorded in
the manifest. The curation pipeline reads, cleans, ranks and picks them on the
workers (`llmft.data.curation`); `choose` is the same rule on a list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmft.data import readers
from llmft.errors import NotFoundError

SALT = "llmft-replay"


@dataclass(frozen=True)
class ReplaySource:
    """Where replay rows come from: files to read (never read here), their format and provenance."""

    files: tuple[str, ...]
    fmt: str
    root: str
    prov: readers.Provenance
    text_field: str
    where: dict  # {"source": ..., "snapshot": id or None}


def locate(source: str, store: Any, tenant: str) -> ReplaySource:
    """The tenant's snapshot ref, else a local JSONL/Parquet file (refused when neither)."""
    from llmft.data import snapshots

    try:
        snap = snapshots.open_snapshot(store, tenant, source)
    except NotFoundError:
        path = Path(source).expanduser()
        if not path.exists():
            raise NotFoundError(f"replay.source {source!r}: neither a snapshot of tenant {tenant!r} nor a file")
        fmt = "parquet" if path.suffix == ".parquet" else "jsonl"
        prov = readers.Provenance(source_uri=str(path.resolve()), license_class="general", purpose="replay")
        paths = readers.list_files(path, fmt)
        return ReplaySource(tuple(str(p) for p in paths), fmt, str(path if path.is_dir() else path.parent), prov,
                            "text", {"source": str(path.resolve()), "snapshot": None})
    return ReplaySource(tuple(str(p) for p in snapshots.data_files(snap)), snap.meta.get("format", "jsonl"),
                        str(snap.path), snapshots.provenance(snap), snap.meta.get("text_field", "text"),
                        {"source": source, "snapshot": snap.record.id})


def count_for(n_train: int, fraction: float) -> int:
    if fraction <= 0 or n_train <= 0:
        return 0
    return int(round(fraction / (1.0 - fraction) * n_train))


def rank(row_id: str, salt: str = SALT) -> str:
    """A row's place in the replay draw (smallest first)."""
    return hashlib.sha256(f"{salt}\x00{row_id}".encode()).hexdigest()


def choose(rows: list[dict], n: int, salt: str = SALT) -> list[dict]:
    ranked = sorted(rows, key=lambda r: (rank(r["id"], salt), r.get("source_file") or "", r.get("source_line") or 0))
    return ranked[:n]
