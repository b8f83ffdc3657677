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
Rows cut from documents (llmft.data.documents) have an empty prompt and "[]" messages: style
`text` (continued pretraining) ends the completion with eos, so the loss covers the whole chunk;
style `passages` keeps the chunk as it is, for a synthesis step; `extra` holds page, section and
byte offset.
Training tokenises prompt and completion separately and masks the prompt
tokens with `tokenize_example` (the one tokenisation: llmft.train imports it; labels are -100 on
the prompt, so the loss covers only the response; past the length limit the prompt is cut from
the left, or the row dropped, never the answer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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
    if style in ("text", "passages"):  # document chunks: no prompt; text rows end in eos, passages stay raw
        return {"prompt": "", "completion": response + (eos if style == "text" else ""), "messages": "[]"}
    if style == "alpaca":
        return {"prompt": alpaca_prompt(prompt, system_prompt), "completion": response.strip() + eos,
                "messages": "[]"}
    return format_conversation(chat_messages(prompt, response, system_prompt), style=style, tokenizer=tokenizer)


def format_conversation(messages: list[dict], *, style: str, tokenizer: Any, system_prompt: str | None = None) -> dict:
    """{prompt, completion, messages} for a conversation ending with the assistant's answer (the only target).

    `system_prompt` applies when the conversation has no system message of its own. Alpaca style
    writes earlier turns into the instruction as `User: ...` / `Assistant: ...` paragraphs.
    """
    eos = getattr(tokenizer, "eos_token", None) or ""
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    answer = messages[-1]["content"]
    if style == "alpaca":
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        turns = [m for m in messages[:-1] if m["role"] != "system"]
        instruction = turns[0]["content"] if len(turns) == 1 else "\n\n".join(
            f"{m['role'].capitalize()}: {m['content']}" for m in turns)
        return {"prompt": alpaca_prompt(instruction, system), "completion": answer.strip() + eos, "messages": "[]"}
    rendered = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return {"prompt": rendered, "completion": answer + eos, "messages": json.dumps(messages, ensure_ascii=False)}


IGNORE = -100  # label of a token that is not a training target (PyTorch cross-entropy's ignore_index)
TRUNCATIONS = ("cut_prompt", "drop")


@dataclass(frozen=True)
class Example:
    """One tokenised example: ids and labels of equal length (prompt labels are IGNORE).

    `cut` counts the prompt tokens removed from the left to fit the length limit (0: whole prompt).
    """

    input_ids: list[int]
    labels: list[int]
    cut: int = 0

    @property
    def n_loss_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)

    @property
    def loss_mask(self) -> list[int]:
        """1 where the token is a target (the response), 0 on the prompt."""
        return [int(t != IGNORE) for t in self.labels]


def loss_mask_for(prompt_ids: list[int], completion_ids: list[int]) -> list[int]:
    """0 for every prompt token, 1 for every completion token: the loss covers only the response."""
    return [0] * len(prompt_ids) + [1] * len(completion_ids)


def tokenize_example(tokenizer: Any, prompt: str, completion: str, max_len: int | None = None,
                     truncation: str = "cut_prompt") -> Example | None:
    """Encode prompt and completion separately (labels IGNORE on the prompt); the one tokenisation training uses.

    Past `max_len` the answer is kept whole: `cut_prompt` removes prompt tokens from the left (the
    end of the prompt, next to the answer, stays), `drop` returns None. None also when the answer
    alone leaves no room for one prompt token, or is empty. Cutting the answer instead would train
    the model on answers that stop mid-way.
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation={truncation!r}: expected one of {', '.join(TRUNCATIONS)}")
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not c:
        return None
    cut = 0
    if max_len is not None and len(p) + len(c) > max_len:
        room = max_len - len(c)
        if truncation == "drop" or room < 1:
            return None
        cut = len(p) - room
        p = p[cut:]
    return Example(list(p) + list(c), [IGNORE] * len(p) + list(c), cut)


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
