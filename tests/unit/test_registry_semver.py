"""Semantic versions derived from lineage changes (pure, no MLflow)."""

import pytest

from llmft.errors import SpecError
from llmft.registry.semver import SemVer, classify_change, next_semver


def lineage(base="a" * 64, snapshot="s1", curation="c1", method="lora", spec="t1"):
    return {"base_model": {"sha256": base}, "dataset": {"snapshot_id": snapshot, "digest": snapshot},
            "curation": {"spec_digest": curation}, "training": {"method": method, "spec_digest": spec}}


def test_change_classes():
    old = lineage()
    assert classify_change(None, old) == "major"
    assert classify_change(old, lineage(base="b" * 64)) == "major"
    assert classify_change(old, lineage(snapshot="s2")) == "minor"
    assert classify_change(old, lineage(curation="c2")) == "minor"
    assert classify_change(old, lineage(method="qlora")) == "minor"
    assert classify_change(old, lineage(spec="t2")) == "patch"
    assert classify_change(old, lineage()) == "patch"


def test_next_versions_follow_the_newest_release():
    assert next_semver([], lineage()) == "1.0.0"
    history = [("1.0.0", lineage())]
    assert next_semver(history, lineage(spec="t2")) == "1.0.1"
    assert next_semver(history, lineage(snapshot="s2")) == "1.1.0"
    assert next_semver(history, lineage(base="b" * 64)) == "2.0.0"
    history += [("1.1.0", lineage(snapshot="s2"))]
    assert next_semver(history, lineage(snapshot="s2", spec="t9")) == "1.1.1"


def test_release_candidates_do_not_move_the_release_line():
    history = [("1.2.0", lineage())]
    assert next_semver(history, lineage(snapshot="s3"), "rc") == "1.3.0-rc.1"
    history += [("1.3.0-rc.1", lineage(snapshot="s3"))]
    assert next_semver(history, lineage(snapshot="s3"), "rc") == "1.3.0-rc.2"
    history += [("1.3.0-rc.2", lineage(snapshot="s3"))]
    assert next_semver(history, lineage(snapshot="s3")) == "1.3.0"
    assert next_semver([], lineage(), "rc") == "1.0.0-rc.1"


def test_parse_and_precedence():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-rc.1", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0", "1.0.1", "1.10.0"]
    parsed = [SemVer.parse(v) for v in ordered]
    assert [str(v) for v in sorted(reversed(parsed), key=SemVer.sort_key)] == ordered
    for bad in ("1.0", "01.0.0", "1.0.0-", "v1.0.0", ""):
        with pytest.raises(SpecError, match="semantic version"):
            SemVer.parse(bad)
    with pytest.raises(SpecError, match="pre-release label"):
        next_semver([], lineage(), "1rc")
