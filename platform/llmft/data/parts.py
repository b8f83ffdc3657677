"""Part files of a curated snapshot: which row goes to which file, written by the workers, read back in order.

A curated snapshot holds `<split>-<i>-of-<n>.parquet` files. The number of files of
a split comes from its row count (`rows_per_file`), a row's file from a hash of its
identity (id, source file and line, replay flag), and the rows of a file are sorted
by (replay, id, source file, source line). So the bytes of every file, and with them
the manifest digest that is the snapshot id, depend on the rows alone: not on the
partitioning, the block order or how many workers wrote them. Each file is written
by one Ray task from the rows grouped on it; only file names and counts (and, with
object storage, each file's sha256 and size, for the manifest) reach the driver. With
object storage the task uploads its file straight to the staging prefix in the bucket
(`llmft.data.snapshots.Staging`), so it does not matter which node it runs on.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

from llmft.data import formatting

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

    from llmft.data import snapshots

ROWS_PER_FILE = 100_000
PART_COLUMN = "_part"
SORT_KEYS = ("replay", "id", "source_file", "source_line")


def layout(counts: dict[str, int], rows_per_file: int = ROWS_PER_FILE) -> dict[str, int]:
    """Files per split: enough that a file holds about `rows_per_file` rows (none for an empty split)."""
    return {s: max(1, math.ceil(n / rows_per_file)) for s, n in counts.items() if n > 0}


def part_name(split: str, i: int, n: int) -> str:
    return f"{split}-{i:05d}-of-{n:05d}.parquet"


def _slot(row_id: str, source_file: str, line: int, replay: bool, n: int) -> int:
    key = f"{row_id}\x00{source_file}\x00{line}\x00{int(bool(replay))}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % n


def assign(batch: "pa.Table", files: dict[str, int]) -> "pa.Table":
    """Append the `_part` column (the file name each row goes to)."""
    import pyarrow as pa

    cols = [batch.column(c).to_pylist() for c in ("split", "id", "source_file", "source_line", "replay")]
    names = [part_name(s, _slot(i, f, ln, r, files[s]), files[s]) for s, i, f, ln, r in zip(*cols)]
    return batch.append_column(PART_COLUMN, pa.array(names, pa.string()))


def sorted_table(table: "pa.Table", schema: "pa.Schema") -> "pa.Table":
    """The rows of one file in their canonical order and layout (one chunk: the same rows give the same bytes)."""
    table = table.select(list(schema.names)).cast(schema)
    return table.sort_by([(k, "ascending") for k in SORT_KEYS]).combine_chunks()


def write_part(group: "pa.Table", staging: "snapshots.Staging | str", schema: "pa.Schema") -> "pa.Table":
    """Write one file's rows (a group of `_part`); returns one row: file name, row count and,
    when uploaded to object storage, its sha256 and size (else null: the driver hashes the directory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmft.data import snapshots

    if isinstance(staging, str):
        staging = snapshots.Staging("", "", local=Path(staging))
    name = group.column(PART_COLUMN)[0].as_py()
    if "/" in name or name.startswith("."):
        raise ValueError(f"part file name {name!r}: not a plain file name")
    table = sorted_table(group, schema)
    _, entry = staging.write_file(name, lambda path: pq.write_table(table, path, compression="zstd"))
    entry = entry or {}
    return pa.table({"file": [name], "rows": pa.array([table.num_rows], pa.int64()),
                     "sha256": pa.array([entry.get("sha256")], pa.string()),
                     "size": pa.array([entry.get("size")], pa.int64())})


def write_dataset(ds: "Dataset", staging: "snapshots.Staging | Path", counts: dict[str, int], schema: "pa.Schema",
                  rows_per_file: int = ROWS_PER_FILE, num_partitions: int = 16) -> list[dict]:
    """Write `ds` (rows of `schema`, `counts` rows per split) as part files from the workers.

    Returns [{file, rows, sha256, size}] sorted by file (sha256 and size None on local storage);
    the rows themselves never come to this process.
    """
    files = layout(counts, rows_per_file)
    if not files:
        return []
    from llmft.data import snapshots

    if not isinstance(staging, snapshots.Staging):
        staging = snapshots.Staging("", "", local=Path(staging))
    written = (ds.map_batches(assign, batch_format="pyarrow", fn_kwargs={"files": files})
               .groupby(PART_COLUMN, num_partitions=min(sum(files.values()), num_partitions))
               .map_groups(write_part, batch_format="pyarrow",
                           fn_kwargs={"staging": staging, "schema": schema})
               .take_all())  # one small row per file
    out = sorted(({"file": r["file"], "rows": int(r["rows"]), "sha256": r["sha256"] or None,
                   "size": int(r["size"]) if r["sha256"] else None} for r in written), key=lambda r: r["file"])
    expected = sum(counts.values())
    if sum(r["rows"] for r in out) != expected:
        raise RuntimeError(f"curated write: {sum(r['rows'] for r in out)} rows written, expected {expected}")
    return out


def files(directory: Path) -> list[Path]:
    """The Parquet data files of a snapshot directory, in their canonical (name) order."""
    return sorted(p for p in Path(directory).rglob("*.parquet") if p.is_file())


def read_table(directory: Path, columns: list[str] | None = None, split: str | None = None) -> "pa.Table":
    """Rows of a curated snapshot (optionally one split): files in name order, rows in file order.

    For tests, evaluation and small snapshots; training reads with Ray Data (`llmft.train.trainer`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = files(directory)
    filters = [("split", "=", split)] if split is not None else None
    tables = [pq.read_table(p, columns=columns, filters=filters) for p in paths]
    if not tables:
        empty = output_schema().empty_table()
        return empty.select(columns) if columns else empty
    return pa.concat_tables(tables)


def output_schema() -> "pa.Schema":
    """The contract's Parquet schema (see llmft.data.formatting)."""
    import pyarrow as pa

    types = {"source_line": pa.int64(), "replay": pa.bool_()}
    return pa.schema([(c, types.get(c, pa.string())) for c in formatting.COLUMNS])
