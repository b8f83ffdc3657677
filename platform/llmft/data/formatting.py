"""Instruction / chat formatting, loss masks and the deterministic split.

CONTRACT (training reads this): a curated snapshot directory holds Parquet
file(s), one row per example, with columns
  id (str), split ("train" | "validation" | "test"),
  prompt (str: everything the model sees before the answer, rendered with the
    base tokenizer's chat template including the generation prompt for chat
    style, or the Alpaca prompt text),
  completion (str: the answer, with the tokenizer's eos token appended),
  messages (str: JSON list of chat messages; "[]" for alpaca style),
  source_snapshot, source_uri, source_file, source_line, license_class, purpose,
  replay (bool: the row was mixed in from a general-instruction set),
  extra (str: JSON of the other source fields kept for erasure, e.g. customer_id).
Training tokenises prompt and completion separately and masks the prompt
tokens: `loss_mask_for` gives the mask (1 = response token contributes to the loss).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

ALPACA_HEADER = "### Instruction:\n"
ALPACA_RESPONSE = "\n\n### Response:\n"
SPLITS = ("train", "validation", "test")
COLUMNS = ("id", "split", "prompt", "completion", "messages", "source_snapshot", "source_uri", "source_file",
           "source_line", "license_class", "purpose", "replay", "extra")


def alpaca_prompt(instruction: str, system_prompt: str | None = None) -> str:
    head = f"{system_prompt.strip()}\n\n" if system_prompt else ""
    return f"{head}{ALPACA_HEADER}{instruction.strip()}{ALPACA_RESPONSE}"


def chat_messages(prompt: str, response: str, system_prompt: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def format_example(prompt: str, response: str, *, style: str, tokenizer: Any,
                   system_prompt: str | None = None) -> dict:
    """{prompt, completion, messages} for one example (see the module contract)."""
    eos = getattr(tokenizer, "eos_token", None) or ""
    if style == "alpaca":
        return {"prompt": alpaca_prompt(prompt, system_prompt), "completion": response.strip() + eos,
                "messages": "[]"}
    messages = chat_messages(prompt, response, system_prompt)
    rendered = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return {"prompt": rendered, "completion": response + eos, "messages": json.dumps(messages, ensure_ascii=False)}


def loss_mask_for(prompt_ids: list[int], completion_ids: list[int]) -> list[int]:
    """0 for every prompt token, 1 for every completion token: the loss covers only the response."""
    return [0] * len(prompt_ids) + [1] * len(completion_ids)


def tokenize_example(tokenizer: Any, prompt: str, completion: str) -> dict:
    """input_ids, labels (-100 on the prompt) and loss_mask, tokenising the two parts separately."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    mask = loss_mask_for(p, c)
    return {"input_ids": p + c, "labels": [-100] * len(p) + list(c), "loss_mask": mask}


def split_for(key: str, train: float, validation: float, salt: str = "llmft-split") -> str:
    """train / validation / test from a hash of the row key: stable across re-runs and partitionings."""
    u = int(hashlib.sha256(f"{salt}\x00{key}".encode()).hexdigest()[:13], 16) / float(1 << 52)
    if u < train:
        return "train"
    if u < train + validation:
        return "validation"
    return "test"


@lru_cache(maxsize=4)
def cached_tokenizer(ref: str | None) -> Any:
    """The base model's tokenizer, loaded once per worker process (None: whitespace counting, no template)."""
    if ref is None:
        return None
    from llmft.models.loading import load_tokenizer

    return load_tokenizer(ref)
