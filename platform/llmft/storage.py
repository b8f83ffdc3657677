"""Where the platform's files live: a local directory, or an S3 bucket with a local, hash-checked cache.

One place turns the operator's LLMFT_STORAGE (llmft.settings) into a pyarrow filesystem and a
path. Writers stage a tree locally under `settings.storage` and `publish` it: on S3 the tree is
uploaded to the same key under the bucket's prefix and its `s3://` URI is what gets recorded.
Readers `fetch` a recorded URI: on S3 the objects are copied into the local cache (the bucket's
layout) and the caller re-hashes them against the platform's manifest before use, so a tampered
object is refused with an error naming it. Only URIs under the operator's storage are accepted:
no caller-sent value ever names a bucket or an endpoint.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from llmft.errors import IntegrityError, NotFoundError, PermissionDeniedError

_OVERRIDE: dict[str, Any] = {}  # scheme -> filesystem handed to a process that has no operator env (Ray workers)


def is_remote(uri: str | Path) -> bool:
    return "://" in str(uri) and not str(uri).startswith("file://")


def _settings(settings: Any = None) -> Any:
    from llmft.settings import Settings

    return settings or Settings.from_env()


def s3_filesystem() -> Any:
    """pyarrow's S3FileSystem on the operator's endpoint (LLMFT_S3_ENDPOINT, AWS when unset) and credentials."""
    import pyarrow.fs as pafs

    from llmft.credentials import storage_credentials

    kwargs: dict[str, Any] = {"region": os.environ.get("LLMFT_S3_REGION") or "us-east-1", **storage_credentials()}
    endpoint = os.environ.get("LLMFT_S3_ENDPOINT", "").strip()
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
    return pafs.S3FileSystem(**kwargs)


def use_filesystem(fs: Any) -> None:
    """Use `fs` for s3:// URIs in this process (a Ray worker gets the driver's, as Ray Train's storage does)."""
    _OVERRIDE["s3"] = fs


def filesystem(uri: str | Path) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) for a local path, a file:// URI or an s3:// URI."""
    import pyarrow.fs as pafs

    text = str(uri)
    if not is_remote(text):
        return pafs.LocalFileSystem(), str(Path(text.removeprefix("file://")).resolve())
    scheme, _, rest = text.partition("://")
    if scheme == "s3":
        return _OVERRIDE.get("s3") or s3_filesystem(), rest.rstrip("/")
    return pafs.FileSystem.from_uri(text)


def storage_filesystem(settings: Any = None) -> tuple[Any, str]:
    """The platform's storage root as (filesystem, path): what Ray Train's RunConfig takes."""
    return filesystem(_settings(settings).storage_uri)


def _relative(uri: str, settings: Any) -> str:
    """The key of `uri` under the platform's storage; anything outside it (another bucket, `..`) is refused."""
    root = settings.storage_uri.rstrip("/")
    if not (uri == root or uri.startswith(root + "/")):
        raise PermissionDeniedError(f"{uri}: not under the platform's storage")
    rel = uri[len(root):].strip("/")
    if rel and any(p in ("", ".", "..") for p in rel.split("/")):
        raise PermissionDeniedError(f"{uri}: empty, '.' and '..' parts are not allowed in a storage key")
    return rel


def uri_of(local: Path, settings: Any = None) -> str:
    """The storage URI of a path under the local root (itself when storage is local)."""
    s = _settings(settings)
    if not s.remote_storage:
        return str(local)
    rel = Path(local).resolve().relative_to(s.storage).as_posix()
    return f"{s.storage_uri.rstrip('/')}/{rel}" if rel != "." else s.storage_uri


def cache_path(uri: str, settings: Any = None) -> Path:
    """Where `uri`'s objects are (or will be) copied locally: the bucket's layout under the cache."""
    s = _settings(settings)
    if not is_remote(uri):
        return Path(str(uri).removeprefix("file://"))
    return s.storage / _relative(uri, s)


def publish(local: Path, settings: Any = None) -> str:
    """Upload the tree (or file) at `local` (under the local root) to object storage; returns its URI.

    Local storage: nothing to do, the path is the URI.
    """
    import pyarrow.fs as pafs

    s = _settings(settings)
    if not s.remote_storage:
        return str(local)
    uri = uri_of(local, s)
    fs, path = filesystem(uri)
    pafs.copy_files(str(Path(local).resolve()), path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
    return uri


def download(uri: str, dest: Path) -> Path:
    """Copy the object (or the objects under `uri`) to `dest`, replacing it (NotFoundError when there are none)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise NotFoundError(f"{uri}: no such object in storage")
    tmp = dest.parent / f".fetch-{dest.name}-{uuid.uuid4().hex[:8]}"
    is_dir = fs.get_file_info(path).type == pafs.FileType.Directory
    (tmp if is_dir else tmp.parent).mkdir(parents=True, exist_ok=True)
    try:
        pafs.copy_files(path, str(tmp), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        _make_writable(dest)
        if dest.is_dir():
            shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _make_writable(root: Path) -> None:
    if root.is_dir():
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def fetch(uri: str, settings: Any = None, refresh: bool = False) -> Path:
    """A local directory with `uri`'s files: itself when local, else the cache (copied in when absent or `refresh`).

    The caller re-hashes what it gets against the platform's manifest (`verified`) before use.
    """
    if not is_remote(uri):
        return Path(str(uri).removeprefix("file://"))
    local = cache_path(uri, settings)
    if refresh or not local.exists() or (local.is_dir() and not any(local.iterdir())):
        download(uri, local)
    return local


def verified(uri: str, check: Any, settings: Any = None, refresh: bool = False) -> tuple[Path, Any]:
    """(local dir, check(local dir)) for `uri`; an IntegrityError names the object in storage, not the cache."""
    local = fetch(uri, settings, refresh=refresh)
    try:
        return local, check(local)
    except IntegrityError as exc:
        if not is_remote(uri):
            raise
        raise IntegrityError(str(exc).replace(str(local), uri.rstrip("/"))) from None


def list_keys(uri: str) -> list[str]:
    """Every object under `uri`, relative to it (for checks and tests)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sorted(i.path[len(path):].lstrip("/") for i in infos if i.type == pafs.FileType.File)
