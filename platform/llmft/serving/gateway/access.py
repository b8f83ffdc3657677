"""API key -> tenant, and which models a tenant may call; refusals happen before anything loads.

A model name is the shared base (`tiny`) or one of the caller's adapters: `name`,
`name@alias` or `name:version`, optionally prefixed `tenant/`. Naming another tenant's
adapter is a 403; a name the caller's tenant does not have is a 404 (no existence leak
beyond the tenant prefix the caller typed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from llmft.errors import LlmftError, NotFoundError, PermissionDeniedError
from llmft.serving.gateway.protocol import ApiError

_REF = re.compile(r"^(?:(?P<tenant>[a-z0-9][a-z0-9._-]{0,62})/)?(?P<name>[a-z0-9][a-z0-9._-]{0,62}?)"
                  r"(?:@(?P<alias>[a-z0-9][a-z0-9._-]{0,62})|:(?P<version>[0-9A-Za-z][0-9A-Za-z.+-]{0,63}))?$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    tenant: str | None = None
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        match = _REF.match(text or "")
        if not match or match.group("name").startswith("__"):
            raise ApiError(404, f"model {text!r} does not exist (expected name, name@alias or name:version)",
                           param="model", code="model_not_found")
        return cls(match.group("name"), match.group("tenant"), match.group("alias"), match.group("version"))

    @property
    def pinned(self) -> bool:
        """A bare name: the colour answering the request decides the version."""
        return self.alias is None and self.version is None


@dataclass(frozen=True)
class Caller:
    tenant: str
    role: str
    key_id: str


class Tenancy:
    """Authenticates bearer keys through the metadata store (cached per key hash, briefly)."""

    def __init__(self, store: Any, cache_s: float = 30.0):
        self.store = store
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Caller]] = {}

    def authenticate(self, authorization: str | None) -> Caller:
        import time

        if not authorization:
            raise ApiError(401, "missing API key (send 'Authorization: Bearer <key>')", "authentication_error",
                           code="missing_api_key")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "malformed Authorization header (expected 'Bearer <key>')", "authentication_error",
                           code="invalid_api_key")
        key = key.strip()
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.cache_s:
            return hit[1]
        try:
            rec = self.store.authenticate(key)
        except PermissionDeniedError as exc:
            raise ApiError(401, str(exc), "authentication_error", code="invalid_api_key") from None
        caller = Caller(rec.tenant, rec.role, rec.id)
        self._cache[key] = (now, caller)
        return caller

    @staticmethod
    def authorize(caller: Caller, model: str, bases: list[str], source: Any) -> ModelRef | None:
        """None for a shared base; else the caller's adapter ref (403/404 otherwise)."""
        if model in bases:
            return None
        ref = ModelRef.parse(model)
        if ref.tenant is not None and ref.tenant != caller.tenant:
            raise ApiError(403, f"model {model!r} belongs to another tenant", "permission_error",
                           param="model", code="model_not_permitted")
        try:
            known = source.list(caller.tenant)
        except LlmftError as exc:
            raise ApiError(503, f"adapter source unavailable: {exc}", "server_error") from None
        if ref.name not in known:
            raise ApiError(404, f"model {model!r} does not exist or you do not have access to it",
                           param="model", code="model_not_found")
        return ModelRef(ref.name, caller.tenant, ref.alias, ref.version)

    @staticmethod
    def visible_models(caller: Caller, bases: list[str], source: Any) -> list[str]:
        return list(bases) + list(source.list(caller.tenant))


class OpenAccess(Tenancy):
    """No keys: every caller is one local tenant. Only for an in-process endpoint bound to loopback
    (evaluation's local engine), where the caller is the process that started it."""

    def __init__(self, tenant: str = "local"):
        super().__init__(store=None)
        self.caller = Caller(tenant, "developer", "local")

    def authenticate(self, authorization: str | None) -> Caller:
        return self.caller


def resolve_error(exc: Exception, model: str) -> ApiError:
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc), param="model", code="model_not_found")
    return ApiError(503, f"model {model!r} unavailable: {exc}", "server_error", code="adapter_unavailable")
