"""The FastAPI app factory: middleware, error mapping, and the /v1 routers.

Errors always answer `{"error": {"type", "message"}}` with one clear line: 401 no/forged key,
403 missing right, 404 unknown or another tenant's object, 409 state conflict or tampered bytes,
400 malformed (not JSON, nested deeper than 64, a path component over 128 characters),
413 body too large, 422 invalid body or spec (naming the field; non-finite or out-of-range numbers),
429 rate limited (Retry-After), 501 a stage that is not installed. No message carries an absolute
server path (`llmft.control.redaction.scrub` is the last resort).
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmft.control.auth import AuthenticationError, RateLimitedError
from llmft.control.denials import Denials
from llmft.control.deps import Control
from llmft.control.idempotency import IdempotencyStore
from llmft.control.middleware import Admission, BodyLimit, Idempotency, JsonGuard
from llmft.control.ratelimit import RateLimiter
from llmft.control.redaction import scrub
from llmft.jobs import StageMissing
from llmft.jobs.runners import SubmissionError, default_runner
from llmft.errors import (
    ConflictError,
    IntegrityError,
    LlmftError,
    NotFoundError,
    PermissionDeniedError,
    SpecError,
)

log = logging.getLogger("llmft.control")

STATUS = [  # first match wins: subclasses before their bases
    (AuthenticationError, 401, "authentication_error"),
    (RateLimitedError, 429, "rate_limited"),
    (StageMissing, 501, "not_implemented"),
    (SubmissionError, 503, "cluster_unavailable"),
    (SpecError, 422, "invalid_request"),
    (NotFoundError, 404, "not_found"),
    (PermissionDeniedError, 403, "permission_denied"),
    (IntegrityError, 409, "integrity_error"),
    (ConflictError, 409, "conflict"),
    (LlmftError, 400, "invalid_request"),
]


def error_response(status: int, kind: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": scrub(message)}}, status_code=status, headers=headers)


def _llmft_error(_request: Request, exc: LlmftError) -> JSONResponse:
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            headers = None
            if isinstance(exc, AuthenticationError):
                headers = {"WWW-Authenticate": "Bearer"}
            elif isinstance(exc, RateLimitedError):
                headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
            return error_response(status, kind, str(exc), headers)
    raise exc  # pragma: no cover - LlmftError is always matched


def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "request body is not valid JSON")
    parts = []
    for e in errors[:10]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {'unknown field' if e.get('type') == 'extra_forbidden' else e.get('msg')}")
    return error_response(422, "invalid_request", "; ".join(parts))


HTTP_KINDS = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
              415: "unsupported_media_type"}


def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Framework errors (unknown route, wrong method, unparsable body) in the same error shape."""
    message = {404: "no such route", 405: "method not allowed on this route"}.get(exc.status_code, str(exc.detail))
    if exc.status_code == 400:
        message = "request body could not be parsed"
    return error_response(exc.status_code, HTTP_KINDS.get(exc.status_code, "invalid_request"), message,
                          dict(exc.headers) if exc.headers else None)


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.exception("internal error %s", ref, exc_info=exc)
    return error_response(500, "internal_error", f"internal error (reference {ref}); nothing was changed by it")


def create_app(store: Any = None, runner: Any = None, *, limiter: RateLimiter | None = None,
               max_body: int | None = None, preflight: bool = True,
               denials_per_minute: int | None = None) -> FastAPI:
    """Build the control-plane app on `store` (default: Settings' DB) and `runner` (default: Ray if configured)."""
    from llmft.control.routers import datasets, deployments, jobs, models, tenancy

    if store is None:
        from llmft.store import Store

        store = Store()
    ctl = Control(store=store, runner=runner or default_runner(store), limiter=limiter or RateLimiter(),
                  idempotency=IdempotencyStore(store.engine), denials=Denials(store, denials_per_minute))
    app = FastAPI(title="llmft control plane", version="1",
                  description="Datasets, curation, training, sweeps, evaluations, models and deployments per tenant. "
                              "Authenticate with `Authorization: Bearer <api key>`.")
    app.state.control = ctl
    app.state.preflight = preflight  # run a stage's synchronous checks (e.g. training policy) before queuing
    app.add_exception_handler(LlmftError, _llmft_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    for module in (tenancy, datasets, jobs, models, deployments):
        app.include_router(module.router, prefix="/v1")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        return {"ok": True}

    app.add_middleware(Idempotency, store_of=lambda: (ctl.store, ctl.idempotency))
    app.add_middleware(JsonGuard)
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(Admission, control_of=lambda: app.state.control)  # added last = outermost
    return app
