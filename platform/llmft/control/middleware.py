"""ASGI layers in front of the routes, outermost first: admission (who, and the rate limit), path
component length, request size limit (413), JSON shape (depth, finite numbers), idempotent POST replay."""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from llmft.control.idempotency import error_body, request_digest, scope_of
from llmft.errors import ConflictError, LlmftError, SpecError

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: specs are small; data travels by storage URI, never in a request
MAX_JSON_DEPTH = 64
MAX_PATH_COMPONENT = 128
INT64_MAX = 2**63 - 1
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 not itself escaped


async def _send_error(send, status: int, kind: str, message: str, headers: list | None = None) -> None:  # noqa: ANN001
    body = error_body(message, kind)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _headers(scope) -> dict:  # noqa: ANN001
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def admit(ctl: Any, authorization: str | None, x_api_key: str | None, host: str) -> Any:
    """The caller's Principal, or the error to answer with; every request is charged to a rate limit.

    An authenticated request is charged to its key; anything else (no key, a forged, revoked or
    malformed one) to the client's address, so neither guessing keys nor unauthenticated traffic
    (health checks, the schema, malformed bodies) is free of a limit.
    """
    from llmft.control.auth import AuthenticationError, RateLimitedError, authenticate, presented_key

    try:
        who = authenticate(ctl.store, presented_key(authorization, x_api_key))
    except AuthenticationError as exc:
        wait = ctl.limiter.allow(f"addr:{host}")
        if wait is not None:
            return RateLimitedError("too many requests without a valid API key from this address", wait)
        return exc
    wait = ctl.limiter.allow(f"key:{who.key_id}")
    if wait is not None:
        return RateLimitedError(f"rate limit exceeded for key {who.key_id}", wait)
    return who


class Admission:
    """Authenticate once per request and charge its rate limit; refuse overlong path components (400).

    The outcome (a Principal or the authentication error) is left in the scope for the routes and
    for the idempotency layer, which therefore replays nothing to a caller over its limit.
    """

    def __init__(self, app, control_of):  # noqa: ANN001
        self.app = app
        self.control_of = control_of  # () -> Control

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.concurrency import run_in_threadpool

        from llmft.control.auth import RateLimitedError

        headers = _headers(scope)
        host = scope["client"][0] if scope.get("client") else "unknown"
        outcome = await run_in_threadpool(admit, self.control_of(), headers.get("authorization"),
                                          headers.get("x-api-key"), host)
        if isinstance(outcome, RateLimitedError):
            retry = str(max(1, math.ceil(outcome.retry_after))).encode()
            return await _send_error(send, 429, "rate_limited", str(outcome), [(b"retry-after", retry)])
        longest = max((len(part) for part in scope["path"].split("/")), default=0)
        if longest > MAX_PATH_COMPONENT:
            return await _send_error(send, 400, "invalid_request",
                                     f"path component longer than {MAX_PATH_COMPONENT} characters ({longest})")
        scope["llmft.admission"] = outcome
        await self.app(scope, receive, send)


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _checked_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(int(text)) > INT64_MAX:
        raise _Refused(422, f"request body holds an integer outside the 64-bit range ({text[:24]}...)")
    return int(text)


def _checked_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(422, f"request body holds a number too large to represent ({text[:24]}): numbers must be finite")
    return value


def _no_constant(name: str) -> float:
    raise _Refused(400, f"request body is not valid JSON: {name} is not a JSON number (numbers must be finite)")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether `body` nests arrays/objects deeper than `limit` (strings skipped; stops at the first excess)."""
    depth = 0
    for ch in _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body)):
        if ch in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse (`_Refused`) a JSON body nested deeper than `max_depth`, holding a NUL character, or holding NaN,
    Infinity, 1e999 or an integer beyond 64 bits; a body that is not JSON at all is left to the route (400)."""
    if json_depth_exceeds(body, max_depth):
        raise _Refused(400, f"request body nests deeper than {max_depth} levels")
    if _NUL_ESCAPE.search(body):  # no field takes one, paths break on it and Postgres text cannot store it
        raise _Refused(422, "request body holds a NUL character (\\u0000): no field accepts such control characters")
    try:
        json.loads(body, parse_int=_checked_int, parse_float=_checked_float, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return


class JsonGuard:
    """Bodies sent as JSON (or with no content type) are checked by `check_json` before any route parses them."""

    def __init__(self, app, max_depth: int = MAX_JSON_DEPTH):  # noqa: ANN001
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        kind = _headers(scope).get("content-type", "application/json").split(";")[0].strip().lower()
        if not (kind == "application/json" or kind.endswith("+json") or not kind):
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        if body is None:
            return None  # the client went away
        try:
            check_json(body, self.max_depth)
        except _Refused as exc:
            kind = "invalid_json" if exc.status == 400 else "invalid_request"
            return await _send_error(send, exc.status, kind, str(exc))
        await self.app(scope, _replaying(body, receive), send)


async def _read_body(receive) -> bytes | None:  # noqa: ANN001
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            return None
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


def _replaying(body: bytes, receive):  # noqa: ANN001, ANN202
    """An ASGI `receive` that hands the app the already-read `body` once, then defers to `receive`."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay():  # noqa: ANN202
        return pending.pop() if pending else await receive()

    return replay


class BodyLimit:
    """Refuse bodies above `max_bytes` with 413, by Content-Length or while streaming."""

    def __init__(self, app, max_bytes: int | None = None):  # noqa: ANN001
        self.app = app
        self.max_bytes = int(max_bytes or os.environ.get("LLMFT_API_MAX_BODY", DEFAULT_MAX_BODY))

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        message = f"request body larger than {self.max_bytes} bytes"
        if declared is not None:
            if not declared.isdigit():
                return await _send_error(send, 400, "invalid_request", "Content-Length is not a number")
            if int(declared) > self.max_bytes:
                return await _send_error(send, 413, "payload_too_large", message)
        if declared is not None:
            return await self.app(scope, receive, send)
        # No length given (chunked): buffer up to the limit before the app sees any of it.
        chunks, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return None  # the client went away
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                return await _send_error(send, 413, "payload_too_large", message)
            if not msg.get("more_body"):
                break
        await self.app(scope, _replaying(b"".join(chunks), receive), send)


class Idempotency:
    """POST with an `Idempotency-Key` header: the same request again returns the first response."""

    def __init__(self, app, store_of):  # noqa: ANN001
        self.app = app
        self.store_of = store_of  # () -> (llmft Store, IdempotencyStore)

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        key = headers.get("idempotency-key")
        if key is None:
            return await self.app(scope, receive, send)
        from llmft.control.auth import AuthenticationError, Principal, authenticate, presented_key

        store, idem = self.store_of()
        try:
            plaintext = presented_key(headers.get("authorization"), headers.get("x-api-key"))
            outcome = scope.get("llmft.admission")
            if outcome is None:
                outcome = authenticate(store, plaintext)
            if not isinstance(outcome, Principal):
                raise AuthenticationError(str(outcome))
        except (AuthenticationError, LlmftError):
            return await self.app(scope, receive, send)  # the route answers 401 with its usual message
        body = await _read_body(receive)
        if body is None:
            return None
        digest = request_digest("POST", scope["path"], body)
        owner = scope_of(plaintext)
        try:
            stored = idem.begin(owner, key, digest)
        except SpecError as exc:
            return await _send_error(send, 422, "invalid_request", str(exc))
        except ConflictError as exc:
            return await _send_error(send, 409, "conflict", str(exc))
        if stored is not None:
            data = (stored["body"] or "").encode()
            await send({"type": "http.response.start", "status": stored["status"],
                        "headers": [(b"content-type", (stored["content_type"] or "application/json").encode()),
                                    (b"content-length", str(len(data)).encode()),
                                    (b"idempotent-replayed", b"true")]})
            await send({"type": "http.response.body", "body": data})
            return None
        replay_receive = _replaying(body, receive)
        status, content_type, out = 500, None, []

        async def capture(msg):  # noqa: ANN001, ANN202
            nonlocal status, content_type
            if msg["type"] == "http.response.start":
                status = msg["status"]
                content_type = dict(msg.get("headers") or []).get(b"content-type", b"").decode() or None
            elif msg["type"] == "http.response.body":
                out.append(msg.get("body", b""))
            await send(msg)

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            idem.finish(owner, key, status, content_type, b"".join(out))
