"""Where the platform keeps its state; embedded defaults under `.llmft/`, overridable by env."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the metadata DB, MLflow store and artifact storage.

    Defaults are embedded (SQLite, a local MLflow store, local files) so a laptop
    or a CI box needs nothing else; production points the env vars at Postgres,
    a tracking server and an object store.
    """

    home: Path
    db_url: str
    mlflow_uri: str
    storage: Path

    @classmethod
    def from_env(cls) -> "Settings":
        home = Path(os.environ.get("LLMFT_HOME", Path.cwd() / ".llmft")).resolve()
        db_url = os.environ.get("LLMFT_DB_URL") or f"sqlite:///{home / 'llmft.db'}"
        mlflow_uri = os.environ.get("LLMFT_MLFLOW_URI") or f"sqlite:///{home / 'mlflow.db'}"
        storage = Path(os.environ.get("LLMFT_STORAGE", home / "storage")).resolve()
        return cls(home=home, db_url=db_url, mlflow_uri=mlflow_uri, storage=storage)

    def ensure_dirs(self) -> "Settings":
        self.home.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def models_dir(self) -> Path:
        return self.storage / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.storage / "datasets"
