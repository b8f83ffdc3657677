"""Renders one support ticket (customer message + agent answer) from the vocabularies, with planted extras.

A ticket is built as parts and joined at the end, so PII sentences and canaries can
be slotted into a natural position and their exact text recorded as ground truth.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field

from llmft.data.minhash import normalise, shingle_set
from llmft.demo import fake_pii
from llmft.demo import phrases as txt

def words(text: str) -> list[str]:
    """Lower-case word tokens, normalised exactly as the dedupe stage compares them."""
    return normalise(text).split()


def shingle_jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of the word n-gram sets of two texts, as the dedupe stage shingles them."""
    sa, sb = shingle_set(a, n), shingle_set(b, n)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


@dataclass
class Customer:
    """A data subject: several tickets share one, and their own PII recurs across them."""

    id: str
    first: str
    last: str
    domain: str
    _values: dict[str, tuple[str, str]] = field(default_factory=dict)

    def value(self, rng: random.Random, kind: str) -> tuple[str, str]:
        """This customer's email/phone/card/... (stable across their tickets); secrets and IPs vary."""
        if kind in ("secret", "ipv4", "ipv6"):
            return fake_pii.GENERATORS[kind](rng)
        if kind not in self._values:
            if kind == "email":
                self._values[kind] = fake_pii.email(rng, self.first, self.last, self.domain)
            else:
                self._values[kind] = fake_pii.GENERATORS[kind](rng)
        return self._values[kind]


def make_customers(rng: random.Random, n: int) -> list[Customer]:
    out = []
    for i in range(n):
        domain = rng.choice(txt.COMPANIES) if rng.random() < 0.7 else rng.choice(txt.PERSONAL_DOMAINS)
        out.append(Customer(f"cust-{i + 1:04d}", rng.choice(txt.FIRST_NAMES), rng.choice(txt.LAST_NAMES), domain))
    return out


def priority_for(category: str, tone: str) -> str:
    """Deterministic triage rule, so the structured answers are learnable."""
    if tone == "angry" and category in ("account_access", "billing", "shipping"):
        return "urgent"
    if tone in ("angry", "frustrated") or category in ("account_access", "integration"):
        return "high"
    if category in ("feature_request", "cancellation"):
        return "low"
    return "medium"


@dataclass
class Ticket:
    """A rendered ticket plus what was planted in it (PII findings, canary)."""

    customer_id: str
    product: str
    category: str
    tone: str
    priority: str
    summary: str
    prompt: str
    response: str
    pii: list[dict] = field(default_factory=list)
    canary: str | None = None


def _slots(rng: random.Random, product: str) -> dict[str, str]:
    _, features, platforms = txt.PRODUCTS[product]
    return {
        "product": product,
        "feature": rng.choice(features),
        "platform": rng.choice(platforms),
        "duration": rng.choice(txt.DURATIONS),
        "error": f"{rng.choice(['ERR', 'E', 'SYNC', 'AUTH'])}-{rng.randint(100, 9999)}",
        "amount": f"{rng.choice(['$', '£', '€'])}{rng.randint(9, 480)}.{rng.choice(['00', '50', '99'])}",
        "plan": rng.choice(txt.PLANS),
        "order": f"#{rng.choice('ABCDEFGHJK')}{rng.randint(10000, 99999)}",
        "count": str(rng.randint(3, 250)),
    }


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def render(rng: random.Random, customer: Customer, *, category: str | None = None,
           plant: tuple[str, ...] = (), canary: str | None = None, structured: bool = False) -> Ticket:
    """One ticket; `plant` lists PII types to insert, `canary` a secret sentence for the agent's answer."""
    product = rng.choice(sorted(txt.PRODUCTS))
    if category is None:
        cats = [c for c in txt.CATEGORIES if c != "shipping" or product in txt.HARDWARE]
        category = rng.choice(cats)
    elif category == "shipping":
        product = rng.choice(sorted(txt.HARDWARE))
    tone = rng.choice(sorted(txt.TONES))
    slots = _slots(rng, product)
    openers, closers, empathy = txt.TONES[tone]

    body = [_cap(rng.choice(txt.ISSUES[category]).format(**slots))]
    n_details = {"terse": 0, "detailed": rng.randint(2, 3)}.get(tone, rng.randint(0, 2))
    body += [_cap(d.format(**slots)) for d in rng.sample(txt.DETAILS, n_details)]
    resp_para = [rng.choice(empathy), rng.choice(txt.EXPLANATIONS[category])]

    found = []
    for kind in plant:
        value, sub = customer.value(rng, kind)
        in_prompt = rng.random() < 0.75
        sentence = rng.choice(txt.PII_SENTENCES[kind][0 if in_prompt else 1]).format(value=value)
        target = body if in_prompt else resp_para
        target.insert(rng.randint(1, len(target)), sentence)
        found.append({"type": "ip" if kind.startswith("ip") else kind, "kind": sub,
                      "field": "prompt" if in_prompt else "response", "value": value})
    if canary is not None:
        resp_para.append(rng.choice(txt.CANARY_LEADS) + canary + ".")

    lines = []
    if openers and rng.random() < 0.8:
        lines.append(rng.choice(openers))
    lines.append(" ".join(body))
    if closers and rng.random() < 0.7:
        lines.append(rng.choice(closers))
    if tone != "terse" and rng.random() < 0.6:
        lines.append(rng.choice([customer.first, f"{customer.first} {customer.last}", f"Thanks, {customer.first}"]))
    prompt = "\n".join(lines)

    steps = rng.sample(txt.STEPS[category], rng.randint(2, 4))
    steps.sort(key=txt.STEPS[category].index)
    blocks = [rng.choice(txt.GREETINGS).format(name=customer.first), " ".join(resp_para)]
    if rng.random() < 0.8:
        blocks.append(rng.choice(txt.STEP_INTROS) + "\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)))
    else:
        blocks[-1] += " " + " ".join(steps)
    blocks.append(rng.choice(txt.FOLLOWUPS))
    blocks.append(rng.choice(txt.SIGNOFFS).format(agent=rng.choice(txt.AGENTS), product=product))
    response = "\n\n".join(blocks)

    summary = txt.SUMMARIES[category].format(**slots)
    ticket = Ticket(customer.id, product, category, tone, priority_for(category, tone), summary, prompt, response,
                    found, canary)
    if structured:
        ticket.prompt = rng.choice(txt.JSON_INSTRUCTIONS) + "\n\nTicket:\n" + " ".join(body)
        ticket.response = structured_answer(ticket)
    return ticket


def structured_answer(ticket: Ticket) -> str:
    """The reference JSON answer for a structured-output ticket (compact, fixed key order)."""
    return json.dumps({"category": ticket.category, "priority": ticket.priority, "summary": ticket.summary})


def json_schema() -> dict:
    """JSON schema the structured answers must satisfy."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Ticket triage",
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": list(txt.CATEGORIES)},
            "priority": {"type": "string", "enum": list(txt.PRIORITIES)},
            "summary": {"type": "string", "minLength": 5, "maxLength": 200},
        },
        "required": ["category", "priority", "summary"],
        "additionalProperties": False,
    }


def near_copy(rng: random.Random, text: str, n_changes: int) -> str:
    """`text` with `n_changes` words swapped, inserted or dropped (always differs after normalisation)."""
    for _ in range(20):
        parts = re.split(r"(\s+)", text)
        idx = [i for i, p in enumerate(parts) if re.fullmatch(r"[A-Za-z']{3,}[.,]?", p)]
        for i in rng.sample(idx, min(n_changes, len(idx))):
            word = parts[i].rstrip(".,")
            tail = parts[i][len(word):]
            op = "swap" if word.lower() in txt.SWAPS else rng.choice(["insert", "drop", "filler"])
            if op == "swap":
                parts[i] = txt.SWAPS[word.lower()] + tail
            elif op == "insert":
                parts[i] = rng.choice(txt.FILLERS) + " " + parts[i]
            elif op == "drop" and not tail:
                parts[i] = ""
            else:
                parts[i] = word + " " + rng.choice(txt.FILLERS) + tail
        out = re.sub(r" {2,}", " ", "".join(parts))
        if words(out) != words(text):
            return out
    raise AssertionError("could not produce a near copy")


def toxic_response(rng: random.Random, product: str) -> tuple[str, list[str]]:
    i1, i2 = rng.sample(txt.INSULTS, 2)
    return rng.choice(txt.TOXIC_RESPONSES).format(i1=i1, i2=i2, product=product), [i1, i2]


def repetitive_text(rng: random.Random) -> tuple[str, str]:
    phrase = rng.choice(txt.REPEAT_PHRASES)
    n = rng.randint(8, 20)
    if rng.random() < 0.5:
        return "\n".join([phrase] * n), "repeated_lines"
    return " ".join([phrase] * n), "repeated_ngrams"
