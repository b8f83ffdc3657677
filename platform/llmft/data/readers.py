"""Readers for JSONL, Parquet, CSV and directories of text files: rows with provenance, bad rows counted.

Every row comes out as a `RawRow`: the parsed record (or None) plus where it came
from (source URI, file, 1-based row/line number, license class, purpose) and,
for bad input, the reason. Nothing raises on bad data and nothing is dropped
silently: malformed JSON, non-UTF-8 bytes, empty files, oversized rows, missing
fields and wrong types all come back as rows with `error` set.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

MAX_ROW_BYTES = 8 << 20  # a row above this is reported as `row_too_large`, not parsed
PROVENANCE = ("source_uri", "source_file", "source_line", "license_class", "purpose")
FORMATS = ("jsonl", "parquet", "csv", "text")
_SUFFIXES = {"jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet",), "csv": (".csv",),
             "text": (".txt", ".md", ".text")}


@dataclass(frozen=True)
class Provenance:
    source_uri: str
    license_class: str = "proprietary"
    purpose: str = "fine-tuning"


@dataclass
class RawRow:
    record: dict | None
    source_file: str
    source_line: int
    prov: Provenance
    error: str | None = None
    detail: dict = field(default_factory=dict)

    def as_flat(self) -> dict:
        """Schema-stable form for Ray Data: the record travels as JSON text."""
        return {"record": None if self.record is None else json.dumps(self.record, ensure_ascii=False, default=str),
                "source_uri": self.prov.source_uri, "source_file": self.source_file,
                "source_line": self.source_line, "license_class": self.prov.license_class,
                "purpose": self.prov.purpose, "error": self.error}


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def list_files(root: Path, fmt: str, allowed_roots: Iterable[Path] = ()) -> list[Path]:
    """The data files of a source (a file, or a directory walked recursively), sorted.

    Every file and directory is resolved (symlinks followed, `os.path.realpath`) and must lie
    inside the source itself or one of `allowed_roots` (a tenant's storage): a link out, at any
    depth, is refused naming its path relative to the source, never a server path.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        from llmft.errors import NotFoundError

        raise NotFoundError(f"{root}: no such file or directory")
    roots = [os.path.realpath(root), *(os.path.realpath(r) for r in allowed_roots)]
    out: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        rel_dir = Path(dirpath).relative_to(root)
        if not _inside(real_dir, roots):
            _refuse_link(rel_dir)
        if real_dir in seen:  # a link loop, or a second link to a directory already walked
            dirnames[:] = []
            continue
        seen.add(real_dir)
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if not _inside(os.path.realpath(path), roots):  # any link out is refused, data file or not
                _refuse_link(rel_dir / name)
            if path.is_file() and name.lower().endswith(_SUFFIXES[fmt]) and name != "manifest.json":
                out.append(path)
    return sorted(out)


def _refuse_link(rel: Path) -> None:
    from llmft.errors import PermissionDeniedError

    raise PermissionDeniedError(f"source: {rel.as_posix()!r} links outside the tenant's storage; "
                                f"copy the data in instead of linking to it")


def _jsonl(path: Path, rel: str, prov: Provenance, max_row_bytes: int) -> Iterator[RawRow]:
    any_line = False
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            if len(raw) > max_row_bytes:
                any_line = True
                yield RawRow(None, rel, no, prov, "row_too_large", {"bytes": len(raw)})
                continue
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            any_line = True
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRow(None, rel, no, prov, "invalid_utf8", {"offset": exc.start})
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(None, rel, no, prov, "malformed_json", {"col": exc.colno})
                continue
            if not isinstance(value, dict):
                yield RawRow(None, rel, no, prov, "not_an_object", {"type": type(value).__name__})
                continue
            yield RawRow(value, rel, no, prov)
    if not any_line:
        yield RawRow(None, rel, 0, prov, "empty_file")


def _csv(path: Path, rel: str, prov: Provenance, max_row_bytes: int) -> Iterator[RawRow]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # decode line by line so one bad line does not lose the file
        text = None
        bad_at = exc.start
    if text is None:
        lines = data.splitlines(keepends=True)
        good: list[str] = []
        for no, line in enumerate(lines, start=1):
            try:
                good.append(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield RawRow(None, rel, no, prov, "invalid_utf8", {"offset": exc.start, "file_offset": bad_at})
                good.append("\n")  # keep line numbers aligned
        text = "".join(good)
    if not text.strip():
        yield RawRow(None, rel, 0, prov, "empty_file")
        return
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        no = reader.line_num
        if not any(v for v in row.values() if v):
            continue
        if None in row:  # more cells than header columns
            yield RawRow(None, rel, no, prov, "malformed_csv", {"extra_cells": len(row[None])})
            continue
        if sum(len(v or "") for v in row.values()) > max_row_bytes:
            yield RawRow(None, rel, no, prov, "row_too_large")
            continue
        yield RawRow(dict(row), rel, no, prov)


def _parquet(path: Path, rel: str, prov: Provenance, max_row_bytes: int) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable parquet is one counted bad file
        yield RawRow(None, rel, 0, prov, "unreadable_parquet", {"error": type(exc).__name__})
        return
    if pf.metadata.num_rows == 0:
        yield RawRow(None, rel, 0, prov, "empty_file")
        return
    no = 0
    for batch in pf.iter_batches(batch_size=4096):
        for rec in batch.to_pylist():
            no += 1
            yield RawRow(rec, rel, no, prov)


def _text(path: Path, rel: str, prov: Provenance, max_row_bytes: int, text_field: str) -> Iterator[RawRow]:
    data = path.read_bytes()
    if not data.strip():
        yield RawRow(None, rel, 0, prov, "empty_file")
    elif len(data) > max_row_bytes:
        yield RawRow(None, rel, 1, prov, "row_too_large", {"bytes": len(data)})
    else:
        try:
            yield RawRow({"id": rel, text_field: data.decode("utf-8")}, rel, 1, prov)
        except UnicodeDecodeError as exc:
            yield RawRow(None, rel, 1, prov, "invalid_utf8", {"offset": exc.start})


def read_file(path: Path, fmt: str, *, root: Path | None = None, prov: Provenance | None = None,
              text_field: str = "text", max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    """Rows of one file; `root` makes `source_file` relative (e.g. to the snapshot directory)."""
    path = Path(path)
    rel = path.relative_to(root).as_posix() if root and Path(root).is_dir() else path.name
    prov = prov or Provenance(source_uri=str(path))
    if fmt == "jsonl":
        yield from _jsonl(path, rel, prov, max_row_bytes)
    elif fmt == "csv":
        yield from _csv(path, rel, prov, max_row_bytes)
    elif fmt == "parquet":
        yield from _parquet(path, rel, prov, max_row_bytes)
    elif fmt == "text":
        yield from _text(path, rel, prov, max_row_bytes, text_field)
    else:
        from llmft.errors import SpecError

        raise SpecError(f"format: unknown reader {fmt!r} (one of {', '.join(FORMATS)})")


def read_source(root: Path, fmt: str, **kwargs) -> Iterator[RawRow]:
    root = Path(root)
    for path in list_files(root, fmt):
        yield from read_file(path, fmt, root=root if root.is_dir() else None, **kwargs)


def check_fields(record: dict, required: dict[str, type | tuple]) -> str | None:
    """`missing_field:<name>` or `wrong_type:<name>` for the first problem, else None."""
    for name, kind in required.items():
        if name not in record or record[name] is None and kind is not type(None):
            if name not in record:
                return f"missing_field:{name}"
            return f"wrong_type:{name}"
        if not isinstance(record[name], kind) or isinstance(record[name], bool) and kind is not bool:
            return f"wrong_type:{name}"
    return None
