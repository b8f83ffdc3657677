"""Where the platform keeps its state, and the operator's boundary settings; embedded defaults, overridable by env.

Everything here is the operator's: it is read from the process environment (or files the
environment names), never from a request or a spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SERVE_ADDRESS = "127.0.0.1:8000"


def _words(raw: str | None) -> tuple[str, ...]:
    """A comma- or whitespace-separated env value as a tuple of non-empty items."""
    return tuple(w for w in (raw or "").replace(",", " ").split() if w)


OBJECT_STORE_SCHEMES = ("s3",)  # pyarrow's S3FileSystem: AWS S3 or any S3-compatible endpoint (LLMFT_S3_ENDPOINT)


def _storage(raw: str, home: Path) -> tuple[str, Path]:
    """LLMFT_STORAGE as (storage URI, local root): a local/mounted directory, or an s3:// bucket and prefix.

    For s3:// the local root is a cache (LLMFT_STORAGE_CACHE, default <home>/storage-cache) holding
    the bucket's layout: files that must be local to run are copied there and re-hashed before use.
    Another object-store scheme is refused, never made a directory: Path("gs://b/x") would silently
    become a directory named `gs:` under the working directory, and nothing would reach the bucket.
    """
    from llmft.errors import LlmftError

    scheme, sep, rest = raw.partition("://")
    if sep and scheme and scheme.isalnum() and scheme.lower() in OBJECT_STORE_SCHEMES:
        bucket, _, prefix = rest.strip("/").partition("/")
        if not bucket or (prefix and any(p in ("", ".", "..") for p in prefix.split("/"))):
            raise LlmftError(f"LLMFT_STORAGE={raw!r}: expected s3://BUCKET[/PREFIX] (no empty, '.' or '..' parts)")
        cache = os.environ.get("LLMFT_STORAGE_CACHE") or str(home / "storage-cache")
        return f"s3://{bucket}" + (f"/{prefix}" if prefix else ""), Path(cache).expanduser().resolve()
    if sep and scheme and scheme.isalnum() and scheme.lower() != "file":
        raise LlmftError(f"LLMFT_STORAGE={raw!r}: {scheme}:// storage is not supported yet; set it to s3://BUCKET/PREFIX "
                         "(any S3-compatible endpoint) or a local or mounted shared directory (e.g. /mnt/llmft)")
    if sep and scheme.lower() == "file":
        from urllib.parse import unquote, urlparse

        raw = unquote(urlparse(raw).path)
    local = Path(raw).expanduser().resolve()
    return str(local), local


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the metadata DB, MLflow store and artifact storage, plus the operator's boundary.

    Defaults are embedded (SQLite, a local MLflow store, local files) so a laptop
    or a CI box needs nothing else; production points the env vars at Postgres,
    a tracking server and an object store.

    Boundary settings (see llmft.plugins, llmft.outbound, llmft.credentials):
    `LLMFT_PLUGINS` extra plugins as `group.name=module:callable` items;
    `LLMFT_ALLOW_CALLABLE_SPECS=1` lets an operator's own spec (CLI, never the API) name `module:callable`;
    `LLMFT_OUTBOUND_ALLOW` host[:port] patterns evaluation may call besides loopback and the Serve app;
    `LLMFT_SERVE_ADDRESS` the platform's own Serve app (host:port);
    `LLMFT_SECRETS_FILE` a YAML/JSON mapping tenant -> {secret name: value};
    `LLMFT_API_SOURCE_ROOTS` extra data roots per tenant (os.pathsep-separated, `{tenant}` substituted).

    Object storage (llmft.storage): `LLMFT_STORAGE=s3://BUCKET/PREFIX` with `LLMFT_S3_ENDPOINT`
    (an S3-compatible server's URL; AWS when unset), `LLMFT_S3_REGION`, credentials from
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (llmft.credentials); `storage` is then the local cache.
    """

    home: Path
    db_url: str
    mlflow_uri: str
    storage: Path  # local root: the storage itself, or the local cache of an object store
    storage_uri: str = ""  # where the platform's files live: str(storage), or s3://bucket/prefix
    plugins: tuple[str, ...] = field(default=(), repr=False)
    allow_callable_specs: bool = False
    outbound_allow: tuple[str, ...] = ()
    serve_address: str = DEFAULT_SERVE_ADDRESS
    secrets_file: Path | None = field(default=None, repr=False)
    source_roots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.storage_uri:
            object.__setattr__(self, "storage_uri", str(self.storage))

    @classmethod
    def from_env(cls) -> "Settings":
        home = Path(os.environ.get("LLMFT_HOME", Path.cwd() / ".llmft")).resolve()
        db_url = os.environ.get("LLMFT_DB_URL") or f"sqlite:///{home / 'llmft.db'}"
        mlflow_uri = os.environ.get("LLMFT_MLFLOW_URI") or f"sqlite:///{home / 'mlflow.db'}"
        storage_uri, storage = _storage(os.environ.get("LLMFT_STORAGE") or str(home / "storage"), home)
        secrets_file = os.environ.get("LLMFT_SECRETS_FILE")
        return cls(home=home, db_url=db_url, mlflow_uri=mlflow_uri, storage=storage, storage_uri=storage_uri,
                   plugins=_words(os.environ.get("LLMFT_PLUGINS")),
                   allow_callable_specs=os.environ.get("LLMFT_ALLOW_CALLABLE_SPECS", "").strip().lower()
                   in ("1", "true", "yes"),
                   outbound_allow=_words(os.environ.get("LLMFT_OUTBOUND_ALLOW")),
                   serve_address=os.environ.get("LLMFT_SERVE_ADDRESS") or DEFAULT_SERVE_ADDRESS,
                   secrets_file=Path(secrets_file).expanduser() if secrets_file else None,
                   source_roots=tuple(filter(None, os.environ.get("LLMFT_API_SOURCE_ROOTS", "").split(os.pathsep))))

    @property
    def remote_storage(self) -> bool:
        """True when the platform's files live in an object store (storage is then only a cache)."""
        return "://" in self.storage_uri

    def ensure_dirs(self) -> "Settings":
        self.home.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        return self

    def tenant_roots(self, tenant: str) -> list[Path]:
        """Where `tenant`'s data may live (resolved): its inbox, then the operator's LLMFT_API_SOURCE_ROOTS."""
        roots = [self.storage / "inbox" / tenant, *(Path(r.replace("{tenant}", tenant)) for r in self.source_roots)]
        return [r.expanduser().resolve() for r in roots]

    @property
    def models_dir(self) -> Path:
        return self.storage / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.storage / "datasets"
