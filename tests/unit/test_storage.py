"""llmft.storage without a server: keys under the tenant's prefix, the cache layout, the boundary, the filesystem."""

from __future__ import annotations

import pytest

from llmft import storage
from llmft.errors import PermissionDeniedError
from llmft.settings import Settings


@pytest.fixture
def s3_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMFT_STORAGE", "s3://bucket/llmft")
    monkeypatch.setenv("LLMFT_STORAGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LLMFT_S3_ENDPOINT", "http://127.0.0.1:9")
    return Settings.from_env()


def test_local_storage_is_unchanged(tmp_path):
    s = Settings.from_env().ensure_dirs()
    d = s.storage / "datasets" / "acme"
    d.mkdir(parents=True)
    assert storage.publish(d) == str(d) and storage.fetch(str(d)) == d and storage.uri_of(d) == str(d)
    fs, path = storage.filesystem(str(d))
    assert fs.type_name == "local" and path == str(d.resolve())


def test_a_local_path_maps_to_its_key_and_back(s3_settings):
    local = s3_settings.storage / "registry" / "acme" / "objects" / "abc"
    uri = storage.uri_of(local)
    assert uri == "s3://bucket/llmft/registry/acme/objects/abc"
    assert storage.cache_path(uri) == local


@pytest.mark.parametrize("uri", ["s3://other-bucket/llmft/registry/acme", "s3://bucket/llmft-other/x",
                                 "s3://bucket/llmft/registry/../../secrets", "s3://bucket/llmft/./x"])
def test_only_keys_under_the_platforms_storage_are_fetched(s3_settings, uri):
    with pytest.raises(PermissionDeniedError, match="storage"):
        storage.fetch(uri)


def test_the_s3_filesystem_uses_the_operators_endpoint_and_keys(s3_settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    fs, path = storage.filesystem("s3://bucket/llmft/train/acme")
    assert fs.type_name == "s3" and path == "bucket/llmft/train/acme"
    assert fs.region == "us-east-1"
    from llmft.credentials import storage_env

    assert storage_env()["LLMFT_S3_ENDPOINT"] == "http://127.0.0.1:9" and storage_env()["AWS_ACCESS_KEY_ID"] == "k"


def test_a_caller_cannot_name_a_bucket_in_a_spec(s3_settings):
    from llmft.control.paths import check_spec_locations
    from llmft.errors import SpecError

    data = {"base_model": "tiny", "checkpoint": {"storage_path": "s3://other-bucket/steal"}}
    with pytest.raises(SpecError, match=r"checkpoint.storage_path: only local paths.*'s3'"):
        check_spec_locations("training", "acme", data)


def test_training_checkpoints_default_under_the_tenants_prefix(s3_settings):
    s = Settings.from_env()
    assert f"{s.storage_uri}/train/acme".startswith("s3://bucket/llmft/train/acme")


def test_api_errors_do_not_name_the_bucket(s3_settings):
    from llmft.control.redaction import scrub

    msg = "model version support:1 at s3://bucket/llmft/registry/acme/objects/abc: adapter_model.safetensors"
    assert scrub(msg) == "model version support:1 at <storage>/registry/acme/objects/abc: adapter_model.safetensors"
