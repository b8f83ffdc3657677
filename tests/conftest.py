"""Shared fixtures. Every test gets its own LLMFT_HOME, so no test touches the repo's .llmft/."""

from __future__ import annotations

import pytest

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def llmft_home(tmp_path, monkeypatch):
    """Isolated platform state (SQLite DB, MLflow store, storage) per test."""
    home = tmp_path / "llmft-home"
    monkeypatch.setenv("LLMFT_HOME", str(home))
    for var in ("LLMFT_DB_URL", "LLMFT_MLFLOW_URI", "LLMFT_STORAGE", "LLMFT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def store(llmft_home):
    from llmft.store import Store

    s = Store()
    yield s
    s.close()
