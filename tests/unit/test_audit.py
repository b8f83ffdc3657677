"""Audit log: append-only at the DB level; edits, deletions, insertions and reorders are named."""

import json
import sqlite3

import pytest

from llmft.store.audit_chain import verify_records


@pytest.fixture
def filled(store):
    store.create_tenant("acme", "alice")
    for i in range(6):
        store.audit.append("alice", "acme", "thing.do", f"thing/{i}", {"i": i})
    assert store.audit.verify().ok
    return store


def raw(store):
    """A raw connection with the append-only triggers dropped: what an attacker with file access has."""
    conn = sqlite3.connect(store.url.removeprefix("sqlite:///"))
    conn.execute("DROP TRIGGER audit_events_no_update")
    conn.execute("DROP TRIGGER audit_events_no_delete")
    return conn


def test_database_refuses_update_and_delete(filled):
    conn = sqlite3.connect(filled.url.removeprefix("sqlite:///"))
    for sql in ("UPDATE audit_events SET actor='mallory' WHERE seq=2", "DELETE FROM audit_events WHERE seq=2"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)


def test_edit_is_detected_at_the_edited_record(filled):
    conn = raw(filled)
    conn.execute("UPDATE audit_events SET actor='mallory' WHERE seq=4")
    conn.commit()
    v = filled.audit.verify()
    assert not v.ok and v.first_bad_seq == 4 and "edited" in v.reason


def test_payload_edit_is_detected(filled):
    conn = raw(filled)
    conn.execute("UPDATE audit_events SET payload=? WHERE seq=3", (json.dumps({"i": 99}),))
    conn.commit()
    v = filled.audit.verify()
    assert v.first_bad_seq == 3 and "payload" in v.reason


def test_deletion_is_detected(filled):
    conn = raw(filled)
    conn.execute("DELETE FROM audit_events WHERE seq=5")
    conn.commit()
    v = filled.audit.verify()
    assert v.first_bad_seq == 5 and "deleted" in v.reason


def test_insertion_is_detected(filled):
    forged = next(filled.audit.records())
    conn = raw(filled)
    rows = conn.execute("SELECT * FROM audit_events WHERE seq >= 3 ORDER BY seq DESC").fetchall()
    for row in rows:  # shift later records up to make room, as an inserter would have to
        conn.execute("UPDATE audit_events SET seq = seq + 1 WHERE seq = ?", (row[0],))
    conn.execute("INSERT INTO audit_events VALUES (3, ?, 'mallory', 'acme', 'key.create', 'key/x', ?, ?, ?, ?)",
                 (forged["ts"], json.dumps({}), forged["payload_digest"], forged["digest"], "f" * 64))
    conn.commit()
    v = filled.audit.verify()
    assert v.first_bad_seq == 3 and "does not link" in v.reason


def test_reorder_is_detected(filled):
    conn = raw(filled)
    cols = "ts, actor, tenant, action, object, payload, payload_digest, prev_digest, digest"
    r3 = conn.execute(f"SELECT {cols} FROM audit_events WHERE seq=3").fetchone()
    r4 = conn.execute(f"SELECT {cols} FROM audit_events WHERE seq=4").fetchone()
    setter = ", ".join(f"{c.strip()}=?" for c in cols.split(","))
    conn.execute(f"UPDATE audit_events SET {setter} WHERE seq=3", r4)
    conn.execute(f"UPDATE audit_events SET {setter} WHERE seq=4", r3)
    conn.commit()
    v = filled.audit.verify()
    assert v.first_bad_seq == 3 and "reordered" in v.reason


def test_truncation_is_caught_by_an_anchor(filled):
    anchor = filled.audit.head()
    conn = raw(filled)
    conn.execute("DELETE FROM audit_events WHERE seq = ?", (anchor["seq"],))
    conn.commit()
    assert filled.audit.verify().ok  # a clean tail cut is invisible to the chain alone...
    v = filled.audit.verify(anchor)
    assert not v.ok and "truncated" in v.reason  # ...but not to an anchor kept elsewhere


def test_export_round_trips_and_verifies(filled, tmp_path):
    out = tmp_path / "audit.jsonl"
    n = filled.audit.export_jsonl(out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert n == len(lines) == 7 and lines[0]["action"] == "tenant.create"
    assert verify_records(lines).ok
    lines[2]["object"] = "thing/evil"
    assert verify_records(lines).first_bad_seq == 3
