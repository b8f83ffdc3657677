"""sha256 manifests of directory trees: the identity of snapshots, base models and model versions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from llmft.errors import IntegrityError

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """Relative path -> (sha256, size) for every file of a tree, plus free-form metadata.

    `digest` covers only the file list, so the same bytes always give the same id
    whatever the metadata or the directory they sit in.
    """

    files: dict[str, dict[str, int | str]]
    meta: dict = field(default_factory=dict)

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.files, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps({"digest": self.digest, "files": self.files, "meta": self.meta}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        return cls(files=data["files"], meta=data.get("meta", {}))


def build_manifest(root: Path, meta: dict | None = None, exclude: tuple[str, ...] = (MANIFEST_NAME,)) -> Manifest:
    """Hash every regular file under `root` (sorted, POSIX relative paths)."""
    root = Path(root)
    if root.is_file():
        return Manifest({root.name: {"sha256": sha256_file(root), "size": root.stat().st_size}}, meta or {})
    files: dict[str, dict[str, int | str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return Manifest(files, meta or {})


def write_manifest(root: Path, meta: dict | None = None) -> Manifest:
    manifest = build_manifest(root, meta)
    (Path(root) / MANIFEST_NAME).write_text(manifest.to_json())
    return manifest


def read_manifest(root: Path) -> Manifest:
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise IntegrityError(f"{root}: no {MANIFEST_NAME}")
    return Manifest.from_json(path.read_text())


def verify_tree(root: Path, manifest: Manifest | None = None, allow_extra: bool = False) -> Manifest:
    """Re-hash `root` against its manifest; raise IntegrityError naming the first bad file."""
    root = Path(root)
    manifest = manifest or read_manifest(root)
    for rel, entry in sorted(manifest.files.items()):
        path = root / rel
        if not path.is_file():
            raise IntegrityError(f"{path}: missing (recorded sha256 {str(entry['sha256'])[:12]}...)")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise IntegrityError(f"{path}: sha256 mismatch (file modified since it was recorded)")
    if not allow_extra:
        actual = build_manifest(root)
        extra = sorted(set(actual.files) - set(manifest.files))
        if extra:
            raise IntegrityError(f"{root / extra[0]}: file not in manifest")
    return manifest
