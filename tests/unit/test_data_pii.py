"""PII detection and redaction: every planted type, validators, no values in counts."""

import json

import pytest

from llmft.data import pii

CASES = [
    ("email", "write to jane.doe+x@example.co.uk today", "<EMAIL>"),
    ("phone", "call (415) 555-0134 now", "<PHONE>"),
    ("phone", "or +44 20 7946 0958 please", "<PHONE>"),
    ("card", "card 4111 1111 1111 1111 expires", "<CARD>"),
    ("ssn", "ssn 123-45-6789 on file", "<SSN>"),
    ("iban", "iban DE89 3704 0044 0532 0130 00 thanks", "<IBAN>"),
    ("ip", "from 203.0.113.7.", "<IP>"),
    ("ip", "v6 2001:db8::8a2e:370:7334 here", "<IP>"),
    ("secret", "key AKIAIOSFODNN7EXAMPLE leaked", "<SECRET>"),
    ("secret", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 x", "<SECRET>"),
    ("secret", "blob Zx8kQ2pL9vR4tY7uW1sE5nB3mC6hJ0gF2dA8qK4z end", "<SECRET>"),
]


@pytest.mark.parametrize("kind,text,placeholder", CASES)
def test_each_type_is_redacted_with_its_placeholder(kind, text, placeholder):
    out, counts = pii.redact(text)
    assert placeholder in out and counts == {kind: 1}


def test_validators_reject_lookalikes():
    assert pii.detect("order 4111 1111 1111 1112 is not a card") == []  # Luhn fails
    assert pii.detect("version 300.1.2.999 is no address") == []
    assert pii.detect("shipped on 2024-03-15 at 10:30:00") == []
    assert pii.detect("plain words only, nothing secret here") == []


def test_types_can_be_restricted_and_drop_policy_drops():
    out, counts = pii.redact("mail a@b.io call (415) 555-0134", types=["email"])
    assert "<EMAIL>" in out and "(415) 555-0134" in out and counts == {"email": 1}
    row, counts = pii.apply_policy({"prompt": "mail a@b.io", "x": 1}, ["prompt"], list(pii.ALL_TYPES), "drop")
    assert row is None and counts == {"email": 1}


def test_sample_dataset_planted_pii_all_redacted_without_false_positives(tmp_path):
    from llmft.demo.samples import generate_sample_dataset

    paths = generate_sample_dataset(tmp_path, seed=1, n_tickets=300)
    truth = json.loads(paths["truth"].read_text())
    rows = {}
    for line in paths["tickets"].read_bytes().splitlines():
        try:
            r = json.loads(line.decode())
            rows[r["id"]] = r
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    planted = set()
    for kind, items in truth["pii"].items():
        for it in items:
            if it["id"] in rows and isinstance(rows[it["id"]].get(it["field"]), str):
                planted.add(it["id"])
                red, counts = pii.redact(rows[it["id"]][it["field"]])
                assert it["value"] not in red, (kind, it["id"])
                assert it["value"] not in json.dumps(counts)
    for rid, r in rows.items():
        if rid not in planted:
            for f in ("prompt", "response"):
                if isinstance(r.get(f), str):
                    assert pii.detect(r[f]) == [], (rid, f)
