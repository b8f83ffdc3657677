"""The registry's content-addressed, read-only file store: one directory per manifest digest.

Files are copied in (never linked), checked against the manifest taken from the source,
and made read-only (files 0444, directories 0555) before they become visible under their
digest, so a version's bytes cannot be replaced in place by ordinary writes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from llmft.errors import IntegrityError
from llmft.manifest import MANIFEST_NAME, Manifest, build_manifest, sha256_file

READ_ONLY_FILE, READ_ONLY_DIR = 0o444, 0o555


def _set_modes(root: Path, file_mode: int, dir_mode: int) -> None:
    for path in sorted(root.rglob("*"), reverse=True):  # children before their directory
        path.chmod(file_mode if path.is_file() else dir_mode)
    root.chmod(dir_mode)


def make_read_only(root: Path) -> None:
    _set_modes(root, READ_ONLY_FILE, READ_ONLY_DIR)


def make_writable(root: Path) -> None:
    _set_modes(root, 0o644, 0o755)


def remove_tree(root: Path) -> None:
    if root.exists():
        make_writable(root)
        shutil.rmtree(root)


def changed_files(root: Path, manifest: Manifest) -> list[tuple[str, str]]:
    """(file, problem) for every file that is missing, modified or not in the manifest."""
    root = Path(root)
    problems: list[tuple[str, str]] = []
    for rel, entry in sorted(manifest.files.items()):
        path = root / rel
        if not path.is_file():
            problems.append((rel, "missing"))
        elif path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            problems.append((rel, "sha256 mismatch"))
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if rel not in manifest.files and rel != MANIFEST_NAME:
                problems.append((rel, "not in the manifest"))
    recorded = root / MANIFEST_NAME
    if recorded.is_file():
        try:
            if Manifest.from_json(recorded.read_text()).files != manifest.files:
                problems.append((MANIFEST_NAME, "differs from the registered manifest"))
        except (ValueError, KeyError):
            problems.append((MANIFEST_NAME, "unreadable"))
    return problems


def put(source: Path, manifest: Manifest, objects: Path, meta: dict) -> Path:
    """Copy `source` into `objects/<digest>` (read-only); an existing, intact copy is reused."""
    target = objects / manifest.digest
    if target.is_dir():
        bad = changed_files(target, manifest)
        if not bad:
            return target
        raise IntegrityError(f"{target / bad[0][0]}: stored copy {bad[0][1]}; refusing to reuse it")
    objects.mkdir(parents=True, exist_ok=True)
    tmp = objects / f".tmp-{manifest.digest[:16]}-{os.getpid()}"
    remove_tree(tmp)
    try:
        for rel in manifest.files:
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, dest)
        bad = changed_files(tmp, manifest)
        if bad:  # the source changed while it was copied
            raise IntegrityError(f"{source / bad[0][0]}: {bad[0][1]} while copying; nothing registered")
        (tmp / MANIFEST_NAME).write_text(Manifest(manifest.files, meta).to_json())
        make_read_only(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process stored the same digest first: keep theirs if it is intact
            if not target.is_dir() or changed_files(target, manifest):
                raise
            remove_tree(tmp)
    except BaseException:
        remove_tree(tmp)
        raise
    return target


def relocate(current: Path, manifest: Manifest, destination: Path) -> Path:
    """Copy a stored tree elsewhere (e.g. cold storage), verified; the caller removes the old copy."""
    if destination.is_dir() and not changed_files(destination, manifest):
        return destination
    remove_tree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.parent / f".tmp-{destination.name}-{os.getpid()}"
    remove_tree(tmp)
    try:
        shutil.copytree(current, tmp, copy_function=shutil.copyfile)
        bad = changed_files(tmp, manifest)
        if bad:
            raise IntegrityError(f"{current / bad[0][0]}: {bad[0][1]}; not moved")
        make_read_only(tmp)
        os.rename(tmp, destination)
    except BaseException:
        remove_tree(tmp)
        raise
    return destination


def manifest_of(source: Path) -> Manifest:
    return build_manifest(Path(source))
