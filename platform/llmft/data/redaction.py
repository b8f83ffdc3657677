"""The redaction pass: findings of the PII detector replaced by typed placeholders, counted, shown masked.

A row's text fields (and each chat message's `content`) are redacted, or the row dropped, per
the spec's policy; the curation report gets counts by type and a few examples whose value is
masked (`mask`), never whole, with the redacted text around it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from llmft.data.pii import ALL_TYPES, NOT_PII, PLACEHOLDERS, detect


def mask(value: str, kind: str) -> str:
    """A finding shown without its value: separators kept, most characters starred (`+1 415 *** **12`)."""
    if kind == "email":
        local, _, domain = value.partition("@")
        host, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}***.{tld}"
    alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
    n = len(alnum)
    if kind == "secret":
        keep = set(alnum[:min(4, n // 4)])
    elif kind == "ip":
        keep = set(alnum[:min(3, n // 3)])
    elif kind == "card":
        keep = set(alnum[-4:])
    elif kind == "iban":
        keep = set(alnum[:2] + alnum[-2:])
    elif kind == "phone":
        keep = set(alnum[:(n + 1) // 3] + alnum[-2:])
    else:
        keep = set(alnum[-2:])
    return "".join(ch if i in keep or not ch.isalnum() else "*" for i, ch in enumerate(value))


@dataclass
class Redaction:
    """A redacted text, its counts by type and one example per finding (masked value, redacted context)."""

    text: str
    counts: Counter
    examples: list[dict] = field(default_factory=list)


CONTEXT_CHARS = 40  # redacted text shown either side of an example's placeholder


def redact_text(text: str, types: tuple[str, ...] | list[str] = ALL_TYPES,
                not_pii: tuple[str, ...] | list[str] = NOT_PII) -> Redaction:
    """Replace each finding with its placeholder, keeping masked examples for the report."""
    findings = detect(text, types, not_pii)
    if not findings:
        return Redaction(text, Counter())
    parts, pos, at = [], 0, []
    for f in findings:
        parts.append(text[pos:f.start])
        at.append((f, sum(map(len, parts))))
        parts.append(PLACEHOLDERS[f.type])
        pos = f.end
    parts.append(text[pos:])
    out = "".join(parts)
    examples = []
    for f, start in at:
        end = start + len(PLACEHOLDERS[f.type])
        lo, hi = max(0, start - CONTEXT_CHARS), min(len(out), end + CONTEXT_CHARS)
        ctx = ("…" if lo else "") + out[lo:hi].replace("\n", " ") + ("…" if hi < len(out) else "")
        examples.append({"type": f.type, "redacted": ctx, "masked": mask(text[f.start:f.end], f.type)})
    return Redaction(out, Counter(f.type for f in findings), examples)


def redact(text: str, types: tuple[str, ...] | list[str] = ALL_TYPES,
           not_pii: tuple[str, ...] | list[str] = NOT_PII) -> tuple[str, Counter]:
    """Replace each finding with its placeholder; returns (text, counts by type)."""
    r = redact_text(text, types, not_pii)
    return r.text, r.counts


def scan_row(row: dict, fields: list[str], types: list[str], policy: str,
             not_pii: tuple[str, ...] | list[str] = NOT_PII) -> tuple[dict | None, Counter, list[dict]]:
    """Redact (or drop, returning None) a row's text fields; counts by type and masked examples (with `field`).

    A field holding a list (chat `messages`) has each item's `content` scanned.
    """
    counts: Counter = Counter()
    examples: list[dict] = []
    out = dict(row)
    for name in fields:
        value = row.get(name)
        if isinstance(value, str) and value:
            r = redact_text(value, types, not_pii)
            out[name] = r.text
            counts.update(r.counts)
            examples += [{**ex, "field": name} for ex in r.examples]
        elif isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                if isinstance(item, dict) and isinstance(item.get("content"), str):
                    r = redact_text(item["content"], types, not_pii)
                    counts.update(r.counts)
                    examples += [{**ex, "field": f"{name}[{i}].content"} for ex in r.examples]
                    item = {**item, "content": r.text}
                items.append(item)
            out[name] = items
    if counts and policy == "drop":
        return None, counts, examples
    return out, counts, examples


def apply_policy(row: dict, fields: list[str], types: list[str], policy: str,
                 not_pii: tuple[str, ...] | list[str] = NOT_PII) -> tuple[dict | None, Counter]:
    """Redact (or drop, returning None) a row whose text fields hold PII; counts by type."""
    out, counts, _ = scan_row(row, fields, types, policy, not_pii)
    return out, counts
