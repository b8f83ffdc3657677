"""What a stage is handed to report on the job it runs in, without knowing the job model.

The job model (`llmft.jobs`) builds a `StageContext` and passes it to a stage's run
function; the stage reports events, checkpoints and partial results through its
`recorder`. Stages never move a job between states: that is the job model's alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


class Recorder(Protocol):
    """A stage's line to its job: progress events, checkpoints and partial results appear while it runs."""

    def event(self, message: str, level: str = "info", data: dict | None = None) -> None: ...

    def checkpoint(self, step: int, uri: str, metrics: dict | None = None, sha256: str | None = None) -> None: ...

    def result(self, partial: dict) -> None: ...


class NullRecorder:
    """For stages run outside any job (library calls, benchmarks): reports go nowhere."""

    def event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        return None

    def checkpoint(self, step: int, uri: str, metrics: dict | None = None, sha256: str | None = None) -> None:
        return None

    def result(self, partial: dict) -> None:
        return None


@dataclass
class StageContext:
    """Everything a stage's run function gets besides its spec."""

    store: Any
    actor: str
    recorder: Recorder = field(default_factory=NullRecorder)
    job_id: str | None = None
    previous_result: dict = field(default_factory=dict)  # what an earlier attempt of this job recorded
    options: dict = field(default_factory=dict)  # kind-specific run options (num_blocks, out_dir, debug, ...)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()
