"""LLMFT_STORAGE: a local or mounted directory, or s3:// (llmft.storage); another object-store URI is refused clearly."""

from __future__ import annotations

import pytest

from llmft.errors import LlmftError
from llmft.settings import Settings


@pytest.mark.parametrize("uri", ["gs://bucket/x", "abfs://c@a.dfs.core.windows.net/x"])
def test_object_store_uri_is_refused_not_made_a_local_directory(uri, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMFT_STORAGE", uri)
    with pytest.raises(LlmftError, match=r"LLMFT_STORAGE=.*storage is not supported yet"):
        Settings.from_env()
    assert list(tmp_path.iterdir()) == []  # no `s3:` directory appeared


def test_local_paths_and_file_uris_are_accepted(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMFT_STORAGE", str(tmp_path / "store"))
    assert Settings.from_env().storage == (tmp_path / "store").resolve()
    monkeypatch.setenv("LLMFT_STORAGE", (tmp_path / "other").as_uri())
    assert Settings.from_env().storage == (tmp_path / "other").resolve()


def test_s3_uri_is_the_storage_and_the_local_root_is_a_cache(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMFT_STORAGE", "s3://bucket/llmft/")
    s = Settings.from_env()
    assert s.storage_uri == "s3://bucket/llmft" and s.remote_storage
    assert s.storage == (tmp_path / "llmft-home" / "storage-cache").resolve()
    monkeypatch.setenv("LLMFT_STORAGE_CACHE", str(tmp_path / "cache"))
    assert Settings.from_env().storage == (tmp_path / "cache").resolve()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("s3")]  # no `s3:` directory appeared


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket/a/../b", "s3://bucket/a//b"])
def test_malformed_s3_uri_is_refused(uri, monkeypatch):
    monkeypatch.setenv("LLMFT_STORAGE", uri)
    with pytest.raises(LlmftError, match=r"expected s3://BUCKET\[/PREFIX\]"):
        Settings.from_env()


def test_local_storage_uri_is_its_path(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMFT_STORAGE", str(tmp_path / "store"))
    s = Settings.from_env()
    assert s.storage_uri == str((tmp_path / "store").resolve()) and not s.remote_storage
