"""Tenants (platform admin), API keys (tenant admin) and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from llmft.control.auth import Principal, check_grant
from llmft.control.deps import control, principal, require
from llmft.control.middleware import INT64_MAX
from llmft.control.schemas import KeyCreate, TenantCreate, page
from llmft.errors import NotFoundError, PermissionDeniedError
from llmft.store.audit_chain import verify_records

router = APIRouter(tags=["tenants"])


@router.post("/tenants", status_code=201)
def create_tenant(body: TenantCreate, request: Request, who: Principal = Depends(principal)) -> dict:
    """Create a tenant and its first admin key (shown once). Platform admins only."""
    ctl = control(request)
    if not who.platform_admin:
        exc = PermissionDeniedError("only a platform admin may create tenants")
        ctl.deny(who, request, exc)
        raise exc
    tenant = ctl.store.create_tenant(body.name, who.actor, body.epsilon_budget)
    plaintext, key = ctl.store.create_api_key(tenant.name, "admin", who.actor)
    return {"tenant": tenant.as_dict(), "admin_key": {**key.as_dict(), "key": plaintext}}


@router.get("/tenants")
def list_tenants(request: Request, who: Principal = Depends(principal)) -> dict:
    """Every tenant for a platform admin; otherwise only the caller's own."""
    store = control(request).store
    rows = store.list_tenants() if who.platform_admin else [store.get_tenant(who.tenant)]
    return page([t.as_dict() for t in rows], 1000, None, key=lambda t: t["name"])


@router.get("/tenants/{tenant}")
def get_tenant(tenant: str, request: Request, who: Principal = Depends(require("viewer"))) -> dict:
    store = control(request).store
    return {**store.get_tenant(tenant).as_dict(), "privacy": store.privacy_summary(tenant).as_dict()}


@router.post("/tenants/{tenant}/keys", status_code=201)
def create_key(tenant: str, body: KeyCreate, request: Request, who: Principal = Depends(require("admin"))) -> dict:
    """Mint a key for this tenant, at most the caller's own role; the plaintext is shown once."""
    ctl = control(request)
    try:
        check_grant(who, body.role)
    except PermissionDeniedError as exc:
        ctl.deny(who, request, exc)
        raise
    plaintext, rec = ctl.store.create_api_key(tenant, body.role, who.actor)
    return {**rec.as_dict(), "key": plaintext}


@router.get("/tenants/{tenant}/keys")
def list_keys(tenant: str, request: Request, limit: int = Query(100, ge=1, le=1000), after: str | None = None,
              who: Principal = Depends(require("admin"))) -> dict:
    return page([k.as_dict() for k in control(request).store.list_api_keys(tenant)], limit, after)


@router.post("/tenants/{tenant}/keys/{key_id}/revoke")
def revoke_key(tenant: str, key_id: str, request: Request, who: Principal = Depends(require("admin"))) -> dict:
    store = control(request).store
    if key_id not in {k.id for k in store.list_api_keys(tenant)}:
        raise NotFoundError(f"api key {key_id!r} not found for tenant {tenant!r}")
    return store.revoke_api_key(key_id, who.actor).as_dict()


@router.get("/tenants/{tenant}/audit", tags=["audit"])
def audit_records(tenant: str, request: Request, since_seq: int = Query(0, ge=0, le=INT64_MAX),
                  limit: int = Query(100, ge=1, le=1000), who: Principal = Depends(require("admin"))) -> dict:
    """This tenant's audit records (chain fields included), oldest first."""
    rows = []
    for rec in control(request).store.audit.records(tenant, since_seq):
        rows.append(rec)
        if len(rows) > limit:
            break
    return {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit}


@router.get("/tenants/{tenant}/audit/verify", tags=["audit"])
def audit_verify(tenant: str, request: Request, who: Principal = Depends(require("admin"))) -> dict:
    """Walk the whole hash chain; a tampered record is named by its sequence number.

    The platform admin sees the whole chain's verdict; a tenant admin sees its own tenant's view:
    how many of its records verified, whether the chain holds, and which record broke it only when
    that record is its own (no platform-wide counts).
    """
    audit = control(request).store.audit
    if who.platform_admin:
        return {**audit.verify().as_dict(), "scope": "platform"}
    seen = {"mine": 0, "last": None}

    def walk():  # noqa: ANN202 - counts this tenant's records as the chain is verified
        for rec in audit.records():
            seen["last"] = rec
            if rec["tenant"] == tenant:
                seen["mine"] += 1
            yield rec

    verdict = verify_records(walk())
    mine, last = seen["mine"], seen["last"]
    bad_is_mine = not verdict.ok and last is not None and last["seq"] == verdict.first_bad_seq \
        and last["tenant"] == tenant
    if bad_is_mine:
        mine -= 1  # the broken record itself did not verify
    return {"ok": verdict.ok, "scope": "tenant", "tenant": tenant, "records": mine,
            "first_bad_seq": verdict.first_bad_seq if bad_is_mine else None,
            "reason": verdict.reason if bad_is_mine or verdict.ok else
            "the chain is broken at a record of another tenant or of the platform; the platform admin can see where"}
