"""Immutable dataset snapshots: files + sha256 manifest on storage, a metadata row in the store.

Layout: `<datasets_dir>/<tenant>/<dataset>/<snapshot_id>/` holding the data files,
`manifest.json` (sha256 + size of every file, and meta: classification, owner,
row count, format, provenance defaults, bad rows by reason). The snapshot id is
the manifest digest of the data files, so the same bytes give the same id and
changed bytes a new version; nothing is ever rewritten in place. Opening a
snapshot re-hashes it and refuses a modified file, naming it. With object storage
(llmft.storage) the committed tree is uploaded and its s3:// URI recorded; opening it
copies it into the local cache first and re-hashes that copy.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmft import storage
from llmft.data import readers
from llmft.errors import IntegrityError, NotFoundError, SpecError
from llmft.manifest import MANIFEST_NAME, Manifest, build_manifest, read_manifest, verify_tree

REPORT_FILES = ("report.json", "report.html")
DATA_EXCLUDE = (MANIFEST_NAME, *REPORT_FILES)


@dataclass
class OpenSnapshot:
    record: Any  # llmft.store SnapshotRecord
    path: Path
    manifest: Manifest

    @property
    def meta(self) -> dict:
        return self.manifest.meta


def datasets_root() -> Path:
    from llmft.settings import Settings

    return Settings.from_env().ensure_dirs().datasets_dir


def _stage(tenant: str, dataset: str) -> Path:
    staging = datasets_root() / tenant / dataset / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    return staging


def discard(staging: Path) -> None:
    """Remove a staging directory, and its dataset directory if that leaves it empty (no trace on disk)."""
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # only succeeds when empty


def stored_twin(tenant_dir: Path, data_id: str) -> Path | None:
    """The tenant's stored snapshot directory holding exactly these bytes, under any dataset name."""
    return next((p for p in sorted(tenant_dir.glob(f"*/{data_id}")) if p.is_dir()), None)


def commit(staging: Path, tenant: str, dataset: str, meta: dict) -> tuple[str, Path, Manifest]:
    """Content-address a staged directory: id = digest of its data files; move into place once.

    The same bytes already stored for the tenant (under this name or another) are kept as they
    are and returned: the staged copy is discarded, so no second, unrecorded copy is left behind
    under the new name (the store's row for the id, keyed by (id, tenant), names the original).
    """
    data_id = build_manifest(staging, exclude=DATA_EXCLUDE).digest
    final = staging.parent / data_id
    manifest = build_manifest(staging, meta={**meta, "snapshot_id": data_id, "dataset": dataset, "tenant": tenant})
    twin = final if final.exists() else stored_twin(staging.parent.parent, data_id)
    if twin is not None:
        discard(staging)  # same bytes already stored: keep the original untouched
        verify_tree(twin)
        return data_id, twin, read_manifest(twin)
    (staging / MANIFEST_NAME).write_text(manifest.to_json())
    staging.rename(final)
    for f in final.rglob("*"):
        if f.is_file():
            f.chmod(0o444)
    return data_id, final, manifest


def source_files(root: Path, fmt: str) -> list[Path]:
    """The files a reader takes under `root`; documents never follow a link (llmft.data.documents)."""
    if fmt == "documents":
        from llmft.data import documents

        return documents.list_documents(root).files
    return readers.list_files(root, fmt)


def count_rows(root: Path, fmt: str, text_field: str) -> tuple[int, Counter]:
    if fmt == "documents":  # files, not rows: parsing waits for curation, on the workers
        return len(source_files(root, fmt)), Counter()
    good, bad = 0, Counter()
    for row in readers.read_source(root, fmt, text_field=text_field):
        if row.error:
            bad[row.error] += 1
        else:
            good += 1
    return good, bad


def register(spec: Any, store: Any, actor: str) -> tuple[Any, dict]:
    """Record `spec.source` (a DatasetSpec) as a raw snapshot; returns (record, summary)."""
    from llmft.settings import Settings

    store.get_tenant(spec.tenant)  # refuse an unknown tenant before copying anything
    source = Path(spec.source).expanduser()
    fmt = spec.format.value if hasattr(spec.format, "value") else str(spec.format)
    # every file, at any depth, must resolve inside the source or the tenant's storage (no link out)
    refused: list[dict] = []  # documents: symlinks and the like, never copied, counted with their reason
    if fmt == "documents":
        from llmft.data import documents

        listing = documents.list_documents(source)
        files, refused = listing.files, listing.refused
    else:
        files = readers.list_files(source, fmt, allowed_roots=Settings.from_env().tenant_roots(spec.tenant))
    if not files:
        raise SpecError(f"source: no {fmt} files under {source}")
    staging = _stage(spec.tenant, spec.name)
    try:
        for f in files:
            rel = f.relative_to(source) if source.is_dir() else Path(f.name)
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, staging / rel)
        rows, bad = count_rows(staging, fmt, spec.text_field)
        bad.update(r["reason"] for r in refused)
        classification = spec.classification.value if hasattr(spec.classification, "value") else spec.classification
        meta = {"kind": "raw", "classification": classification, "owner": spec.tenant, "row_count": rows,
                "bad_rows": sum(bad.values()), "bad_by_reason": dict(bad), "format": fmt,
                "license_class": spec.license_class, "purpose": spec.purpose, "text_field": spec.text_field,
                "source": str(source.resolve()), "description": spec.description,
                **({"refused": refused} if refused else {})}
        snap_id, path, manifest = commit(staging, spec.tenant, spec.name, meta)
    except BaseException:
        discard(staging)
        raise
    uri = storage.publish(path)
    record = store.add_snapshot(tenant=spec.tenant, dataset=spec.name, snapshot_id=snap_id, uri=uri,
                                classification=classification, row_count=rows, kind="raw", actor=actor,
                                meta={k: v for k, v in manifest.meta.items() if k != "description"})
    summary = {"id": record.id, "version": record.version, "created": getattr(record, "created", True),
               "rows": rows, "bad_rows": dict(bad), "files": len(manifest.files), "uri": uri}
    if record.dataset != spec.name:
        summary["note"] = (f"these bytes are already registered as {record.dataset}:{record.version}; "
                           f"nothing was copied or recorded under {spec.name!r}")
    return record, summary


def open_snapshot(store: Any, tenant: str, ref: str, verify: bool = True) -> OpenSnapshot:
    """Resolve a tenant's snapshot ref and (by default) re-hash every file against its manifest."""
    record = store.get_snapshot(tenant, ref)
    try:
        path = storage.fetch(record.uri)
    except NotFoundError:
        path = storage.cache_path(record.uri)
    if not path.is_dir():
        raise NotFoundError(f"snapshot {ref!r}: files missing at {record.uri}")

    def check(root: Path) -> Manifest:
        manifest = verify_tree(root) if verify else read_manifest(root)
        if verify and build_manifest(root, exclude=DATA_EXCLUDE).digest != record.id:
            raise IntegrityError(f"snapshot {ref!r}: content digest no longer matches its id {record.id[:12]}...")
        return manifest

    _, manifest = storage.verified(record.uri, check)
    return OpenSnapshot(record, path, manifest)


def data_files(snap: OpenSnapshot) -> list[Path]:
    fmt = snap.meta.get("format", "jsonl")
    return [p for p in source_files(snap.path, fmt) if p.name not in REPORT_FILES]


def provenance(snap: OpenSnapshot) -> readers.Provenance:
    return readers.Provenance(source_uri=f"snapshot://{snap.record.tenant}/{snap.record.dataset}/{snap.record.id}",
                              license_class=snap.meta.get("license_class", "proprietary"),
                              purpose=snap.meta.get("purpose", "fine-tuning"))
