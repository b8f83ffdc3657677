"""What crosses the engine boundary: the one request object, sampling parameters, results, errors.

`GenerationRequest` is the payload from the gateway to a replica and on into the engine: the
gateway resolves the adapter once and the object carries it (Serve pickles it as it is), so no
layer re-parses a dict or re-resolves a name. `Engine` is the interface a replica talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

from llmft.errors import LlmftError
from llmft.serving.engine.adapters import ResolvedAdapter


class RequestError(LlmftError):
    """A request the engine refuses before touching the model (mapped to an HTTP 4xx)."""

    def __init__(self, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding parameters; temperature 0 means greedy."""

    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    json_schema: str | None = None  # structured output: the JSON schema (canonical JSON text) to follow

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def group_key(self) -> tuple:
        """Requests with equal keys can share one `generate` call (the logits processors are per call)."""
        key = ("greedy",) if self.greedy else ("sample", self.temperature, self.top_p, self.seed)
        return key + (self.json_schema,) if self.json_schema else key


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a prompt (or chat messages the engine renders), the resolved adapter
    (None for the base), sampling parameters and whether the caller streams."""

    prompt: str | None = None
    adapter: ResolvedAdapter | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    messages: tuple[dict, ...] | None = None
    stream: bool = False

    @property
    def adapter_id(self) -> str | None:
        return self.adapter.adapter_id if self.adapter is not None else None

    def text(self) -> str:
        """What the request asks about, for logs (the prompt, or the messages as JSON)."""
        import json

        return self.prompt if self.prompt is not None else json.dumps(list(self.messages or ()))


@dataclass
class GenResult:
    text: str
    finish_reason: str  # "stop" (eos or a stop sequence) | "length"
    prompt_tokens: int
    completion_tokens: int
    adapter_id: str | None
    adapter_version: str | None
    base_revision: str


def render_prompt(tokenizer, request: GenerationRequest) -> GenerationRequest:  # noqa: ANN001
    """The request with its prompt as text: chat messages go through the base's chat template (every engine)."""
    from dataclasses import replace

    if request.messages is not None:
        try:
            prompt = tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # template errors (unknown role, ...) are the caller's
            raise RequestError(f"messages: cannot render chat ({exc})", "invalid_request", "messages") from None
        return replace(request, prompt=prompt, messages=None)
    if not isinstance(request.prompt, str):
        raise RequestError("prompt must be a string", "invalid_request", "prompt")
    return request


class Engine(Protocol):
    """What a serving replica needs from an engine."""

    base_name: str
    base_revision: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenResult | RequestError]: ...

    def stream(self, request: GenerationRequest) -> Iterator[dict]: ...

    def count_tokens(self, prompt: str) -> int: ...

    def info(self) -> dict: ...
