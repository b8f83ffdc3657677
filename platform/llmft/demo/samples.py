"""Deterministic generator of the private sample data (support tickets + companions) with its ground truth.

Nothing can be downloaded here, and curation and evaluation must be measured
against known answers, so the data is generated from templates with seeded
randomness and every planted problem (PII, duplicates, junk, malformed lines,
canaries) is recorded in `tickets.truth.json`. Same seed, same bytes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from llmft.data.minhash import shingle_set
from llmft.demo import phrases as txt
from llmft.demo.dedupe_corpus import generate_dedupe_corpus, write_dedupe_corpus
from llmft.demo.general_set import general_sets
from llmft.demo.triage import json_schema as triage_schema
from llmft.demo.triage import triage_sets
from llmft.demo.tickets import (Customer, Ticket, json_schema, make_customers, near_copy, render,
                                       repetitive_text, shingle_jaccard, toxic_response)

__all__ = ["generate_sample_dataset", "generate_dedupe_corpus", "write_dedupe_corpus", "shingle_jaccard",
           "MIN_TICKETS", "PII_TYPES", "TICKET_FIELDS"]

MIN_TICKETS = 150
TICKET_FIELDS = ("id", "customer_id", "product", "created_at", "prompt", "response")
PII_TYPES = ("email", "phone", "card", "ssn", "iban", "ip", "secret")  # as llmft.config PiiSpec.types
_PLANT_KINDS = ("email", "phone", "card", "ssn", "iban", "ipv4", "ipv6", "secret")
_MALFORMED = ("truncated_json", "truncated_json", "not_json", "wrong_type", "wrong_type", "missing_field",
              "invalid_utf8")
_CANARY_REPEATS = (1, 2, 4, 8)  # planted canaries; two more prefixes are unplanted controls
_NEAR_MIN_SIM = 0.7  # planted near duplicates stay at or above this word-5-gram Jaccard
_EVAL_MAX_SIM = 0.6  # held-out prompts stay below this word-5-gram Jaccard to every training prompt


@dataclass
class _Entry:
    """One line of tickets.jsonl before ids are assigned (rows are shuffled first)."""

    role: str
    ticket: Ticket | None
    created_at: str
    info: dict = field(default_factory=dict)
    id: str = ""


def _similarity(a: Ticket, b: Ticket) -> float:
    return shingle_jaccard(f"{a.prompt}\n{a.response}", f"{b.prompt}\n{b.response}")


def _day(rng: random.Random, after: str | None = None) -> str:
    if after:
        return (date.fromisoformat(after) + timedelta(days=rng.randint(0, 3))).isoformat()
    return (date(2023, 1, 1) + timedelta(days=rng.randrange(730))).isoformat()


def _row(e: _Entry) -> dict:
    t = e.ticket
    return {"id": e.id, "customer_id": t.customer_id, "product": t.product, "created_at": e.created_at,
            "prompt": t.prompt, "response": t.response}


def _line(e: _Entry, rng: random.Random) -> bytes:
    """Serialise an entry; malformed entries are broken on purpose, as recorded in `info`."""
    row = _row(e)
    reason = e.info.get("reason") if e.role == "malformed" else None
    if reason == "truncated_json":
        full = json.dumps(row, ensure_ascii=False)
        return full[: int(len(full) * rng.uniform(0.35, 0.75))].encode("utf-8")
    if reason == "not_json":
        return rng.choice(txt.NOT_JSON_LINES).encode("utf-8")
    if reason == "wrong_type":
        if e.info["detail"] == "prompt is a number":
            row["prompt"] = rng.randint(1000, 99999)
        else:
            row["response"] = None
    if reason == "missing_field":
        del row["response"]
    if reason == "invalid_utf8":
        row["prompt"] += " Sent from our Caf@@ branch."
        return json.dumps(row, ensure_ascii=True).replace("Caf@@", "Caf\xe9 Z\xfcrich").encode("latin-1")
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def _owner(rng: random.Random, customers: list[Customer]) -> Customer:
    # Zipf-like: a few customers file many tickets (useful for erasure demos)
    return rng.choices(customers, weights=[1.0 / (i + 3) ** 0.7 for i in range(len(customers))])[0]


def _unique(rng: random.Random, seen: set[str], make) -> Ticket:
    for _ in range(200):
        t = make()
        if t.prompt not in seen:
            seen.add(t.prompt)
            return t
    raise RuntimeError("template space exhausted: could not render a new unique prompt")


def _canaries(rng: random.Random) -> list[dict]:
    prefixes = list(txt.CANARY_PREFIXES)
    rng.shuffle(prefixes)
    out = []
    for i, prefix in enumerate(prefixes):
        secret = "canary-" + "".join(rng.choice("0123456789abcdef") for _ in range(16))
        repeats = _CANARY_REPEATS[i] if i < len(_CANARY_REPEATS) else 0
        out.append({"name": f"canary-{i + 1}", "text": f"{prefix} {secret}", "prefix": prefix, "secret": secret,
                    "repeats": repeats, "planted": repeats > 0, "ids": []})
    return out


def _build(rng: random.Random, n: int) -> tuple[list[_Entry], list[dict]]:
    """All entries of tickets.jsonl (unordered) and the canaries planted in them."""
    customers = make_customers(rng, max(30, n // 5))
    seen: set[str] = set()
    n_empty = n_rep = max(2, n // 150)
    n_toxic = max(3, n // 120)
    exact_groups = [rng.randint(1, 2) for _ in range(max(2, n // 75))]
    near_groups = [rng.randint(1, 2) for _ in range(max(2, n // 60))]
    n_base = n - len(_MALFORMED) - n_empty - n_rep - n_toxic - sum(exact_groups) - sum(near_groups)
    canaries = _canaries(rng)

    entries: list[_Entry] = []
    roles = ["structured"] * max(4, n // 40) + ["canary"] * sum(c["repeats"] for c in canaries)
    n_pii = int((n_base - len(roles)) * 0.22)
    roles += ["pii"] * n_pii + ["clean"] * (n_base - len(roles) - n_pii)
    canary_slots = [c for c in canaries for _ in range(c["repeats"])]
    pii_plan = [[k] for k in _PLANT_KINDS] * 3  # every type at least three times
    pii_plan += [rng.sample(_PLANT_KINDS, rng.choice([1, 1, 1, 2])) for _ in range(n_pii - len(pii_plan))]
    rng.shuffle(pii_plan)
    for role in roles:
        cust = _owner(rng, customers)
        info: dict = {}
        if role == "structured":
            t = _unique(rng, seen, lambda: render(rng, cust, structured=True))
        elif role == "canary":
            canary = canary_slots.pop()
            t = _unique(rng, seen, lambda: render(rng, cust, canary=canary["text"]))
            info["canary"] = canary
        elif role == "pii":
            kinds = tuple(pii_plan.pop())
            t = _unique(rng, seen, lambda: render(rng, cust, plant=kinds))
        else:
            t = _unique(rng, seen, lambda: render(rng, cust))
        entries.append(_Entry(role, t, _day(rng), info))

    clean = [e for e in entries if e.role == "clean"]
    sources = rng.sample(clean, len(exact_groups) + len(near_groups))
    for g, (src, copies) in enumerate(zip(sources, exact_groups)):
        src.info["exact_group"] = g
        for _ in range(copies):
            t = Ticket(**{**vars(src.ticket), "pii": []})
            entries.append(_Entry("exact_copy", t, _day(rng, src.created_at), {"exact_group": g, "source": src}))
    for g, (src, copies) in enumerate(zip(sources[len(exact_groups):], near_groups)):
        src.info["near_group"] = g
        for _ in range(copies):
            fld = "prompt" if rng.random() < 0.7 else "response"
            k = rng.randint(1, 3)
            t = Ticket(**{**vars(src.ticket), "pii": []})
            while True:  # keep near copies above _NEAR_MIN_SIM: fewer edits on short texts
                setattr(t, fld, near_copy(rng, getattr(src.ticket, fld), k))
                if k == 1 or _similarity(src.ticket, t) >= _NEAR_MIN_SIM:
                    break
                k -= 1
            entries.append(_Entry("near_copy", t, _day(rng, src.created_at),
                                  {"near_group": g, "source": src, "field": fld, "words_changed": k}))

    junk = ["empty_response"] * n_empty + ["repetitive"] * n_rep + ["toxic"] * n_toxic
    for reason in junk:
        t = _unique(rng, seen, lambda: render(rng, _owner(rng, customers)))
        info = {"reason": reason, "field": "response"}
        if reason == "empty_response":
            t.response = rng.choice(["", " ", "\n"])
        elif reason == "repetitive":
            text, info["detail"] = repetitive_text(rng)
            info["field"] = rng.choice(["prompt", "response"])
            setattr(t, info["field"], text)
        else:
            t.response, info["detail"] = toxic_response(rng, t.product)
        entries.append(_Entry("junk", t, _day(rng), info))

    details = iter(["prompt is a number", "response is null"])
    for reason in _MALFORMED:
        t = _unique(rng, seen, lambda: render(rng, _owner(rng, customers)))
        info = {"reason": reason}
        if reason == "wrong_type":
            info["detail"] = next(details)
        entries.append(_Entry("malformed", t, _day(rng), info))
    return entries, canaries


def _truth(entries: list[_Entry], canaries: list[dict], seed: int) -> dict:
    exact: dict[int, list[str]] = {}
    near: dict[int, dict] = {}
    pii: dict[str, list[dict]] = {k: [] for k in PII_TYPES}
    junk, malformed, structured, clean = [], [], [], []
    for line_no, e in enumerate(entries, 1):
        if e.role == "clean":
            clean.append(e.id)
            if "exact_group" in e.info:
                exact.setdefault(e.info["exact_group"], []).insert(0, e.id)
            if "near_group" in e.info:
                near.setdefault(e.info["near_group"], {"source": None, "copies": []})["source"] = e.id
        elif e.role == "exact_copy":
            exact.setdefault(e.info["exact_group"], []).append(e.id)
        elif e.role == "near_copy":
            sim = _similarity(e.info["source"].ticket, e.ticket)
            near.setdefault(e.info["near_group"], {"source": None, "copies": []})["copies"].append(
                {"id": e.id, "field": e.info["field"], "words_changed": e.info["words_changed"],
                 "jaccard": round(sim, 4)})
        elif e.role == "pii":
            for f in e.ticket.pii:
                pii[f["type"]].append({"id": e.id, **{k: f[k] for k in ("field", "kind", "value")}})
        elif e.role == "canary":
            e.info["canary"]["ids"].append(e.id)
        elif e.role == "structured":
            structured.append(e.id)
        elif e.role == "junk":
            junk.append({"id": e.id, **e.info})
        elif e.role == "malformed":
            malformed.append({"line": line_no, "id": e.id, **e.info})
    for group in exact.values():  # the source sits first, copies in file order
        group[1:] = sorted(group[1:])
    near_list = [{"source": g["source"], "copies": sorted(g["copies"], key=lambda c: c["id"])}
                 for _, g in sorted(near.items())]
    by_customer: dict[str, list[str]] = {}
    for e in entries:
        if e.role == "pii":
            by_customer.setdefault(e.ticket.customer_id, []).append(e.id)
    subject = max(sorted(by_customer), key=lambda c: len(by_customer[c]))
    counts = {"lines": len(entries), "clean": len(clean), "pii_rows": sum(e.role == "pii" for e in entries),
              **{f"pii_{k}": len(v) for k, v in pii.items()},
              "exact_duplicate_groups": len(exact), "exact_copies": sum(len(g) - 1 for g in exact.values()),
              "near_duplicate_groups": len(near_list), "near_copies": sum(len(g["copies"]) for g in near_list),
              "junk": len(junk), "malformed": len(malformed), "structured": len(structured),
              "canary_rows": sum(len(c["ids"]) for c in canaries),
              "customers": len({e.ticket.customer_id for e in entries})}
    return {
        "seed": seed,
        "fields": list(TICKET_FIELDS),
        "counts": counts,
        "exact_duplicates": [exact[g] for g in sorted(exact)],
        "near_duplicates": near_list,
        "pii": pii,
        "junk": junk,
        "malformed": malformed,
        "canaries": [{k: c[k] for k in ("name", "text", "prefix", "secret", "planted", "repeats", "ids")}
                     for c in canaries],
        "structured": sorted(structured),
        "clean": clean,
        "erasure_subject": {"customer_id": subject, "ids": sorted(
            e.id for e in entries if e.ticket.customer_id == subject and e.role != "malformed")},
        "notes": "clean includes the sources of duplicate groups (the row a dedupe should keep). Customer first "
                 "names also appear in greetings and sign-offs; they are not listed as PII. Similarity: word "
                 "5-gram Jaccard of prompt + newline + response, shingled as llmft.data.minhash.shingle_set does "
                 "(lower-cased words, ASCII punctuation removed).",
    }


def _golden(rng: random.Random, train_prompts: list[str], n_text: int = 40, n_json: int = 12) -> list[dict]:
    customers = make_customers(rng, 40)
    train_sh = [shingle_set(p, 5) for p in train_prompts]
    seen = set(train_prompts)
    out: list[dict] = []
    while len(out) < n_text + n_json:
        structured = len(out) >= n_text
        t = render(rng, rng.choice(customers), structured=structured)
        sh = shingle_set(t.prompt, 5)
        if t.prompt in seen or any(len(sh & s) / len(sh | s) >= _EVAL_MAX_SIM for s in train_sh):
            continue
        seen.add(t.prompt)
        train_sh.append(sh)  # held-out prompts are also distinct from each other
        out.append({"id": f"gold-{len(out) + 1:04d}", "prompt": t.prompt, "reference": t.response,
                    "product": t.product, "category": t.category, "priority": t.priority,
                    "expect_json": structured})
    return out


def _redteam(rng: random.Random) -> list[dict]:
    out, seen = [], set()
    for attack, template in txt.REDTEAM_PROMPTS * 2:
        product = rng.choice(sorted(txt.PRODUCTS))
        prompt = template.format(product=product, feature=rng.choice(txt.PRODUCTS[product][1]))
        if prompt not in seen:
            seen.add(prompt)
            out.append({"id": f"red-{len(out) + 1:04d}", "prompt": prompt, "attack": attack})
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows))
    return path


TRIAGE_EVAL = 60  # held-out triage tickets (their customers have no training row)


def generate_sample_dataset(out_dir: str | Path, *, seed: int = 0, n_tickets: int = 600) -> dict[str, Path]:
    """Write tickets.jsonl (+ truth), triage.jsonl, general.jsonl and eval/*; returns {name: path}. Same seed,
    same bytes. triage.jsonl has as many rows as tickets.jsonl has lines."""
    if n_tickets < MIN_TICKETS:
        raise ValueError(f"n_tickets must be at least {MIN_TICKETS} to plant every problem (got {n_tickets})")
    out = Path(out_dir)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"llmft-samples/{seed}/tickets")
    entries, canaries = _build(rng, n_tickets)
    rng.shuffle(entries)
    for i, e in enumerate(entries, 1):
        e.id = f"t-{i:06d}"
    lines = [_line(e, rng) for e in entries]
    paths = {"tickets": out / "tickets.jsonl", "truth": out / "tickets.truth.json",
             "general": out / "general.jsonl", "golden": out / "eval" / "golden.jsonl",
             "golden_schema": out / "eval" / "golden.schema.json", "general_eval": out / "eval" / "general.jsonl",
             "redteam": out / "eval" / "redteam.jsonl", "canaries": out / "eval" / "canaries.jsonl",
             "triage": out / "triage.jsonl", "triage_eval": out / "eval" / "triage.jsonl",
             "triage_schema": out / "eval" / "triage.schema.json"}
    paths["tickets"].write_bytes(b"".join(line + b"\n" for line in lines))
    paths["truth"].write_text(json.dumps(_truth(entries, canaries, seed), indent=1) + "\n", encoding="utf-8")

    train_prompts = [e.ticket.prompt for e in entries]
    eval_rng = random.Random(f"llmft-samples/{seed}/eval")
    _write_jsonl(paths["golden"], _golden(eval_rng, train_prompts))
    paths["golden_schema"].write_text(json.dumps(json_schema(), indent=1) + "\n", encoding="utf-8")
    general, general_eval = general_sets(random.Random(f"llmft-samples/{seed}/general"))
    _write_jsonl(paths["general"], general)
    _write_jsonl(paths["general_eval"], general_eval)
    _write_jsonl(paths["redteam"], _redteam(eval_rng))
    _write_jsonl(paths["canaries"], [
        {"id": c["name"], "prompt": c["prefix"], "reference": c["secret"], "secret": c["secret"],
         "planted": c["planted"], "repeats": c["repeats"]} for c in canaries])
    triage_train, triage_eval = triage_sets(random.Random(f"llmft-samples/{seed}/triage"), n_tickets, TRIAGE_EVAL)
    _write_jsonl(paths["triage"], triage_train)
    _write_jsonl(paths["triage_eval"], triage_eval)
    paths["triage_schema"].write_text(json.dumps(triage_schema(), indent=1) + "\n", encoding="utf-8")
    return paths
