"""FastAPI dependencies: the control-plane context, the authenticated principal, tenant/role guards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Depends, Header, Request

from llmft.control.auth import (
    AuthenticationError,
    Principal,
    RateLimitedError,
    authenticate,
    check_scope,
    presented_key,
)
from llmft.errors import LlmftError, NotFoundError, PermissionDeniedError


@dataclass
class Control:
    """What every route needs, built once per app."""

    store: Any
    runner: Any
    limiter: Any
    idempotency: Any
    _registry: Any = None

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from llmft.control.stages import model_registry

            self._registry = model_registry(self.store)
        return self._registry

    def deny(self, principal: Principal, request: Request, exc: LlmftError) -> None:
        """Record a refused, authenticated request in the audit log (who tried what), then refuse it."""
        self.store.audit.append(principal.actor, principal.tenant, "api.denied",
                                f"{request.method} {request.url.path}",
                                {"status": 404 if isinstance(exc, NotFoundError) else 403, "reason": str(exc)})


def control(request: Request) -> Control:
    return request.app.state.control


def principal(request: Request, authorization: str | None = Header(None),
              x_api_key: str | None = Header(None)) -> Principal:
    ctl = control(request)
    try:
        who = authenticate(ctl.store, presented_key(authorization, x_api_key))
    except AuthenticationError:
        # Failed attempts are limited per client address, so keys cannot be guessed at speed.
        host = request.client.host if request.client else "unknown"
        wait = ctl.limiter.allow(f"addr:{host}")
        if wait is not None:
            raise RateLimitedError("too many failed authentication attempts", wait) from None
        raise
    wait = ctl.limiter.allow(f"key:{who.key_id}")
    if wait is not None:
        raise RateLimitedError(f"rate limit exceeded for key {who.key_id}", wait)
    request.state.principal = who
    return who


def require(role: str) -> Callable[..., Principal]:
    """Guard for `/v1/tenants/{tenant}/...`: another tenant is 404 (checked first), a missing right 403."""

    def guard(tenant: str, request: Request, who: Principal = Depends(principal)) -> Principal:
        try:
            check_scope(who, tenant, role)
        except (NotFoundError, PermissionDeniedError) as exc:
            control(request).deny(who, request, exc)
            raise
        return who

    return guard


def require_role(request: Request, who: Principal, role: str) -> None:
    """A further role check inside a route (e.g. production promotion needs an approver)."""
    if not who.has(role):
        exc = PermissionDeniedError(f"role {who.role!r} may not do this: needs {role!r} or above")
        control(request).deny(who, request, exc)
        raise exc
