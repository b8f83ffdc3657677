"""Generators of fake but well-formed PII and secrets, planted in the sample data with their ground truth.

Each generator returns (text as written, kind). Check digits are real (Luhn for cards,
ISO 7064 mod-97 for IBANs) so validating detectors can be tested, not just regexes;
the checks themselves are the detector's (`llmft.data.pii.luhn_ok` / `iban_ok`).
"""

from __future__ import annotations

import random
import string

from llmft.data.pii import luhn_ok

_ALNUM = string.ascii_letters + string.digits
_B64 = string.ascii_letters + string.digits + "+/"


def _luhn_digit(body: str) -> str:
    for check in "0123456789":
        if luhn_ok(body + check):
            return check
    raise AssertionError("unreachable")


def _iban_remainder(country: str, check: str, bban: str) -> int:
    rearranged = bban + country + check
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97


_CARD_BRANDS = [("visa", ["4"], 16), ("mastercard", ["51", "52", "53", "54", "55"], 16), ("amex", ["34", "37"], 15)]


def card(rng: random.Random) -> tuple[str, str]:
    brand, prefixes, length = rng.choice(_CARD_BRANDS)
    body = rng.choice(prefixes)
    body += "".join(rng.choice(string.digits) for _ in range(length - 1 - len(body)))
    number = body + _luhn_digit(body)
    style = rng.choice(["space", "dash", "plain"])
    if style == "plain":
        return number, brand
    sep = " " if style == "space" else "-"
    groups = [number[:4], number[4:10], number[10:]] if length == 15 else [number[i : i + 4] for i in range(0, 16, 4)]
    return sep.join(groups), brand


def ssn(rng: random.Random) -> tuple[str, str]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    sep = "-" if rng.random() < 0.8 else " "
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}", "ssn"


# country -> BBAN layout: 'n' digit, 'a' upper-case letter
_IBAN_LAYOUTS = {"DE": "n" * 18, "GB": "aaaa" + "n" * 14, "NL": "aaaa" + "n" * 10, "FR": "n" * 23, "ES": "n" * 20}


def iban(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(_IBAN_LAYOUTS))
    bban = "".join(rng.choice(string.digits if c == "n" else string.ascii_uppercase) for c in _IBAN_LAYOUTS[country])
    check = f"{98 - _iban_remainder(country, '00', bban):02d}"
    compact = country + check + bban
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)), country
    return compact, country


def phone(rng: random.Random) -> tuple[str, str]:
    area, line = rng.choice([212, 303, 312, 415, 512, 617, 646, 720, 808, 917]), rng.randint(100, 9999)
    exch = rng.randint(201, 989)
    style = rng.choice(["paren", "dash", "dot", "e164", "uk", "de"])
    if style == "paren":
        return f"({area}) {exch}-{line:04d}", "us"
    if style == "dash":
        return f"{area}-{exch}-{line:04d}", "us"
    if style == "dot":
        return f"{area}.{exch}.{line:04d}", "us"
    if style == "e164":
        return f"+1 {area} {exch} {line:04d}", "us_intl"
    if style == "uk":
        return f"+44 20 {rng.randint(3000, 8999)} {rng.randint(1000, 9999)}", "uk"
    return f"+49 30 {rng.randint(200000, 999999)}", "de"


def ipv4(rng: random.Random) -> tuple[str, str]:
    # not the documentation ranges (192.0.2.0/24 ...): the detector rightly leaves those alone
    prefix = rng.choice(["81.2.69", "100.64.17", "85.214.132", "10.{}.{}", "192.168.{}", "172.16.{}"])
    prefix = prefix.format(*(rng.randint(0, 254) for _ in range(prefix.count("{}"))))
    return f"{prefix}.{rng.randint(2, 254)}", "ipv4"


def ipv6(rng: random.Random) -> tuple[str, str]:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(6)]
    style = rng.choice(["full", "compressed", "link_local"])
    if style == "full":
        return "2a02:8070:" + ":".join(groups), "ipv6"  # not 2001:db8::/32, the documentation prefix
    if style == "compressed":
        return f"fd12:3456:{groups[0]}::{groups[1]}:{groups[2]}", "ipv6"
    return f"fe80::{groups[0]}:{groups[1]}:{groups[2]}:{groups[3]}", "ipv6"


def secret(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["aws_access_key", "github_token", "openai_key", "high_entropy"])
    if kind == "aws_access_key":
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16)), kind
    if kind == "github_token":
        return "ghp_" + "".join(rng.choice(_ALNUM) for _ in range(36)), kind
    if kind == "openai_key":
        return "sk-" + "".join(rng.choice(_ALNUM) for _ in range(48)), kind
    return "".join(rng.choice(_B64) for _ in range(40)), kind


def email(rng: random.Random, first: str, last: str, domain: str) -> tuple[str, str]:
    first, last = first.lower(), last.lower()
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}", f"{first}_{last[:3]}"])
    return f"{local}@{domain}", "work" if not domain.endswith("mail.com") else "personal"


GENERATORS = {"card": card, "ssn": ssn, "iban": iban, "phone": phone, "ipv4": ipv4, "ipv6": ipv6, "secret": secret}
