"""FastAPI dependencies: the control-plane context, the authenticated principal, tenant/role guards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Depends, Header, Request

from llmft.control.auth import Principal, check_scope
from llmft.errors import LlmftError, NotFoundError, PermissionDeniedError


@dataclass
class Control:
    """What every route needs, built once per app."""

    store: Any
    runner: Any
    limiter: Any
    idempotency: Any
    denials: Any = None
    _registry: Any = None

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from llmft.registry import ModelRegistry

            self._registry = ModelRegistry(store=self.store)
        return self._registry

    def deny(self, principal: Principal, request: Request, exc: LlmftError, target: str | None = None) -> None:
        """Record a refused, authenticated request in the audit log (who tried what, bounded), then refuse it."""
        if target is None:
            target = request.path_params.get("tenant", principal.tenant)
        status = 404 if isinstance(exc, NotFoundError) else 403
        self.denials.record(principal, request.method, request.url.path, status, str(exc), target)


def control(request: Request) -> Control:
    return request.app.state.control


def principal(request: Request, authorization: str | None = Header(None),
              x_api_key: str | None = Header(None)) -> Principal:
    """The caller, as the `Admission` middleware found it (authenticated and charged to its rate limit there)."""
    outcome = request.scope.get("llmft.admission")
    if outcome is None:  # the app runs without its middleware (never in create_app): do the same here
        from llmft.control.middleware import admit

        outcome = admit(control(request), authorization, x_api_key,
                        request.client.host if request.client else "unknown")
    if isinstance(outcome, LlmftError):
        raise outcome
    request.state.principal = outcome
    return outcome


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
