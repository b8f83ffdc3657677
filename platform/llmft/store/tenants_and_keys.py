"""Tenants and API keys. Keys are shown once and stored only as a sha256 hash."""

from __future__ import annotations

import hashlib
import math
import re
import secrets

from sqlalchemy import select

from llmft.errors import ConflictError, NotFoundError, PermissionDeniedError, SpecError
from llmft.store.store_base import StoreBase
from llmft.store.records import ApiKeyRecord, TenantRecord, from_row
from llmft.store.schema import ApiKey, Tenant, utcnow

ROLES = ("viewer", "developer", "approver", "admin")
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DEFAULT_EPSILON_BUDGET = 10.0
KEY_PREFIX = "llmft"


def hash_key(plaintext: str) -> str:
    # Keys carry 256 random bits, so a fast unsalted hash is safe (no dictionary to attack).
    return hashlib.sha256(plaintext.encode()).hexdigest()


class TenancyMixin(StoreBase):
    def create_tenant(self, name: str, actor: str, epsilon_budget: float | None = None) -> TenantRecord:
        if not TENANT_NAME.match(name or ""):
            raise SpecError(f"tenant name {name!r}: use lowercase letters, digits, '.', '_' or '-' (max 63)")
        budget = DEFAULT_EPSILON_BUDGET if epsilon_budget is None else float(epsilon_budget)
        if not math.isfinite(budget) or budget < 0:  # infinity would mean "unlimited" and is not valid JSON
            raise SpecError(f"tenant {name}: epsilon_budget must be a finite number >= 0")
        with self.tx() as s:
            if s.get(Tenant, name) is not None:
                raise ConflictError(f"tenant {name!r} already exists")
            row = Tenant(name=name, epsilon_budget=budget, created_at=utcnow())
            s.add(row)
            self.audited(s, actor, name, "tenant.create", f"tenant/{name}", {"epsilon_budget": budget})
            return from_row(TenantRecord, row)

    def get_tenant(self, name: str) -> TenantRecord:
        with self.read() as s:
            row = s.get(Tenant, name)
            if row is None:
                raise NotFoundError(f"tenant {name!r} not found")
            return from_row(TenantRecord, row)

    def list_tenants(self) -> list[TenantRecord]:
        with self.read() as s:
            return [from_row(TenantRecord, r) for r in s.scalars(select(Tenant).order_by(Tenant.name))]

    def create_api_key(self, tenant: str, role: str, actor: str) -> tuple[str, ApiKeyRecord]:
        """Return (plaintext key, record). The plaintext is never stored."""
        if role not in ROLES:
            raise SpecError(f"role {role!r}: must be one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        plaintext = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self.tx() as s:
            if s.get(Tenant, tenant) is None:
                raise NotFoundError(f"tenant {tenant!r} not found")
            row = ApiKey(id=key_id, tenant=tenant, role=role, key_hash=hash_key(plaintext),
                         created_by=actor, created_at=utcnow())
            s.add(row)
            self.audited(s, actor, tenant, "key.create", f"key/{key_id}", {"role": role})
            return plaintext, from_row(ApiKeyRecord, row)

    def revoke_api_key(self, key_id: str, actor: str) -> ApiKeyRecord:
        with self.tx() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFoundError(f"api key {key_id!r} not found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                self.audited(s, actor, row.tenant, "key.revoke", f"key/{key_id}")
            return from_row(ApiKeyRecord, row)

    def list_api_keys(self, tenant: str) -> list[ApiKeyRecord]:
        with self.read() as s:
            rows = s.scalars(select(ApiKey).where(ApiKey.tenant == tenant).order_by(ApiKey.created_at))
            return [from_row(ApiKeyRecord, r) for r in rows]

    def authenticate(self, plaintext: str | None) -> ApiKeyRecord:
        """Resolve a presented key to its record; a missing, unknown or revoked key is refused."""
        if not plaintext:
            raise PermissionDeniedError("missing API key")
        with self.read() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext)))
            if row is None or row.revoked_at is not None:
                raise PermissionDeniedError("invalid or revoked API key")
            return from_row(ApiKeyRecord, row)
