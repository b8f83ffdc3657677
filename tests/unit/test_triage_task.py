"""The triage task (llmft.demo.triage): labels planted in the text, held-out customers, shuffled labels.

Not here yet: training a good and a shuffled-label adapter and asserting the accuracy gate tells them
apart. On the 4M tiny base, 300 LoRA (or full fine-tuning) steps learn the JSON template (100% valid)
but not the labels (per-field accuracy at chance), so the good adapter cannot pass yet; see
/work/notes/triage.md for the measurements.
"""

from __future__ import annotations

import json
import random
from collections import Counter

from llmft.demo import triage


def test_triage_rows_hold_out_customers_and_labels_follow_the_text():
    train, held = triage.triage_sets(random.Random(0), 400, 40)
    assert not {r["customer_id"] for r in train} & {r["customer_id"] for r in held}
    assert len({r["prompt"] for r in train + held}) == len(train) + len(held)
    for row in held:
        answer = json.loads(row["reference"])
        assert list(answer) == list(triage.FIELDS) and answer == {f: row[f] for f in triage.FIELDS}
        text = row["prompt"]
        assert text.startswith(triage.INSTRUCTION) and answer["product"] in text
    for row in train:
        answer = json.loads(row["response"])
        assert row["response"] == triage.answer_json(answer) and answer["product"] in row["prompt"]
    # every label occurs, none dominates (a model must read the ticket to beat the majority class)
    for field in triage.FIELDS:
        counts = Counter(str(json.loads(r["response"])[field]) for r in train)
        assert len(counts) == len(triage.json_schema()["properties"][field].get("enum", [True, False]))
        assert counts.most_common(1)[0][1] / len(train) < 0.55, (field, counts)
    shuffled = triage.shuffled_labels(train)
    assert sorted(r["response"] for r in shuffled) == sorted(r["response"] for r in train)
    assert sum(a["response"] != b["response"] for a, b in zip(train, shuffled)) > 0.6 * len(train)

