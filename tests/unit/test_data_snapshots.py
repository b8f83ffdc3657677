"""Snapshots: content-addressed, immutable, verified on read, tenant-scoped; erasure makes a new version."""

import json
import os

import pytest

from llmft.config import DatasetSpec
from llmft.data import erasure, snapshots
from llmft.errors import IntegrityError, NotFoundError


@pytest.fixture
def tenants(store):
    store.create_tenant("acme", "admin")
    store.create_tenant("globex", "admin")
    return store


def _write(path, rows, extra=b""):
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + extra)


ROWS = [{"id": f"t{i}", "customer_id": f"c{i % 3}", "prompt": f"question {i}", "response": f"answer {i}"}
        for i in range(9)]


def test_register_same_bytes_same_id_changed_bytes_new_version(tenants, tmp_path):
    src = tmp_path / "t.jsonl"
    _write(src, ROWS, b"{broken\n")
    spec = DatasetSpec(name="tickets", tenant="acme", source=str(src), classification="confidential")
    rec, summary = snapshots.register(spec, tenants, "tester")
    assert summary["rows"] == 9 and summary["bad_rows"] == {"malformed_json": 1} and rec.version == 1
    again, summary2 = snapshots.register(spec, tenants, "tester")
    assert again.id == rec.id and summary2["created"] is False
    _write(src, ROWS[:5])
    new, _ = snapshots.register(spec, tenants, "tester")
    assert new.id != rec.id and new.version == 2
    old = snapshots.open_snapshot(tenants, "acme", "tickets:1")  # old version untouched and still verifies
    assert old.meta["classification"] == "confidential" and old.meta["owner"] == "acme" and old.meta["row_count"] == 9
    assert len(old.manifest.files) == 1


def test_modified_file_is_refused_naming_it_and_other_tenant_is_not_found(tenants, tmp_path):
    src = tmp_path / "t.jsonl"
    _write(src, ROWS)
    rec, _ = snapshots.register(DatasetSpec(name="tickets", tenant="acme", source=str(src)), tenants, "tester")
    with pytest.raises(NotFoundError):
        snapshots.open_snapshot(tenants, "globex", rec.id)
    with pytest.raises(NotFoundError):
        snapshots.open_snapshot(tenants, "acme", "nope")
    stored = snapshots.open_snapshot(tenants, "acme", "tickets").path / "t.jsonl"
    os.chmod(stored, 0o644)
    stored.write_bytes(stored.read_bytes().replace(b"answer 3", b"answer X"))
    with pytest.raises(IntegrityError, match="t.jsonl"):
        snapshots.open_snapshot(tenants, "acme", "tickets")


def test_erasure_new_version_without_subject_supersedes_old(tenants, tmp_path):
    src = tmp_path / "t.jsonl"
    _write(src, ROWS, b'{"id": "bad", "customer_id": "c1", "prompt": \n')
    rec, _ = snapshots.register(DatasetSpec(name="tickets", tenant="acme", source=str(src),
                                            subject_field="customer_id"), tenants, "tester")
    result = erasure.erase(tenants, "acme", "tickets", "c1", actor="dpo")
    assert result["removed"] == 4  # three rows with customer c1 and the malformed line naming it
    new = snapshots.open_snapshot(tenants, "acme", "tickets")
    assert new.record.version == 2 and new.record.kind == "erasure" and new.record.parents == [rec.id]
    text = (new.path / "t.jsonl").read_text()
    assert '"c1"' not in text and text.count("\n") == 6
    old = tenants.get_snapshot("acme", rec.id)
    assert old.superseded_by == new.record.id
    assert '"c1"' not in json.dumps(new.record.meta)  # only the subject's sha256 is stored
    assert erasure.erase(tenants, "acme", "tickets", "nobody", actor="dpo")["snapshot"] is None
    actions = [e["action"] for e in tenants.audit.records("acme")]
    assert "data.erase" in actions and "snapshot.supersede" in actions
