"""Connected components over Ray Data by hash-to-min rounds, for edge lists too large for one task.

Each round is a hash shuffle on `src` in which every key's group sends its smallest neighbour to
all of them; it converges in O(log n) rounds (a fingerprint of the whole edge set stops changing).
Dedupe (llmft.data.dedupe_ray) uses it above `cc_local_max` verified edges.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from llmft.data.dedupe import SEP

if TYPE_CHECKING:
    from ray.data import Dataset


def _hash_to_min(batch: dict) -> dict:
    """One hash-to-min round on the groups of `src` held by this block."""
    src = np.asarray(batch["src"]).astype(str)
    dst = np.asarray(batch["dst"]).astype(str)
    if not len(src):
        return {"src": np.zeros(0, object), "dst": np.zeros(0, object)}
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    group_min = dst[starts]  # dst is sorted within each src group
    mins = np.repeat(group_min, np.diff(np.r_[starts, len(src)]))
    out_src = np.r_[mins, dst]
    out_dst = np.r_[dst, mins]
    pairs = np.unique(np.char.add(np.char.add(out_src, SEP * 2), out_dst))
    split = np.char.partition(pairs, SEP * 2)
    return {"src": split[:, 0].astype(object), "dst": split[:, 2].astype(object)}


def _fingerprint(batch: dict) -> dict:
    acc = 0
    for s, d in zip(batch["src"], batch["dst"]):
        acc ^= int.from_bytes(hashlib.blake2b(f"{s}\x00{d}".encode(), digest_size=8).digest(), "little")
    return {"fp": np.asarray([acc], dtype=np.uint64), "n": np.asarray([len(batch["src"])])}


def components_distributed(edges: "Dataset", num_blocks: int, max_rounds: int = 64) -> dict[str, str]:
    """Connected components by hash-to-min rounds (each a hash shuffle on `src`).

    Converges in O(log n) rounds; only the final (key, label) map for keys on an
    edge comes back to the driver, never the edge list.
    """
    ds = edges.map_batches(lambda b: {"src": np.r_[b["a"], b["b"], b["a"], b["b"]],
                                      "dst": np.r_[b["b"], b["a"], b["a"], b["b"]]}, batch_format="numpy")
    previous = None
    for _ in range(max_rounds):
        ds = ds.repartition(num_blocks, keys=["src"]).map_batches(
            _hash_to_min, batch_format="numpy", batch_size=None).materialize()
        fps = ds.map_batches(_fingerprint, batch_format="numpy", batch_size=None).take_all()
        fp = (sum(int(r["n"]) for r in fps), int(np.bitwise_xor.reduce(np.asarray([r["fp"] for r in fps], np.uint64))) if fps else 0)
        if fp == previous:
            break
        previous = fp
    labels: dict[str, str] = {}
    for b in ds.repartition(num_blocks, keys=["src"]).iter_batches(batch_format="numpy", batch_size=None):
        src, dst = np.asarray(b["src"]).astype(str), np.asarray(b["dst"]).astype(str)
        for s, d in zip(src, dst):
            if s not in labels or d < labels[s]:
                labels[s] = d
    return labels
