"""Test helper: a small curated-format snapshot (Parquet) so training tests need not run curation."""

from __future__ import annotations

import contextlib
import random
import shutil
from pathlib import Path
from typing import Any, Iterator

TOPICS = ["password", "invoice", "printer", "laptop", "refund", "shipping", "account", "license", "router", "badge"]
ACTIONS = ["reset", "update", "cancel", "renew", "check", "replace", "configure", "unlock"]


def qa_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Question/answer pairs of varied length with a learnable pattern (topic -> answer template)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic, action = rng.choice(TOPICS), rng.choice(ACTIONS)
        extra = " ".join(rng.choice(TOPICS) for _ in range(rng.randint(0, 12)))
        q = f"How do I {action} my {topic}? {extra}".strip()
        steps = " ".join(f"Step {k + 1}: open the {topic} page and choose {action}." for k in range(rng.randint(1, 5)))
        out.append((q, f"To {action} your {topic}, follow these steps. {steps}"))
    return out


def write_curated_snapshot(out_dir: Path, tokenizer, n_train: int = 96, n_val: int = 16, seed: int = 0) -> Path:
    """Write `part-0.parquet` with the curated columns (prompt rendered with the chat template)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (q, a) in enumerate(qa_pairs(n_train + n_val, seed)):
        messages = [{"role": "user", "content": q}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        rows.append({"id": f"ex-{i:05d}", "split": "train" if i < n_train else "validation", "prompt": prompt,
                     "completion": a + tokenizer.eos_token, "messages": str(messages + [{"role": "assistant", "content": a}]),
                     "source_snapshot": "raw-test", "replay": False})
    pq.write_table(pa.Table.from_pylist(rows), out_dir / "part-0.parquet")
    return out_dir


@contextlib.contextmanager
def training_store(home: Path, mlflow_db_template: Path, snapshot_dir: Path) -> Iterator[Any]:
    """A store in `home` (MLflow DB from the session's template) with tenant acme and dataset support's curated
    snapshot `snap-support-1` at `snapshot_dir`: what a training job or sweep test submits against."""
    from llmft.store import Store

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_db_template, home / "mlflow.db")
    store = Store()
    store.create_tenant("acme", "admin")
    store.add_snapshot(tenant="acme", dataset="support", snapshot_id="snap-support-1", uri=str(snapshot_dir),
                       classification="internal", row_count=112, kind="curated", actor="test")
    try:
        yield store
    finally:
        store.close()
