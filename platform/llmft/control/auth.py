"""API keys to principals, role ordering and tenant scoping for every route.

A key acts for exactly one tenant. Asking for another tenant's path answers 404 (the
same answer as for a tenant that does not exist, so existence is not revealed); a
missing right answers 403. The one cross-tenant power is the *platform admin*: an
admin key of the platform tenant (`LLMFT_PLATFORM_TENANT`, default `platform`) may
create and list tenants (and receives each new tenant's first admin key), nothing else:
it cannot read or change another tenant's data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from llmft.errors import LlmftError, NotFoundError, PermissionDeniedError
from llmft.store import ROLES

RANK = {role: i for i, role in enumerate(ROLES)}  # viewer < developer < approver < admin


class AuthenticationError(LlmftError):
    """No key, or a key that is unknown, malformed or revoked (HTTP 401)."""


class RateLimitedError(LlmftError):
    """Too many requests for this key (HTTP 429); `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def platform_tenant() -> str:
    return os.environ.get("LLMFT_PLATFORM_TENANT", "platform")


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    role: str

    @property
    def actor(self) -> str:
        """What the audit log records for this caller: key id and role."""
        return f"key:{self.key_id}:{self.role}"

    def has(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def platform_admin(self) -> bool:
        return self.tenant == platform_tenant() and self.role == "admin"


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError("Authorization header must be 'Bearer <api key>'")
        return value.strip()
    return x_api_key.strip() if x_api_key else None


def authenticate(store, plaintext: str | None) -> Principal:  # noqa: ANN001
    if not plaintext:
        raise AuthenticationError("missing API key (send 'Authorization: Bearer <key>')")
    if len(plaintext) > 256 or not plaintext.startswith("llmft_"):
        raise AuthenticationError("invalid or revoked API key")
    try:
        rec = store.authenticate(plaintext)
    except PermissionDeniedError:
        raise AuthenticationError("invalid or revoked API key") from None
    return Principal(key_id=rec.id, tenant=rec.tenant, role=rec.role)


def check_scope(principal: Principal, tenant: str, role: str) -> None:
    """Refuse another tenant's path with 404 (before any role check) and a missing right with 403."""
    if tenant != principal.tenant:
        raise NotFoundError(f"tenant {tenant!r} not found")
    if not principal.has(role):
        raise PermissionDeniedError(f"role {principal.role!r} may not do this: needs {role!r} or above")


def check_grant(principal: Principal, role: str) -> None:
    """A key may only mint keys up to its own role (no escalation by key creation)."""
    if role not in RANK:
        from llmft.errors import SpecError

        raise SpecError(f"role: must be one of {', '.join(ROLES)}")
    if RANK[role] > RANK[principal.role]:
        raise PermissionDeniedError(f"role {principal.role!r} may not create a {role!r} key")
