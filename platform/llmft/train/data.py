"""Tokenise curated prompt/completion rows, batch them padded or packed, in a seeded order.

Tokenisation itself is `llmft.data.formatting.tokenize_example` (one place for data and train):
the loss only covers the completion (prompt tokens get label -100), and a row longer than
`max_seq_len` keeps its answer (the prompt is cut from the left, or the row dropped). Packing
puts several examples in one block with position ids restarting at 0 per example and no 2D
attention mask (and `use_cache=False`: with a KV cache transformers skips this): transformers
then builds a block-diagonal causal mask from the position ids (for eager, sdpa and flash
attention alike), so packed examples never attend to each other; `tests/unit/test_train_core.py` checks the logits match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from llmft.config.training import TrainingSpec
from llmft.data.formatting import IGNORE, Example, tokenize_example

__all__ = ["IGNORE", "BatchSchedule", "Example", "TokenizedSplit", "collate_eval", "collate_packed", "collate_padded",
           "pack", "tokenize_example", "tokenize_rows", "total_steps"]


@dataclass(frozen=True)
class TokenizedSplit:
    """A split's examples and how the length limit treated its rows (reported in the job's events)."""

    examples: list[Example]
    rows: int
    cut: int  # rows whose prompt lost tokens from the left (the answer kept whole)
    dropped: int  # rows left out: answer too long, empty, or truncation=drop

    def summary(self) -> str:
        return f"{self.cut} prompts cut to fit, {self.dropped} dropped as too long"

    def to_dict(self) -> dict:
        return {"rows": self.rows, "examples": len(self.examples), "cut": self.cut, "dropped": self.dropped}


def tokenize_rows(tokenizer: Any, rows: Iterable[dict], max_len: int, truncation: str = "cut_prompt") -> TokenizedSplit:
    """Tokenise rows sorted by id (a stable order whatever the reader's block order), counting cut and dropped rows."""
    out: list[Example] = []
    n = cut = dropped = 0
    for row in sorted(rows, key=lambda r: str(r["id"])):
        n += 1
        ex = tokenize_example(tokenizer, row["prompt"], row["completion"], max_len, truncation)
        if ex is None:
            dropped += 1
        else:
            cut += ex.cut > 0
            out.append(ex)
    return TokenizedSplit(out, n, cut, dropped)


def pack(examples: list[Example], block: int) -> list[list[Example]]:
    """Greedy first-fit packing in the given order: groups whose total length is <= block."""
    groups: list[list[Example]] = []
    current: list[Example] = []
    used = 0
    for ex in examples:
        n = len(ex.input_ids)
        if current and used + n > block:
            groups.append(current)
            current, used = [], 0
        current.append(ex)
        used += n
    if current:
        groups.append(current)
    return groups


def collate_padded(examples: list[Example], pad_id: int) -> dict:
    """Right-pad to the longest example in the batch; the 2D mask hides the padding."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "n_useful": int(mask.sum())}


def collate_packed(groups: list[list[Example]], pad_id: int, block: int) -> dict:
    """One row per group; position ids restart per example so attention stays within each example."""
    import torch

    ids = torch.full((len(groups), block), pad_id, dtype=torch.long)
    labels = torch.full((len(groups), block), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(groups), block), dtype=torch.long)
    for i, group in enumerate(groups):
        at = 0
        for e in group:
            n = len(e.input_ids)
            ids[i, at:at + n] = torch.tensor(e.input_ids)
            lab = list(e.labels)
            lab[0] = IGNORE  # never predict an example's first token from the previous example
            labels[i, at:at + n] = torch.tensor(lab)
            pos[i, at:at + n] = torch.arange(n)
            at += n
        if at < block:  # tail padding is its own segment (positions restart), with no loss
            pos[i, at:] = torch.arange(block - at)
    useful = sum(len(e.input_ids) for g in groups for e in g)
    return {"input_ids": ids, "position_ids": pos, "labels": labels, "n_useful": useful}


class BatchSchedule:
    """The whole epoch's batches for every rank, fixed by (seed, epoch): resumable by position.

    Every worker computes the same global plan and takes its rank's slice, so the
    order does not depend on how Ray scheduled the read, and a replaced worker
    continues exactly where its predecessor stopped.
    """

    def __init__(self, examples: list[Example], batch_size: int, world_size: int, seed: int,
                 packing: bool, block: int, pad_id: int) -> None:
        if not examples:
            raise ValueError("no training examples after tokenisation")
        self.examples = examples
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.packing = packing
        self.block = block
        self.pad_id = pad_id
        self.items_per_epoch = len(pack(examples, block)) if packing else len(examples)
        self.batches_per_epoch = self.items_per_epoch // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{self.items_per_epoch} training {'blocks' if packing else 'examples'} cannot fill one batch of "
                f"{batch_size} on each of {world_size} workers"
            )

    def _items(self, epoch: int) -> list:
        rng = np.random.default_rng([self.seed, epoch])
        order = [self.examples[i] for i in rng.permutation(len(self.examples))]
        return pack(order, self.block) if self.packing else order

    def batches(self, epoch: int, rank: int, start: int = 0):
        """Yield (index, batch) for this rank from batch `start` of `epoch`."""
        items = self._items(epoch)
        per_step = self.batch_size * self.world_size
        for b in range(start, self.batches_per_epoch):
            chunk = items[b * per_step:(b + 1) * per_step][rank::self.world_size]
            if self.packing:
                yield b, collate_packed(chunk, self.pad_id, self.block)
            else:
                yield b, collate_padded(chunk, self.pad_id)


def collate_eval(examples: list[Example], pad_id: int, batch_size: int):
    """Validation batches in a fixed order (padded)."""
    for i in range(0, len(examples), batch_size):
        yield collate_padded(examples[i:i + batch_size], pad_id)


def total_steps(spec: TrainingSpec, batches_per_epoch: int, n_train: int, world_size: int) -> int:
    """Optimizer steps of a run: `optim.max_steps`, else its epochs (DP: epochs of Poisson batches)."""
    import math

    if spec.optim.max_steps:
        return spec.optim.max_steps
    if spec.privacy.enabled:
        q = min(1.0, spec.optim.batch_size * world_size / n_train)
        return max(1, math.floor(spec.optim.epochs * math.ceil(1 / q)))
    return max(1, math.floor(spec.optim.epochs * batches_per_epoch / spec.optim.grad_accum))

