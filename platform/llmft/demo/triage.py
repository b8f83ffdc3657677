"""The structured triage task: a ticket in, a compact JSON verdict out, with the truth known by construction.

Every label is planted in the text so a small model can learn it: the product is
named, the category follows from the issue sentence, the tone (opener and closer
always present) and the category decide the priority and whether a person must
step in. The label space is kept small (4 products, 5 categories, 3 priorities,
a boolean).
Held-out tickets belong to customers who have no ticket in the training rows.
On the 4M-parameter tiny base a few hundred steps of LoRA with a trainable input embedding and
output head (`lora.modules_to_save`), or of full fine-tuning, learn the labels; LoRA on the
projections alone learns the JSON format but answers each label at its overall frequency.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace

from llmft.demo import phrases as txt
from llmft.demo.tickets import Customer, _cap, _slots, make_customers

PRODUCTS = ("Nimbus Drive", "LedgerLite", "PulseHR", "Orbit CRM")
CATEGORIES = ("account_access", "billing", "bug", "feature_request", "cancellation")
PRIORITIES = ("low", "medium", "high")
FIELDS = ("product", "category", "priority", "needs_human")
INSTRUCTION = "Triage this ticket. Reply with JSON only."


def triage_priority(category: str, tone: str) -> str:
    """Upset customers and lock-outs first, wishes and goodbyes last."""
    if tone in ("angry", "frustrated") or category == "account_access":
        return "high"
    if category in ("feature_request", "cancellation"):
        return "low"
    return "medium"


def needs_human(category: str, tone: str) -> bool:
    """Money, goodbyes and angry customers go to a person."""
    return tone == "angry" or category in ("billing", "cancellation")


@dataclass(frozen=True)
class TriageTicket:
    customer_id: str
    text: str
    product: str
    category: str
    tone: str

    @property
    def labels(self) -> dict:
        return {"product": self.product, "category": self.category,
                "priority": triage_priority(self.category, self.tone),
                "needs_human": needs_human(self.category, self.tone)}

    @property
    def prompt(self) -> str:
        return f"{INSTRUCTION}\n\nTicket:\n{self.text}"

    @property
    def answer(self) -> str:
        return answer_json(self.labels)


def answer_json(labels: dict) -> str:
    """The reference answer: compact JSON with a fixed key order (few tokens, one right spelling)."""
    return json.dumps({k: labels[k] for k in FIELDS}, separators=(",", ":"))


def render_triage(rng: random.Random, customer: Customer) -> TriageTicket:
    """One triage ticket: the form's product line, opener, issue (+ one detail), product sentence, closer."""
    product = rng.choice(PRODUCTS)
    category = rng.choice(CATEGORIES)
    tone = rng.choice(sorted(txt.TONES))
    slots = _slots(rng, product)
    openers, closers, _ = txt.TONES[tone]
    body = [_cap(rng.choice(txt.ISSUES[category]).format(**slots))]
    if tone == "detailed":
        body.append(_cap(rng.choice(txt.DETAILS).format(**slots)))
    if product not in " ".join(body):
        body.insert(rng.randint(0, len(body)), rng.choice(txt.PRODUCT_MENTIONS).format(**slots))
    # The helpdesk form's product picker heads the ticket, as it does in the tools tickets come from.
    lines = [f"Product: {product}"] + ([rng.choice(openers)] if openers else []) + [" ".join(body)]
    lines += [rng.choice(closers)] if closers else []
    return TriageTicket(customer.id, "\n".join(lines), product, category, tone)


def json_schema() -> dict:
    """JSON schema of a triage answer (also the per-field label space)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Support ticket triage",
        "type": "object",
        "properties": {
            "product": {"type": "string", "enum": list(PRODUCTS)},
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "priority": {"type": "string", "enum": list(PRIORITIES)},
            "needs_human": {"type": "boolean"},
        },
        "required": list(FIELDS),
        "additionalProperties": False,
    }


def triage_sets(rng: random.Random, n_train: int, n_eval: int) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out eval rows); no customer of the eval rows has a training row, no prompt repeats."""
    # ids from cust-5001 up: other people than the reply-writing tickets' customers
    customers = [replace(c, id=f"cust-{5000 + i + 1:04d}")
                 for i, c in enumerate(make_customers(rng, max(40, (n_train + n_eval) // 4)))]
    held = max(1, len(customers) * n_eval // (n_train + n_eval))
    eval_customers, train_customers = customers[:held], customers[held:]
    seen: set[str] = set()

    def draw(pool: list[Customer], n: int) -> list[TriageTicket]:
        out: list[TriageTicket] = []
        while len(out) < n:
            t = render_triage(rng, rng.choice(pool))
            if t.text not in seen:
                seen.add(t.text)
                out.append(t)
        return out

    train = [{"id": f"tri-{i:05d}", "customer_id": t.customer_id, "product": t.product, "prompt": t.prompt,
              "response": t.answer} for i, t in enumerate(draw(train_customers, n_train), 1)]
    evals = [{"id": f"tri-eval-{i:04d}", "customer_id": t.customer_id, "prompt": t.prompt, "reference": t.answer,
              "expect_json": True, **t.labels} for i, t in enumerate(draw(eval_customers, n_eval), 1)]
    return train, evals


def shuffled_labels(rows: list[dict], seed: int = 1) -> list[dict]:
    """The same rows with answers permuted across tickets: valid JSON, labels unrelated to the text."""
    answers = [r["response"] for r in rows]
    random.Random(seed).shuffle(answers)
    return [{**r, "response": a} for r, a in zip(rows, answers)]


def new_ticket(seed: int = 0) -> TriageTicket:
    """A ticket from a customer who appears in no training or evaluation row (the demo's live query)."""
    rng = random.Random(f"llmft-demo-query/{seed}")
    customer = replace(make_customers(rng, 1)[0], id="cust-9001")
    return render_triage(rng, customer)
