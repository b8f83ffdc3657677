"""A base model's identity: its name plus the sha256 digest of its files.

Its own module so that both loading a model and building the tiny one can name it without
importing each other.
"""

from __future__ import annotations

from pathlib import Path

from llmft.errors import NotFoundError
from llmft.manifest import MANIFEST_NAME, build_manifest, read_manifest


def model_identity(path: Path | str, name: str | None = None) -> dict:
    """Name plus the sha256 digest of the files as they are now (the manifest file itself excluded)."""
    path = Path(path)
    if not path.is_dir():
        raise NotFoundError(f"model directory {path} not found")
    manifest = build_manifest(path)
    return {"name": name or _recorded_name(path) or path.name, "sha256": manifest.digest, "files": len(manifest.files)}


def _recorded_name(path: Path) -> str | None:
    if not (path / MANIFEST_NAME).is_file():
        return None
    try:
        return read_manifest(path).meta.get("name")
    except (ValueError, KeyError):
        return None
