"""PII detection and redaction with typed placeholders (`<EMAIL>`, `<CARD>`, ...).

Regexes find candidates; validators (Luhn for cards, mod-97 for IBANs, octet
ranges for IPv4, Shannon entropy for unlabelled secrets) cut false positives.
Findings are counted by type; the values themselves are never returned in a
report, only their type and span.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass

PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "card": "<CARD>", "ssn": "<SSN>",
                "iban": "<IBAN>", "ip": "<IP>", "secret": "<SECRET>"}
ALL_TYPES = tuple(PLACEHOLDERS)

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_SECRET_PREFIXED = re.compile(
    r"\b(?:AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{40,255}"
    r"|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}|sk_live_[A-Za-z0-9]{16,})")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_=-]{24,}(?![A-Za-z0-9+/=_-])")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Za-z:])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{2,8}(?:[ .-]\d{2,5}){0,2}"
                    r"(?![\w])")
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{4}$")


@dataclass(frozen=True)
class Finding:
    type: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _high_entropy(tok: str) -> bool:
    classes = sum(bool(re.search(p, tok)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    return classes >= 3 and entropy(tok) >= 4.0


def _find(text: str, kind: str) -> list[Finding]:
    out: list[Finding] = []
    if kind == "email":
        out = [Finding(kind, m.start(), m.end()) for m in _EMAIL.finditer(text)]
    elif kind == "secret":
        out = [Finding(kind, m.start(), m.end()) for m in _SECRET_PREFIXED.finditer(text)]
        out += [Finding(kind, m.start(), m.end()) for m in _TOKEN.finditer(text) if _high_entropy(m.group())]
    elif kind == "card":
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                out.append(Finding(kind, m.start(), m.end()))
    elif kind == "iban":
        out = [Finding(kind, m.start(), m.end()) for m in _IBAN.finditer(text) if iban_ok(m.group())]
    elif kind == "ssn":
        out = [Finding(kind, m.start(), m.end()) for m in _SSN.finditer(text)]
    elif kind == "ip":
        for m in _IPV4.finditer(text):
            if all(0 <= int(p) <= 255 for p in m.group().split(".")):
                out.append(Finding(kind, m.start(), m.end()))
        for m in _IPV6.finditer(text):
            try:
                if m.group().count(":") >= 2:
                    ipaddress.IPv6Address(m.group())
                    out.append(Finding(kind, m.start(), m.end()))
            except ValueError:
                pass
    elif kind == "phone":
        for m in _PHONE.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if _DATE.match(m.group()):
                continue
            if 7 <= len(digits) <= 15 and (m.group().startswith(("+", "(")) or re.search(r"\d[ .-]\d", m.group())):
                out.append(Finding(kind, m.start(), m.end()))
    return out


# order matters: a more specific type claims its span first (a card is not also a phone)
_ORDER = ("secret", "email", "iban", "card", "ssn", "ip", "phone")


def detect(text: str, types: tuple[str, ...] | list[str] = ALL_TYPES) -> list[Finding]:
    """Non-overlapping findings in `text`, in order of position."""
    if not isinstance(text, str) or not text:
        return []
    taken: list[Finding] = []
    for kind in _ORDER:
        if kind not in types:
            continue
        for f in _find(text, kind):
            if not any(f.start < t.end and t.start < f.end for t in taken):
                taken.append(f)
    return sorted(taken, key=lambda f: f.start)


def redact(text: str, types: tuple[str, ...] | list[str] = ALL_TYPES) -> tuple[str, Counter]:
    """Replace each finding with its placeholder; returns (text, counts by type)."""
    findings = detect(text, types)
    if not findings:
        return text, Counter()
    parts, pos = [], 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(PLACEHOLDERS[f.type])
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), Counter(f.type for f in findings)


def apply_policy(row: dict, fields: list[str], types: list[str], policy: str) -> tuple[dict | None, Counter]:
    """Redact (or drop, returning None) a row whose text fields hold PII; counts by type."""
    counts: Counter = Counter()
    out = dict(row)
    for name in fields:
        value = row.get(name)
        if isinstance(value, str) and value:
            out[name], found = redact(value, types)
            counts.update(found)
    if counts and policy == "drop":
        return None, counts
    return out, counts
