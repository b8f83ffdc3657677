"""When generation stops: stop sequences cut from text, and per-row stopping criteria for `generate`."""

from __future__ import annotations

import threading
from typing import Any


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Text up to the earliest stop sequence, and whether one was found."""
    hits = [text.find(s) for s in stops if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)


class RowStops:
    """Per-row stopping: a row is done at its own max_tokens, at eos, or at one of its stop strings."""

    def __init__(self, tokenizer: Any, width: int, limits: list[int], stops: list[tuple[str, ...]]):
        self.tokenizer, self.width, self.limits, self.stops = tokenizer, width, limits, stops
        self.eos = tokenizer.eos_token_id

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        n = input_ids.shape[1] - self.width
        done = []
        for row, limit in enumerate(self.limits):
            new = input_ids[row, self.width:]
            finished = n >= limit or bool((new == self.eos).any())
            if not finished and self.stops[row]:
                text = self.tokenizer.decode(new.tolist(), skip_special_tokens=True)
                finished = cut_at_stop(text, self.stops[row])[1]
            done.append(finished)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class FlagStop:
    def __init__(self, flag: threading.Event):
        self.flag = flag

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.flag.is_set(), dtype=torch.bool, device=input_ids.device)
