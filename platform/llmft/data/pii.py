"""PII detection and redaction with typed placeholders (`<EMAIL>`, `<CARD>`, ...).

Regexes find candidates; validators (Luhn for cards, mod-97 for IBANs, `ipaddress` for
IPs, entropy and character-class mixing for unlabelled secrets) cut false positives.
Technical text is full of PII look-alikes, so spans that are not PII (`NOT_PII`: version
numbers, year ranges, DOIs, arXiv ids, loopback/documentation/reserved IPs, URLs, file
paths) are recognised first: the phone and generic-secret detectors do not fire inside
them, and special-purpose IPs are not reported. Each exemption can be turned off in the
spec (`pii.not_pii`). Replacing findings with placeholders (and masking them for the report)
is `llmft.data.redaction`'s; `measure` scores this detector on a labelled set.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "card": "<CARD>", "ssn": "<SSN>",
                "iban": "<IBAN>", "ip": "<IP>", "secret": "<SECRET>"}
ALL_TYPES = tuple(PLACEHOLDERS)
# technical look-alikes that are not PII by default (PiiSpec.not_pii lists the ones in force)
NOT_PII = ("versions", "year_ranges", "doi", "arxiv", "special_ips", "urls", "paths")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_SECRET_PREFIXED = re.compile(
    r"\b(?:AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{40,255}"
    r"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}|[sr]k_live_[A-Za-z0-9]{16,}|hf_[A-Za-z0-9]{30,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
    r"|-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|$)")
# `password = ...`, `api_key: ...`, `?token=...`: the value is a secret when it is not a word or a placeholder
_SECRET_LABELLED = re.compile(
    r"(?i)(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|auth[_-]?token|access[_-]?token"
    r"|client[_-]?secret|token|sig|signature)\b[\"']?(?:\s+is)?\s*[:=]\s*[\"']?([A-Za-z0-9+/=_.~!@#$%^&*-]{8,})")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_=-]{24,}(?![A-Za-z0-9+/=_-])")
_CARD = re.compile(r"(?<![\d.,-])(?:\d[ -]?){12,18}\d(?![\d-]|[.,]\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)")  # not 1.0.0.127.in-addr.arpa
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}|(?=::))(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![0-9A-Za-z:])")
_PHONE = re.compile(r"(?<![\w+:./-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?|\d{1,4}[ .-])\d{2,8}(?:[ .-]\d{2,5}){0,4}"
                    r"(?![\w]|[.:/-]\d)")
_DATE = re.compile(r"^\d{4}[-./ ]\d{1,2}[-./ ]\d{1,2}$|^\d{1,2}[-./ ]\d{1,2}[-./ ]\d{4}$")
_PHONE_CONTEXT = re.compile(r"(?i)(?:\b(?:call|phone|tel|telephone|mobile|cell|fax|ring|text|whatsapp|sms|reach"
                            r"|number|contact|dial)\b|#)[^\n\d]{0,20}$")
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|ver|release|build|v|python|cuda|node|kernel|firmware)\s*$")

_GIT_REMOTE = re.compile(r"\b[\w.-]+@[\w.-]+\.\w+:[\w./~-]+\.git\b")  # git@github.com:org/repo.git: no email
# spans that are not PII; a phone or generic secret inside one is not reported
_TECHNICAL = {
    "urls": re.compile(r"(?i)\b(?:https?|ftp|s3|gs|hdfs|file|git|ssh|wss?)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+|"
                       + _GIT_REMOTE.pattern),
    "paths": re.compile(r"(?<![\w/])(?:[A-Za-z]:\\|\\\\)[^\s\"'<>|]+|(?<![\w/.-])(?:~|\.{1,2})?/?(?:[\w.@+~-]+/)+"
                        r"[\w.@+~-]*"),
    "doi": re.compile(r"(?i)\b(?:doi:\s*)?10\.\d{4,9}/[^\s\"'<>]+"),
    "arxiv": re.compile(r"(?i)\barxiv(?:\.org/(?:abs|pdf)/|:\s*)(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})"
                        r"(?:v\d+)?|\b[a-z-]+(?:\.[A-Z]{2})?/\d{7}\b"),
    "versions": re.compile(r"(?i)(?<![\w.])v?\d+(?:\.\d+){1,4}(?:[-+._]?(?:a|b|rc|alpha|beta|dev|post|cu|final)"
                           r"[\w.]*|-\d+(?:-[a-z]\w*)?)?(?![\w.])|\b(?:ISBN|ISSN|IEEE|ISO|IEC|RFC|ECMA|ANSI|NIST)"
                           r"(?:[-/ ][A-Z]+)*[-: ]*[\d][\d\- .:/]*\d"),
    "year_ranges": re.compile(r"(?<!\d)(?:1[6-9]|2[01])\d\d\s?(?:-|–|—|to|/)\s?(?:(?:1[6-9]|2[01])\d\d|\d\d)(?!\d)"
                              r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\b"),
}
_NANP_DOTS = re.compile(r"\d{3}\.\d{3}\.\d{4}")
# not personal: loopback, unspecified, documentation, reserved, multicast, "this network" and public resolvers
_SPECIAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/8", "2001:db8::/32", "ff00::/8"))
_WELL_KNOWN = {ipaddress.ip_address(a) for a in ("8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9",
                                                 "208.67.222.222", "208.67.220.220", "2001:4860:4860::8888",
                                                 "2001:4860:4860::8844", "2606:4700:4700::1111")}


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


RANDOM_MIXING = 0.28  # random base64 of 24-40 chars: 95% above 0.3; identifiers and paths: about 0.2


def _class(ch: str) -> int:
    return 0 if ch.islower() else 1 if ch.isupper() else 2 if ch.isdigit() else 3


def mixing(tok: str) -> float:
    """Share of adjacent alphanumerics that switch class (a word's capital aside): ~0.45 random, ~0.2 camelCase."""
    pairs = [(_class(a), _class(b)) for a, b in zip(tok, tok[1:]) if a.isalnum() and b.isalnum()]
    return sum(a != b and (a, b) != (1, 0) for a, b in pairs) / len(pairs) if pairs else 0.0


def _high_entropy(tok: str) -> bool:
    classes = sum(bool(re.search(p, tok)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    return classes >= 3 and entropy(tok) >= 4.0 and mixing(tok) >= RANDOM_MIXING


def special_ip(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for addresses that name no one: loopback, unspecified, documentation, reserved, multicast, resolvers."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr in _WELL_KNOWN or any(addr in net for net in _SPECIAL_NETS if net.version == addr.version)


def _network_address(value: str, prefix: str) -> bool:
    try:
        return ipaddress.ip_network(f"{value}/{prefix}", strict=True).prefixlen < (32 if ":" not in value else 128)
    except ValueError:
        return False


def technical_spans(text: str, not_pii: tuple[str, ...] | list[str] = NOT_PII) -> list[tuple[int, int]]:
    """Spans of URLs, paths, DOIs, arXiv ids, versions and year ranges (those listed in `not_pii`)."""
    spans = []
    for name, rx in _TECHNICAL.items():
        if name not in not_pii:
            continue
        for m in rx.finditer(text):
            s, e = m.start(), len(m.group().rstrip(".,;:!?)]}'\"")) + m.start()
            if name == "versions" and _NANP_DOTS.fullmatch(m.group()) and not _VERSION_CONTEXT.search(text[:s]):
                continue  # 415.555.0134 is a phone number, v415.555.0134 a version
            if name == "paths" and (m.group().count("/") < 2 and "." not in m.group().rsplit("/", 1)[-1]
                                    and not m.group().startswith(("/", "~", "."))):
                continue  # and/or, w/o: words, not paths
            if name == "paths" and "/" in m.group() and mixing(m.group()) >= RANDOM_MIXING and len(m.group()) >= 24:
                continue  # a base64 blob with slashes, not a path
            if e > s:
                spans.append((s, e))
    return spans


class _Technical:
    """The technical spans of one text, found only when a candidate needs them (most texts have none)."""

    def __init__(self, text: str, not_pii: tuple[str, ...]):
        self.text, self.not_pii, self._spans = text, not_pii, None

    def covers(self, start: int, end: int) -> bool:
        if self._spans is None:
            self._spans = technical_spans(self.text, self.not_pii)
        return any(s <= start and end <= e for s, e in self._spans)


def _phone_ok(text: str, m: re.Match) -> bool:
    value = m.group()
    digits = re.sub(r"\D", "", value)
    if not 7 <= len(digits) <= 15 or _DATE.match(value):
        return False
    groups = re.findall(r"\d+", value)
    seps = set(re.findall(r"\d([ .-])\d", value))
    if value.startswith("+"):
        return len(digits) >= 8
    before = text[:m.start()].rstrip().rsplit(None, 1)
    if before and re.search(r"\d", before[-1]) and not before[-1].endswith((":", ",")):
        return False  # the tail of a longer code (a tracking number, a version list), not a number of its own
    if value.startswith("(") and len(digits) >= 9:
        return True
    if re.fullmatch(r"\d{3}([ .-])\d{3}\1\d{4}", value):
        return True  # North American 415-555-0134
    if re.fullmatch(r"0[1-9]\d{0,3}", groups[0]) and len(seps) == 1 and seps <= {" ", "-"} \
            and 9 <= len(digits) <= 12 and (len(groups) >= 3 or len(groups[1]) >= 6):
        return True  # national trunk prefix: 020 7946 0958, 06 12 34 56 78, 030 12345678
    return len(groups) >= 2 and bool(_PHONE_CONTEXT.search(text[max(0, m.start() - 40):m.start()]))


def _secret_value_ok(value: str) -> bool:
    if value.startswith(("$", "<", "{", "%")) or re.fullmatch(r"[a-z_.]+|[A-Z_.]+|(.)\1+|x+|\*+", value, re.I):
        return False
    return sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]")) >= 2 \
        and entropy(value) >= 2.8


def _find(text: str, kind: str, technical: _Technical, not_pii: tuple[str, ...]) -> list[Finding]:
    out: list[Finding] = []
    if kind == "email":
        remotes = {m.start() for m in _GIT_REMOTE.finditer(text)} if "urls" in not_pii and ".git" in text else ()
        out = [Finding(kind, m.start(), m.end()) for m in _EMAIL.finditer(text) if m.start() not in remotes]
    elif kind == "secret":
        out = [Finding(kind, m.start(), m.end()) for m in _SECRET_PREFIXED.finditer(text)]
        out += [Finding(kind, m.start(1), m.end(1)) for m in _SECRET_LABELLED.finditer(text)
                if _secret_value_ok(m.group(1))]
        out += [Finding(kind, m.start(), m.end()) for m in _TOKEN.finditer(text)
                if _high_entropy(m.group()) and not technical.covers(m.start(), m.end())]
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
        for m in [*(_IPV4.finditer(text) if "." in text else ()), *(_IPV6.finditer(text) if "::" in text or
                                                                       text.count(":") >= 7 else ())]:
            value = m.group().split("%")[0]
            if ":" in value and value.count(":") < 2:
                continue
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                continue
            if addr.version == 4 and _VERSION_CONTEXT.search(text[:m.start()]) and "versions" in not_pii:
                continue  # version 1.2.3.4
            if "special_ips" in not_pii and special_ip(addr):
                continue
            prefix = re.match(r"/(\d{1,3})\b", text[m.end():])
            if prefix and "special_ips" in not_pii and _network_address(value, prefix.group(1)):
                continue  # 10.0.0.0/8 names a range, not a host
            out.append(Finding(kind, m.start(), m.end()))
    elif kind == "phone":
        out = [Finding(kind, m.start(), m.end()) for m in _PHONE.finditer(text)
               if _phone_ok(text, m) and not technical.covers(m.start(), m.end())]
    return out


# order matters: a more specific type claims its span first (a card is not also a phone)
_ORDER = ("secret", "email", "iban", "card", "ssn", "ip", "phone")


def detect(text: str, types: tuple[str, ...] | list[str] = ALL_TYPES,
           not_pii: tuple[str, ...] | list[str] = NOT_PII) -> list[Finding]:
    """Non-overlapping findings in `text`, in order of position."""
    if not isinstance(text, str) or not text:
        return []
    not_pii = tuple(not_pii)
    technical = _Technical(text, not_pii)
    taken: list[Finding] = []
    for kind in _ORDER:
        if kind not in types:
            continue
        for f in _find(text, kind, technical, not_pii):
            if not any(f.start < t.end and t.start < f.end for t in taken):
                taken.append(f)
    return sorted(taken, key=lambda f: f.start)


def measure(snippets: list[dict], types: tuple[str, ...] = ALL_TYPES,
            not_pii: tuple[str, ...] | list[str] = NOT_PII) -> dict:
    """Precision and recall per type on labelled snippets ({text, pii: [{type, value}], kind}).

    A finding is a true positive when it overlaps a labelled span of its type; `technical`
    gives the precision on snippets of kind "technical" (all types together).
    """
    tp, fp, fn = Counter(), Counter(), Counter()
    tech_tp = tech_fp = 0
    for s in snippets:
        text = s["text"]
        gold = []
        for label in s.get("pii", []):
            start = text.find(label["value"])
            if start < 0:
                raise ValueError(f"labelled value {label['value']!r} not in {text!r}")
            gold.append((label["type"], start, start + len(label["value"])))
        found = detect(text, types, not_pii)
        matched = set()
        for f in found:
            hit = next((g for g in gold if g[0] == f.type and f.start < g[2] and g[1] < f.end), None)
            if hit:
                tp[f.type] += 1
                matched.add(hit)
            else:
                fp[f.type] += 1
            if s.get("kind") == "technical":
                tech_tp, tech_fp = tech_tp + bool(hit), tech_fp + (not hit)
        for g in gold:
            if g not in matched:
                fn[g[0]] += 1
    per_type = {}
    for t in types:
        p = tp[t] / (tp[t] + fp[t]) if tp[t] + fp[t] else 1.0
        r = tp[t] / (tp[t] + fn[t]) if tp[t] + fn[t] else 1.0
        per_type[t] = {"precision": round(p, 4), "recall": round(r, 4), "tp": tp[t], "fp": fp[t], "fn": fn[t]}
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {"per_type": per_type,
            "overall": {"precision": round(total_tp / (total_tp + total_fp), 4) if total_tp + total_fp else 1.0,
                        "recall": round(total_tp / (total_tp + total_fn), 4) if total_tp + total_fn else 1.0},
            "technical_precision": round(tech_tp / (tech_tp + tech_fp), 4) if tech_tp + tech_fp else 1.0,
            "technical_findings": tech_tp + tech_fp, "snippets": len(snippets)}


def load_labelled(path: str | Path) -> list[dict]:
    """A labelled snippet set: one JSON object a line ({text, kind, pii: [{type, value}]})."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
