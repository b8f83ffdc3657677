"""Replay mixing: a share of a general-instruction set goes into the train split, against forgetting.

`fraction` is the share of the final train split drawn from the replay set, so
n_replay = fraction / (1 - fraction) * n_train. Rows are picked by a hash of
their id (same input, same picks) and recorded in the manifest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from llmft.data import readers
from llmft.errors import NotFoundError


def resolve(source: str, store: Any, tenant: str) -> tuple[list[readers.RawRow], dict]:
    """Rows of a replay source: the tenant's snapshot ref, else a local JSONL/Parquet file."""
    from llmft.data import snapshots

    try:
        snap = snapshots.open_snapshot(store, tenant, source)
    except NotFoundError:
        path = Path(source).expanduser()
        if not path.exists():
            raise NotFoundError(f"replay.source {source!r}: neither a snapshot of tenant {tenant!r} nor a file")
        fmt = "parquet" if path.suffix == ".parquet" else "jsonl"
        prov = readers.Provenance(source_uri=str(path.resolve()), license_class="general", purpose="replay")
        return list(readers.read_source(path, fmt, prov=prov)), {"source": str(path.resolve()), "snapshot": None}
    prov = snapshots.provenance(snap)
    rows = [r for f in snapshots.data_files(snap)
            for r in readers.read_file(f, snap.meta.get("format", "jsonl"), root=snap.path, prov=prov)]
    return rows, {"source": source, "snapshot": snap.record.id}


def count_for(n_train: int, fraction: float) -> int:
    if fraction <= 0 or n_train <= 0:
        return 0
    return int(round(fraction / (1.0 - fraction) * n_train))


def choose(rows: list[dict], n: int, salt: str = "llmft-replay") -> list[dict]:
    ranked = sorted(rows, key=lambda r: hashlib.sha256(f"{salt}\x00{r['id']}".encode()).hexdigest())
    return ranked[:n]
