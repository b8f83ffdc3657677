"""ASGI layers in front of the routes: request size limit (413) and idempotent POST replay."""

from __future__ import annotations

import os

from llmft.control.idempotency import error_body, request_digest, scope_of
from llmft.errors import ConflictError, SpecError

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: specs are small; data travels by storage URI, never in a request


async def _send_error(send, status: int, kind: str, message: str, headers: list | None = None) -> None:  # noqa: ANN001
    body = error_body(message, kind)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


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
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        key = headers.get("idempotency-key")
        if key is None:
            return await self.app(scope, receive, send)
        from llmft.control.auth import AuthenticationError, authenticate, presented_key

        store, idem = self.store_of()
        try:
            plaintext = presented_key(headers.get("authorization"), headers.get("x-api-key"))
            authenticate(store, plaintext)  # a revoked or forged key never gets a stored response back
        except AuthenticationError:
            return await self.app(scope, receive, send)  # the route answers 401 with its usual message
        chunks = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
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
