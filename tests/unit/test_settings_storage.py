"""LLMFT_STORAGE: a local or mounted directory; an object-store URI is refused with a clear error."""

from __future__ import annotations

import pytest

from llmft.errors import LlmftError
from llmft.settings import Settings


@pytest.mark.parametrize("uri", ["s3://bucket/llmft", "gs://bucket/x", "abfs://c@a.dfs.core.windows.net/x"])
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
