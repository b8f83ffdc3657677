"""The audit log's hash chain: canonical record encoding, digests, and verification of a sequence of records.

Pure (no database), so an exported log can be verified anywhere (`llmft audit verify --file`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

GENESIS = "0" * 64
CHAINED_FIELDS = ("seq", "ts", "actor", "tenant", "action", "object", "payload_digest", "prev_digest")


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def payload_digest(payload: dict) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def record_digest(record: dict) -> str:
    return hashlib.sha256(canonical({k: record[k] for k in CHAINED_FIELDS})).hexdigest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str = ""
    head_digest: str = GENESIS

    def as_dict(self) -> dict:
        return {"ok": self.ok, "records": self.records, "first_bad_seq": self.first_bad_seq,
                "reason": self.reason, "head_digest": self.head_digest}


def verify_records(records: Iterable[dict], anchor: dict | None = None) -> Verdict:
    """Walk records in seq order; name the first that breaks the chain and why.

    Link checks come before content checks so that a reordered or inserted record
    is reported as such rather than as an edit. `anchor` ({"seq", "digest"}, taken
    from an earlier export) also catches truncation and wholesale re-chaining.
    """
    prev = GENESIS
    count = 0
    anchor_seen = anchor is None
    for expected_seq, rec in enumerate(records, start=1):
        seq = rec["seq"]
        if seq != expected_seq:
            return Verdict(False, count, expected_seq, f"record {expected_seq} missing (next stored record is {seq}): deleted", prev)
        if rec["prev_digest"] != prev:
            return Verdict(False, count, seq, f"record {seq} does not link to record {seq - 1}: inserted, deleted or reordered", prev)
        if payload_digest(rec["payload"]) != rec["payload_digest"]:
            return Verdict(False, count, seq, f"record {seq} payload does not match its digest: edited", prev)
        if record_digest(rec) != rec["digest"]:
            return Verdict(False, count, seq, f"record {seq} digest mismatch: edited", prev)
        if anchor is not None and seq == anchor["seq"]:
            if rec["digest"] != anchor["digest"]:
                return Verdict(False, count, seq, f"record {seq} differs from the anchor: history rewritten", prev)
            anchor_seen = True
        prev = rec["digest"]
        count += 1
    if not anchor_seen:
        return Verdict(False, count, count + 1, f"log ends at record {count} before anchor record {anchor['seq']}: truncated", prev)
    return Verdict(True, count, None, "", prev)
