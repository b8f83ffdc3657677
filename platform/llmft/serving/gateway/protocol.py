"""OpenAI-compatible request/response bodies and errors (the subset the `openai` client uses).

Unknown fields are ignored, as OpenAI's server does, but fields we cannot honour (n > 1,
logprobs) are refused with a 400 naming the parameter rather than silently dropped.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmft.serving.engine.interface import SamplingParams

MAX_STOP = 4


class ApiError(Exception):
    """An error with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def from_validation(err: ValidationError) -> ApiError:
    first = err.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    msg = first["msg"].removeprefix("Value error, ")
    return ApiError(400, f"{param}: {msg}" if param else msg, param=param, code="invalid_value")


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., min_length=1, max_length=200)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    n: int = Field(1, ge=1)
    user: str | None = Field(None, max_length=256)
    logprobs: Any = None
    response_format: dict | None = None

    @field_validator("response_format")
    @classmethod
    def _response_format(cls, v: Any) -> Any:
        if v is None:
            return v
        kind = v.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise ValueError("type must be one of text, json_object, json_schema")
        if kind == "json_schema":
            spec = v.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise ValueError("json_schema.schema must be a JSON schema object")
        return v

    def json_schema(self) -> str | None:
        """The schema a response_format asks for, as canonical JSON text (json_object: any object)."""
        fmt = self.response_format or {}
        if fmt.get("type") == "json_object":
            return '{"type": "object"}'
        if fmt.get("type") == "json_schema":
            import json

            return json.dumps(fmt["json_schema"]["schema"], sort_keys=True)
        return None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: Any) -> Any:
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty")
        return v

    @field_validator("n")
    @classmethod
    def _n(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, v: Any) -> Any:
        if v not in (None, False, 0):
            raise ValueError("logprobs are not supported")
        return v

    def sampling(self, default_max_tokens: int = 16) -> SamplingParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(max_tokens=self.max_tokens or default_max_tokens, temperature=self.temperature,
                              top_p=self.top_p, stop=tuple(stops), seed=self.seed, json_schema=self.json_schema())


class CompletionRequest(_Params):
    prompt: str | list[str] = Field(...)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: Any) -> Any:
        if isinstance(v, list):
            if len(v) != 1:
                raise ValueError("exactly one prompt per request is supported")
        return v

    def text(self) -> str:
        return self.prompt[0] if isinstance(self.prompt, list) else self.prompt


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Params):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)

    def sampling(self, default_max_tokens: int = 64) -> SamplingParams:
        params = super().sampling(default_max_tokens)
        if self.max_completion_tokens and not self.max_tokens:
            from dataclasses import replace

            params = replace(params, max_tokens=self.max_completion_tokens)
        return params


def parse(model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise from_validation(err) from None


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int,
                    served: dict) -> dict:
    return {"id": _id("cmpl"), "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
            "usage": usage(prompt_tokens, completion_tokens), "llmft": served}


def chat_body(model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int,
              served: dict) -> dict:
    return {"id": _id("chatcmpl"), "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish, "logprobs": None}],
            "usage": usage(prompt_tokens, completion_tokens), "llmft": served}


def stream_chunk(kind: str, cid: str, model: str, delta: str | None, finish: str | None,
                 served: dict | None = None) -> dict:
    """One SSE chunk for `/v1/completions` (kind "completion") or chat (kind "chat")."""
    if kind == "chat":
        choice = {"index": 0, "delta": {} if delta is None else {"content": delta}, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
        obj = "text_completion"
    body = {"id": cid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice]}
    if served is not None:
        body["llmft"] = served
    return body


def models_body(names: list[str], owners: dict[str, str]) -> dict:
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": owners.get(n, "llmft")}
                                       for n in names]}


SERVED_HEADERS = {"base_revision": "x-llmft-base-revision", "adapter_version": "x-llmft-adapter-version",
                  "colour": "x-llmft-colour", "adapter": "x-llmft-adapter", "replica": "x-llmft-replica"}


def served_headers(served: dict) -> dict[str, str]:
    return {h: str(served[k]) for k, h in SERVED_HEADERS.items() if served.get(k) is not None}
