"""The generated sample data: deterministic, and its ground truth really matches the bytes on disk."""

from __future__ import annotations

import ipaddress
import json
import random
import re
import time

import jsonschema
import pytest

from llmft.data.minhash import shingle_set
from llmft.data.pii import iban_ok, luhn_ok
from llmft.demo import phrases
from llmft.demo.tickets import words
from llmft.demo.samples import (MIN_TICKETS, PII_TYPES, TICKET_FIELDS, generate_dedupe_corpus,
                                generate_sample_dataset, shingle_jaccard, write_dedupe_corpus)


@pytest.fixture(scope="module")
def ds(sample_dataset):
    truth = json.loads(sample_dataset["truth"].read_text())
    lines = sample_dataset["tickets"].read_bytes().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    bad = {m["line"] for m in truth["malformed"]}
    rows = {}
    for no, raw in enumerate(lines, 1):
        if no not in bad:
            row = json.loads(raw.decode("utf-8"))
            rows[row["id"]] = row
    return {"paths": sample_dataset, "truth": truth, "lines": lines, "rows": rows}


def _jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate_sample_dataset(tmp_path / "a", seed=3, n_tickets=300)
    b = generate_sample_dataset(tmp_path / "b", seed=3, n_tickets=300)
    c = generate_sample_dataset(tmp_path / "c", seed=4, n_tickets=300)
    assert set(a) == {"tickets", "truth", "general", "golden", "golden_schema", "general_eval", "redteam", "canaries",
                      "triage", "triage_eval", "triage_schema"}
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
    for key in ("tickets", "truth", "general", "golden", "general_eval", "canaries", "triage", "triage_eval"):
        assert a[key].read_bytes() != c[key].read_bytes(), key
    assert len(a["tickets"].read_bytes().splitlines()) == 300


def test_too_few_tickets_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="n_tickets must be at least"):
        generate_sample_dataset(tmp_path, n_tickets=MIN_TICKETS - 1)
    paths = generate_sample_dataset(tmp_path, n_tickets=MIN_TICKETS)
    truth = json.loads(paths["truth"].read_text())
    assert truth["counts"]["lines"] == MIN_TICKETS
    assert all(len(truth["pii"][t]) >= 3 for t in PII_TYPES)


def test_well_formed_rows_have_the_schema(ds):
    assert len(ds["lines"]) == 600 == ds["truth"]["counts"]["lines"]
    for row in ds["rows"].values():
        assert tuple(row) == TICKET_FIELDS
        assert all(isinstance(row[f], str) for f in TICKET_FIELDS)
        assert re.fullmatch(r"t-\d{6}", row["id"]) and re.fullmatch(r"cust-\d{4}", row["customer_id"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["created_at"])
    assert len({r["product"] for r in ds["rows"].values()}) >= 5
    per_customer = {}
    for r in ds["rows"].values():
        per_customer[r["customer_id"]] = per_customer.get(r["customer_id"], 0) + 1
    assert max(per_customer.values()) >= 10 and sum(v >= 3 for v in per_customer.values()) >= 20


def test_malformed_lines_fail_as_recorded(ds):
    failing = {}
    for no, raw in enumerate(ds["lines"], 1):
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            failing[no] = "invalid_utf8"
            assert json.loads(raw.decode("latin-1"))["id"]  # otherwise a fine row, only mis-encoded
            continue
        except json.JSONDecodeError:
            failing[no] = "json"
            continue
        if set(row) != set(TICKET_FIELDS):
            failing[no] = "missing_field"
        elif not all(isinstance(row[f], str) for f in TICKET_FIELDS):
            failing[no] = "wrong_type"
    truth = {m["line"]: m["reason"] for m in ds["truth"]["malformed"]}
    expected = {no: ("json" if r in ("truncated_json", "not_json") else r) for no, r in truth.items()}
    assert failing == expected
    assert sorted(truth.values()) == sorted(["truncated_json"] * 2 + ["not_json", "missing_field", "invalid_utf8"]
                                            + ["wrong_type"] * 2)


def test_exact_duplicate_groups_are_identical_and_complete(ds):
    rows, groups = ds["rows"], ds["truth"]["exact_duplicates"]
    assert len(groups) >= 2
    for g in groups:
        assert len(g) >= 2 and len(set(g)) == len(g)
        assert len({(rows[i]["prompt"], rows[i]["response"]) for i in g}) == 1
    planted = {i for g in groups for i in g}
    by_text = {}
    for r in rows.values():
        by_text.setdefault((r["prompt"], r["response"]), []).append(r["id"])
    unplanted = [ids for ids in by_text.values() if len(ids) > 1 and not set(ids) <= planted]
    assert unplanted == []


def test_near_duplicates_are_similar_but_not_identical(ds):
    rows = ds["rows"]
    for group in ds["truth"]["near_duplicates"]:
        src = rows[group["source"]]
        for copy in group["copies"]:
            dup = rows[copy["id"]]
            a, b = f"{src['prompt']}\n{src['response']}", f"{dup['prompt']}\n{dup['response']}"
            assert words(a) != words(b)
            sim = shingle_jaccard(a, b)
            assert sim == pytest.approx(copy["jaccard"], abs=1e-4)
            assert 0.7 <= sim < 1.0
            other = "response" if copy["field"] == "prompt" else "prompt"
            assert src[other] == dup[other]


def test_no_unplanted_near_duplicates(ds):
    """MinHash-LSH over every well-formed row finds no similar pair outside the planted groups."""
    from datasketch import MinHash, MinHashLSH

    truth, rows = ds["truth"], ds["rows"]
    group_of = {}
    for n, g in enumerate(truth["exact_duplicates"]):
        group_of.update({i: ("e", n) for i in g})
    for n, g in enumerate(truth["near_duplicates"]):
        group_of.update({i: ("n", n) for i in [g["source"]] + [c["id"] for c in g["copies"]]})
    lsh, texts = MinHashLSH(threshold=0.4, num_perm=128), {}
    for rid, r in rows.items():
        texts[rid] = f"{r['prompt']}\n{r['response']}"
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([h.to_bytes(4, "little") for h in shingle_set(texts[rid], 5)])
        for other in lsh.query(m):
            if shingle_jaccard(texts[rid], texts[other]) >= 0.6:
                assert group_of.get(rid) is not None and group_of.get(rid) == group_of.get(other), (rid, other)
        lsh.insert(rid, m)


PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "card": re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
    "ssn": re.compile(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b"),
    "ipv4": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    "ipv6": re.compile(r"\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b"),
    "secret": re.compile(r"AKIA[A-Z2-7]{16}|ghp_\w{36}|sk-\w{48}|[A-Za-z0-9+/]{40}"),
    "phone": re.compile(r"\(?\+?\d{1,3}\)?[ .-]\d{2,4}[ .-]\d{3,6}(?:[ .-]\d{4})?"),
}


def test_pii_truth_values_are_valid_and_in_their_rows(ds):
    pii, rows = ds["truth"]["pii"], ds["rows"]
    assert sorted(pii) == sorted(PII_TYPES)
    for kind, found in pii.items():
        assert len(found) >= 3, kind
        for f in found:
            assert f["value"] in rows[f["id"]][f["field"]], f
            v = f["value"]
            if kind == "card":
                assert luhn_ok(re.sub(r"\D", "", v)) and len(re.sub(r"\D", "", v)) in (15, 16)
            elif kind == "iban":
                assert iban_ok(v) and not iban_ok(v[:-1] + str((int(v[-1]) + 1) % 10))
            elif kind == "ssn":
                assert PATTERNS["ssn"].fullmatch(v) and not v.startswith(("000", "666", "9"))
            elif kind == "email":
                assert PATTERNS["email"].fullmatch(v)
            elif kind == "ip":
                addr = ipaddress.ip_address(v)
                assert addr.version == (4 if f["kind"] == "ipv4" else 6)
            elif kind == "phone":
                assert len(re.sub(r"\D", "", v)) >= 9
            elif kind == "secret":
                prefix = {"aws_access_key": "AKIA", "github_token": "ghp_", "openai_key": "sk-"}.get(f["kind"], "")
                assert v.startswith(prefix) and len(v) >= 20
    ip_kinds = {f["kind"] for f in pii["ip"]}
    assert ip_kinds == {"ipv4", "ipv6"}
    assert {f["kind"] for f in pii["secret"]} >= {"aws_access_key", "github_token", "openai_key", "high_entropy"}


def test_rows_without_planted_pii_have_none(ds):
    """Truth is complete: simple detectors find PII only in the rows the truth lists (and find all of it)."""
    planted = {f["id"] for found in ds["truth"]["pii"].values() for f in found}
    for rid, row in ds["rows"].items():
        text = row["prompt"] + "\n" + row["response"]
        hits = {k for k, p in PATTERNS.items() if p.search(text)}
        if rid not in planted:
            assert hits == set(), (rid, hits, text)
    for kind, found in ds["truth"]["pii"].items():
        for f in found:
            sub = f["kind"] if kind == "ip" else kind
            assert PATTERNS[sub].search(f["value"]), f


def test_junk_rows_are_junk_and_others_are_not(ds):
    rows, junk = ds["rows"], ds["truth"]["junk"]
    assert {j["reason"] for j in junk} == {"empty_response", "repetitive", "toxic"}
    insult = re.compile(r"\b(" + "|".join(phrases.INSULTS) + r")\b", re.I)
    for j in junk:
        text = rows[j["id"]][j["field"]]
        if j["reason"] == "empty_response":
            assert text.strip() == ""
        elif j["reason"] == "repetitive":
            toks = words(text)
            grams = list(zip(toks, toks[1:], toks[2:]))
            assert len(toks) >= 16 and len(set(grams)) / len(grams) < 0.3
        else:
            assert set(m.lower() for m in insult.findall(text)) == set(j["detail"])
    junk_ids = {j["id"] for j in junk}
    for rid, row in rows.items():
        if rid not in junk_ids:
            assert row["response"].strip() and not insult.search(row["prompt"] + row["response"]), rid


def test_structured_rows_meet_the_schema(ds):
    schema = json.loads(ds["paths"]["golden_schema"].read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    ids = ds["truth"]["structured"]
    assert len(ids) >= 4
    for rid in ids:
        row = ds["rows"][rid]
        assert "JSON" in row["prompt"]
        jsonschema.validate(json.loads(row["response"]), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"category": "weather", "priority": "low", "summary": "Not a category."}, schema)


def test_canaries_planted_as_recorded(ds):
    blob = b"\n".join(ds["lines"]).decode("latin-1")
    canaries = ds["truth"]["canaries"]
    assert sum(c["planted"] for c in canaries) >= 3 and sum(not c["planted"] for c in canaries) >= 1
    for c in canaries:
        assert c["text"] == f"{c['prefix']} {c['secret']}"
        carriers = sorted(rid for rid, r in ds["rows"].items() if c["text"] in r["prompt"] + r["response"])
        assert carriers == sorted(c["ids"]) and len(carriers) == c["repeats"]
        assert blob.count(c["secret"]) == c["repeats"]
    evals = _jsonl(ds["paths"]["canaries"])
    assert [(e["prompt"], e["secret"], e["planted"]) for e in evals] == [
        (c["prefix"], c["secret"], c["planted"]) for c in canaries]


def test_eval_sets_are_held_out(ds):
    paths = ds["paths"]
    train_prompts = [r["prompt"] for r in ds["rows"].values()]
    general = _jsonl(paths["general"])
    golden, general_eval = _jsonl(paths["golden"]), _jsonl(paths["general_eval"])
    redteam, canaries = _jsonl(paths["redteam"]), _jsonl(paths["canaries"])
    for rows in (golden, general_eval, redteam, canaries):
        assert all(isinstance(r["id"], str) and isinstance(r["prompt"], str) and r["prompt"] for r in rows)
        assert len({r["id"] for r in rows}) == len(rows)
    all_train = set(train_prompts) | {g["prompt"] for g in general}
    for rows in (golden, general_eval, redteam):
        assert not {r["prompt"] for r in rows} & all_train
    train_sh = [shingle_set(p, 5) for p in train_prompts]
    for g in golden:
        sh = shingle_set(g["prompt"], 5)
        assert max(len(sh & t) / len(sh | t) for t in train_sh) < 0.6
    schema = json.loads(paths["golden_schema"].read_text())
    as_json = [g for g in golden if g["expect_json"]]
    assert len(as_json) >= 10 and len(golden) - len(as_json) >= 30
    for g in as_json:
        jsonschema.validate(json.loads(g["reference"]), schema)
    assert len(general) == 200 and len(general_eval) == 60 and len(redteam) >= 15
    topical = {"definition", "howto", "capital"}
    for task in topical:  # the topics themselves are split between train and eval, not just the phrasings
        train_topics = {_topic(g) for g in general if g["task"] == task}
        eval_topics = {_topic(g) for g in general_eval if g["task"] == task}
        assert train_topics and eval_topics and not train_topics & eval_topics, task
    assert {g["task"] for g in general_eval} >= topical


def _topic(row):
    if row["task"] == "howto":
        return re.sub(r"^(How do I|Give me short steps to|What are the steps to) ", "", row["prompt"]).rstrip("?.")
    return row.get("response", row.get("reference")).split(" is ")[0]


def test_general_answers_are_correct(sample_dataset):
    rows = _jsonl(sample_dataset["general"])
    checked = 0
    for r in rows:
        assert r["prompt"].strip() and r["response"].strip()
        m = re.fullmatch(r"(\d+) ([-+x/]) (\d+) = (-?\d+)\.", r["response"])
        if r["task"] == "arithmetic":
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            assert c == {"+": a + b, "-": a - b, "x": a * b, "/": a // b}[op] and (op != "/" or a % b == 0)
            checked += 1
    assert checked >= 10


def test_erasure_subject(ds):
    subject = ds["truth"]["erasure_subject"]
    assert len(subject["ids"]) >= 5
    assert all(ds["rows"][i]["customer_id"] == subject["customer_id"] for i in subject["ids"])
    owned = [r["id"] for r in ds["rows"].values() if r["customer_id"] == subject["customer_id"]]
    assert sorted(owned) == subject["ids"]


# ---- the dedupe benchmark corpus -------------------------------------------------------------------------------

def test_dedupe_corpus_truth_matches_texts():
    docs, truth = generate_dedupe_corpus(5000, seed=7)
    assert len(docs) == 5000 and len({d["id"] for d in docs}) == 5000
    text = {d["id"]: d["text"] for d in docs}
    assert len(truth["near_pairs"]) == 500 and len(truth["exact_pairs"]) == 250
    for src, dup in truth["exact_pairs"]:
        assert src != dup and text[src] == text[dup]
    sims = []
    for src, dup, k in truth["near_pairs"]:
        a, b = text[src].split(), text[dup].split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == k and 1 <= k <= 3
        sims.append(shingle_jaccard(text[src], text[dup]))
    assert min(sims) > 0.35 and sum(sims) / len(sims) > 0.7
    true_pairs = {tuple(p) for p in truth["pairs"]}
    assert {tuple(sorted(p[:2])) for p in truth["near_pairs"] + truth["exact_pairs"]} <= true_pairs
    assert truth["duplicates_to_remove"] == sum(len(g) - 1 for g in truth["groups"]) == 750
    rng = random.Random(0)
    ids = list(text)
    randoms = []
    while len(randoms) < 2000:
        a, b = sorted(rng.sample(ids, 2))
        if (a, b) not in true_pairs:
            randoms.append(shingle_jaccard(text[a], text[b]))
    assert max(randoms) < 0.05
    lengths = [len(t.split()) for t in text.values()]
    assert min(lengths) >= 40 and max(lengths) <= 120


def test_dedupe_corpus_is_deterministic_and_fast():
    a, ta = generate_dedupe_corpus(2000, seed=1)
    b, tb = generate_dedupe_corpus(2000, seed=1)
    c, _ = generate_dedupe_corpus(2000, seed=2)
    assert a == b and ta == tb and a != c
    start = time.perf_counter()
    docs, truth = generate_dedupe_corpus(200_000)
    elapsed = time.perf_counter() - start
    assert len(docs) == 200_000 and truth["duplicates_to_remove"] == 30_000
    assert elapsed < 30, f"200k docs took {elapsed:.1f}s"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_dedupe_corpus(tmp_path, suffix):
    truth = write_dedupe_corpus(tmp_path / f"c{suffix}", 1000, seed=5, near_dup_rate=0.2, exact_dup_rate=0)
    docs, expected = generate_dedupe_corpus(1000, seed=5, near_dup_rate=0.2, exact_dup_rate=0)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        got = pq.read_table(truth["data_path"]).to_pylist()
    else:
        got = _jsonl(tmp_path / "c.jsonl")
    assert got == docs
    assert json.loads((tmp_path / "c.truth.json").read_text()) == json.loads(json.dumps(expected))
    assert len(expected["near_pairs"]) == 200 and expected["exact_pairs"] == []


def test_dedupe_corpus_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unsupported corpus format"):
        write_dedupe_corpus(tmp_path / "c.csv", 10)
    with pytest.raises(ValueError, match="sum to less than 1"):
        generate_dedupe_corpus(10, near_dup_rate=0.7, exact_dup_rate=0.4)
    with pytest.raises(ValueError, match="words_changed"):
        generate_dedupe_corpus(10, words_changed=(0, 3))


def test_triage_files_hold_out_customers_and_meet_the_schema(sample_dataset):
    train, held = _jsonl(sample_dataset["triage"]), _jsonl(sample_dataset["triage_eval"])
    schema = json.loads(sample_dataset["triage_schema"].read_text())
    assert len(train) == 600 and len(held) >= 50
    assert not {r["customer_id"] for r in train} & {r["customer_id"] for r in held}
    ticket_customers = set(re.findall(r'"customer_id": "(cust-\d+)"', sample_dataset["tickets"].read_text("latin-1")))
    assert len(ticket_customers) >= 30
    assert not ticket_customers & {r["customer_id"] for r in train + held}  # other people than the reply tickets
    for row in train:
        jsonschema.validate(json.loads(row["response"]), schema)
    for row in held:
        answer = json.loads(row["reference"])
        jsonschema.validate(answer, schema)
        assert row["expect_json"] is True and answer == {k: row[k] for k in answer}
