"""Dataset row formats as users write them: prompt/response, Alpaca and chat messages, with a field mapping.

  prompt_response  {"prompt": ..., "response": ...}
  alpaca           {"instruction": ..., "input": ... (optional), "output": ...}
  messages         {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}
                   ending with the assistant answer the model learns; earlier turns are context

Any row may also carry `system` (a per-row system prompt) and `id`. `format.fields` maps these
names to the dataset's own (`{prompt: question, response: answer}`). With `format.input: auto`
each row's format is the one whose required fields it has; a row that fits none or several
gets a counted status naming the problem (`missing_field:<name>`, `ambiguous_format`), never a
crash. Every row becomes one `Conversation`, so the rest of curation (PII, filters, dedupe,
formatting) and the eval suites read one shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

INPUTS = ("auto", "prompt_response", "alpaca", "messages")
NAMES = ("prompt", "response", "instruction", "input", "output", "messages", "system", "id")
REQUIRED = {"messages": ("messages",), "alpaca": ("instruction", "output"), "prompt_response": ("prompt", "response")}
OPTIONAL = {"messages": (), "alpaca": ("input",), "prompt_response": ()}
ROLES = ("system", "user", "assistant")


def field_map(fields: Mapping[str, str] | None = None) -> dict[str, str]:
    """Canonical name -> the dataset's field name (identity for names not mapped)."""
    out = {n: n for n in NAMES}
    out.update(fields or {})
    return out


@dataclass(frozen=True)
class Conversation:
    """A row as chat messages; the last one is the answer (assistant), a system message only comes first."""

    messages: tuple[dict, ...]

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else None

    @property
    def turns(self) -> list[dict]:
        """The messages before the answer, without the system message."""
        return [m for m in self.messages[:-1] if m["role"] != "system"]

    @property
    def prompt(self) -> str:
        """Everything the model is shown before the answer, as text (for filters and dedupe)."""
        turns = self.turns
        if len(turns) == 1:
            return turns[0]["content"]
        return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in turns)

    @property
    def simple(self) -> bool:
        """One user turn and no system message of its own: formatted as a plain prompt/response pair."""
        return len(self.messages) == 2


def source_fields(layout: str, fields: Mapping[str, str]) -> list[str]:
    """The dataset fields of `layout` whose text reaches training (what PII scanning must cover)."""
    return [fields[n] for n in (*REQUIRED[layout], *OPTIONAL[layout], "system")]


def detect(record: dict, wanted: str, fields: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(layout, None), or (None, status) naming why the row fits no layout."""
    if wanted != "auto":
        missing = [fields[n] for n in REQUIRED[wanted] if record.get(fields[n]) is None]
        return (None, f"missing_field:{missing[0]}") if missing else (wanted, None)
    complete = [k for k, need in REQUIRED.items() if all(record.get(fields[n]) is not None for n in need)]
    if len(complete) == 1:
        return complete[0], None
    if complete:
        return None, "ambiguous_format"
    # name the first missing field of the layout the row comes closest to (messages > alpaca > prompt_response)
    best = max(REQUIRED, key=lambda k: sum(record.get(fields[n]) is not None for n in REQUIRED[k]))
    if not any(record.get(fields[n]) is not None for n in REQUIRED[best]):
        return None, "unknown_format"
    return None, f"missing_field:{next(fields[n] for n in REQUIRED[best] if record.get(fields[n]) is None)}"


def _text(record: dict, name: str, required: bool) -> tuple[str | None, str | None]:
    value = record.get(name)
    if value is None and not required:
        return None, None
    if not isinstance(value, str):
        return None, f"wrong_type:{name}"
    return value, None


def messages_of(value: Any, name: str, need_answer: bool = True) -> tuple[list[dict] | None, str | None]:
    """A validated list of {role, content}; `need_answer`: it must end with the assistant's answer."""
    if isinstance(value, str):  # CSV cells hold the list as JSON text
        try:
            value = json.loads(value)
        except ValueError:
            return None, f"wrong_type:{name}"
    if hasattr(value, "tolist"):  # a numpy array from a Parquet list column
        value = value.tolist()
    if not isinstance(value, list) or not value:
        return None, f"wrong_type:{name}"
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return None, f"malformed_messages:item_{i}"
        if m["role"] == "system" and i:
            return None, "malformed_messages:system_not_first"
        out.append({"role": m["role"], "content": m["content"]})
    if need_answer and out[-1]["role"] != "assistant":
        return None, "malformed_messages:last_not_assistant"
    if not any(m["role"] == "user" for m in out):
        return None, "malformed_messages:no_user_turn"
    return out, None


def conversation(record: dict, layout: str, fields: Mapping[str, str]) -> tuple[Conversation | None, str | None]:
    """The row as a Conversation, or (None, status) for a wrong type or malformed messages."""
    system, bad = _text(record, fields["system"], required=False)
    if bad:
        return None, bad
    if layout == "messages":
        msgs, bad = messages_of(record.get(fields["messages"]), fields["messages"])
        if bad:
            return None, bad
        if system and msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": system}, *msgs]
        return Conversation(tuple(msgs)), None
    if layout == "alpaca":
        instruction, bad = _text(record, fields["instruction"], True)
        extra, bad2 = _text(record, fields["input"], False)
        answer, bad3 = _text(record, fields["output"], True)
        if bad or bad2 or bad3:
            return None, bad or bad2 or bad3
        prompt = f"{instruction.strip()}\n\n{extra.strip()}" if extra and extra.strip() else instruction
    else:
        prompt, bad = _text(record, fields["prompt"], True)
        answer, bad2 = _text(record, fields["response"], True)
        if bad or bad2:
            return None, bad or bad2
    head = [{"role": "system", "content": system}] if system else []
    return Conversation((*head, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer})), None


def parse(record: dict, wanted: str, fields: Mapping[str, str]) -> tuple[str | None, Conversation | None, str | None]:
    """(layout, conversation, None) or (layout or None, None, status): detection then validation."""
    layout, status = detect(record, wanted, fields)
    if status:
        return None, None, status
    conv, status = conversation(record, layout, fields)
    return layout, conv, status


HINT = ("rows need prompt/response, instruction/output (Alpaca) or messages (chat); map other names with "
        "format.fields, e.g. {prompt: question, response: answer}")


def explain(status: str, where: str, record: dict | None = None) -> str:
    """One line for a row's format status, naming the row and the field (`line 3 of a.jsonl: ...`)."""
    kind, _, name = status.partition(":")
    has = f" (it has {', '.join(sorted(map(str, record))[:8])})" if record else ""
    if kind == "missing_field":
        return f"{where}: missing field {name!r}{has}; {HINT}"
    if kind == "wrong_type":
        return f"{where}: field {name!r} has the wrong type (text expected; messages: a list of {{role, content}})"
    if kind == "malformed_messages":
        return f"{where}: messages malformed ({name.replace('_', ' ')}): a list of {{role, content}} with roles " \
               f"system (first only), user, assistant, ending with the assistant's answer"
    if kind == "ambiguous_format":
        return f"{where}: fits more than one format{has}; set format.input to prompt_response, alpaca or messages"
    if kind == "unknown_format":
        return f"{where}: no known fields{has}; {HINT}"
    return f"{where}: {status}"
