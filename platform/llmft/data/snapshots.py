"""Immutable dataset snapshots: files + sha256 manifest on storage, a metadata row in the store.

Layout: `<datasets_dir>/<tenant>/<dataset>/<snapshot_id>/` holding the data files,
`manifest.json` (sha256 + size of every file, and meta: classification, owner,
row count, format, provenance defaults, bad rows by reason). The snapshot id is
the manifest digest of the data files, so the same bytes give the same id and
changed bytes a new version; nothing is ever rewritten in place. Opening a
snapshot re-hashes it and refuses a modified file, naming it. With object storage
(llmft.storage) the committed tree is uploaded and its s3:// URI recorded; opening it
copies it into the local cache first and re-hashes that copy.

Files written by Ray workers (curated part files, erased files) go through a `Staging`:
a local directory, or with object storage a staging prefix in the bucket that each worker
uploads its files to, hashing them as it writes (on several nodes a worker's local disk is
not the driver's). The driver then builds the manifest from the workers' (file, sha256,
size) rows, the same manifest and so the same snapshot id as for a local directory, and
moves the files to the snapshot's prefix server-side: no file passes through the driver.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmft import storage
from llmft.data import readers
from llmft.errors import IntegrityError, NotFoundError, SpecError
from llmft.manifest import MANIFEST_NAME, Manifest, build_manifest, read_manifest, sha256_file, verify_tree

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


@dataclass(frozen=True)
class Staging:
    """Where the workers write a new snapshot's files: a local directory, or a staging prefix in the bucket.

    Picklable: Ray tasks get it as an argument, with the driver's pyarrow filesystem for object
    storage (a worker node may not have the storage settings in its environment).
    """

    tenant: str
    dataset: str
    local: Path | None = None  # local storage: the staging directory
    uri: str = ""  # object storage: s3://.../datasets/<tenant>/<dataset>/.staging-<hex>
    fs: Any = None  # object storage: the driver's filesystem

    @property
    def remote(self) -> bool:
        return self.local is None

    @property
    def path(self) -> str:
        """The staging prefix on `fs` (object storage)."""
        return self.uri.split("://", 1)[1].rstrip("/")

    def write_file(self, rel: str, write: Callable[[Path], Any]) -> tuple[Any, dict | None]:
        """Make the snapshot's file `rel` with `write(path)`; returns (its result, {sha256, size} or None).

        Local storage: `path` is the file in the staging directory (hashed at commit, as before).
        Object storage: a temporary file on this node, hashed, uploaded under the staging prefix and
        removed. None when `write` made no file (e.g. an erased file left empty of rows).
        """
        if not self.remote:
            dst = self.local / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            return write(dst), None
        import pyarrow.fs as pafs

        with tempfile.TemporaryDirectory(prefix="llmft-part-") as tmp:
            src = Path(tmp) / Path(rel).name
            result = write(src)
            if not src.exists():
                return result, None
            entry = {"sha256": sha256_file(src), "size": src.stat().st_size}
            pafs.copy_files(str(src), f"{self.path}/{rel}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
        return result, entry


def stage(tenant: str, dataset: str) -> Staging:
    """A new staging area for the workers: in the bucket when storage is remote, else a local directory."""
    from llmft.settings import Settings

    settings = Settings.from_env()
    if not settings.remote_storage:
        return Staging(tenant, dataset, local=_stage(tenant, dataset))
    uri = f"{settings.storage_uri.rstrip('/')}/datasets/{tenant}/{dataset}/.staging-{uuid.uuid4().hex}"
    return Staging(tenant, dataset, uri=uri, fs=storage.filesystem(uri)[0])


def discard_staged(staging: Staging) -> None:
    """Remove the staging area (the local directory, or every object under the staging prefix)."""
    if not staging.remote:
        discard(staging.local)
        return
    with contextlib.suppress(OSError):
        staging.fs.delete_dir(staging.path)


def _remote_twin(fs: Any, tenant_path: str, data_id: str) -> str | None:
    """The tenant's committed snapshot prefix (any dataset) in the bucket holding these bytes."""
    import pyarrow.fs as pafs

    datasets = fs.get_file_info(pafs.FileSelector(tenant_path, allow_not_found=True))
    for info in sorted((i for i in datasets if i.type == pafs.FileType.Directory), key=lambda i: i.path):
        if fs.get_file_info(f"{info.path}/{data_id}/{MANIFEST_NAME}").type == pafs.FileType.File:
            return f"{info.path}/{data_id}"
    return None


def commit_staged(staging: Staging, meta: dict, written: dict[str, dict | None],
                  extras: dict[str, bytes] | None = None) -> tuple[str, str, Manifest]:
    """Content-address what the workers wrote; returns (snapshot id, storage URI, manifest).

    `written`: each data file's {sha256, size} as the worker that wrote it reported (None locally),
    `extras`: small files made here (the curation report), not part of the id. Local storage: the
    files are written into the directory and `commit` + `storage.publish` run as before. Object
    storage: the manifest is built from the workers' rows (same format, so the same id as a local
    commit of the same bytes), the files are moved from the staging prefix to the snapshot's prefix
    (server-side copies) and the manifest is written last; the same bytes already stored for the
    tenant are kept as they are, as `commit` does.
    """
    extras = extras or {}
    if not staging.remote:
        for name, data in extras.items():
            (staging.local / name).write_bytes(data)
        data_id, path, manifest = commit(staging.local, staging.tenant, staging.dataset, meta)
        return data_id, storage.publish(path), manifest
    missing = sorted(rel for rel, entry in written.items() if entry is None)
    if missing:
        raise RuntimeError(f"staged write: no hash reported for {missing[0]}")
    files = {rel: {"sha256": e["sha256"], "size": int(e["size"])} for rel, e in written.items()}
    data_id = Manifest(files).digest
    files.update({n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in extras.items()})
    manifest = Manifest(files, {**meta, "snapshot_id": data_id, "dataset": staging.dataset,
                                "tenant": staging.tenant})
    fs, dataset_path = staging.fs, staging.path.rsplit("/", 1)[0]
    scheme = staging.uri.split("://", 1)[0]
    twin = _remote_twin(fs, dataset_path.rsplit("/", 1)[0], data_id)
    if twin is not None:  # same bytes already stored: keep the original untouched
        discard_staged(staging)
        with fs.open_input_stream(f"{twin}/{MANIFEST_NAME}") as fh:
            stored = Manifest.from_json(fh.read().decode())
        if Manifest({k: v for k, v in stored.files.items() if k not in DATA_EXCLUDE}).digest != data_id:
            raise IntegrityError(f"{scheme}://{twin}: stored manifest does not match its snapshot id")
        return data_id, f"{scheme}://{twin}", stored
    final = f"{dataset_path}/{data_id}"
    for rel in sorted(written):
        fs.move(f"{staging.path}/{rel}", f"{final}/{rel}")
    for name, data in [*sorted(extras.items()), (MANIFEST_NAME, manifest.to_json().encode())]:
        with fs.open_output_stream(f"{final}/{name}") as out:  # the manifest last: it marks the snapshot whole
            out.write(data)
    discard_staged(staging)
    return data_id, f"{scheme}://{final}", manifest


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
