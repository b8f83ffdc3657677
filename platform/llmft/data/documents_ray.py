"""Documents on Ray Data: binary reads of the snapshot's files, then one parse + chunk step per file.

The bytes travel in Ray's object store and are parsed in workers (`read_binary_files` with
`include_paths`, then `map_batches` one file at a time, so a worker holds one document);
refused entries (symlinks, oversized files) join as rows naming their reason, so the curation
report counts them beside the files that failed to parse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmft.data import documents, readers

COLUMNS = ("record", *readers.PROVENANCE, "error")


def _table(flat: list[dict]):
    import pyarrow as pa

    schema = pa.schema([(c, pa.int64() if c == "source_line" else pa.string()) for c in COLUMNS])
    return pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in flat], schema=schema)


def _parse_fn(batch, root: str, prov: readers.Provenance, limits: documents.Limits, chunk_tokens: int,
              overlap_tokens: int, tokenizer_ref: str | None):
    from llmft.data.formatting import cached_tokenizer

    tok = cached_tokenizer(tokenizer_ref)
    flat: list[dict] = []
    for data, path in zip(batch.column("bytes").to_pylist(), batch.column("path").to_pylist()):
        rel = Path(os.path.relpath(path, root)).as_posix()
        flat.extend(r.as_flat() for r in documents.read_document(rel, data, prov, chunk_tokens=chunk_tokens,
                                                                 overlap_tokens=overlap_tokens, tokenizer=tok,
                                                                 limits=limits))
    return _table(flat)


def read_dataset(root: Path, prov: readers.Provenance, *, limits: documents.Limits, chunk_tokens: int,
                 overlap_tokens: int, tokenizer_ref: str | None, refused_before: list[dict] = ()) -> Any:
    """A Ray Dataset of flat rows (the readers' schema) for every document under `root`, bad ones included.

    `refused_before`: entries refused when the snapshot was registered (its meta `refused`: the
    symlinks that were never copied), counted again here so the curation report shows them.
    """
    import ray

    root = Path(os.path.realpath(root))
    listing = documents.list_documents(root, limits)
    refused = _table([readers.RawRow(None, r["file"], 0, prov, r["reason"]).as_flat()
                      for r in [*refused_before, *listing.refused]])
    if not listing.files:
        return ray.data.from_arrow(refused)
    ds = ray.data.read_binary_files([str(p) for p in listing.files], include_paths=True).map_batches(
        _parse_fn, batch_size=1, batch_format="pyarrow",
        fn_kwargs={"root": str(root), "prov": prov, "limits": limits, "chunk_tokens": chunk_tokens,
                   "overlap_tokens": overlap_tokens, "tokenizer_ref": tokenizer_ref})
    return ds.union(ray.data.from_arrow(refused)) if refused.num_rows else ds
