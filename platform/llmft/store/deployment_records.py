"""Deployments: which tenant runs which Serve app, at which versions per colour, and which colour is live."""

from __future__ import annotations

from sqlalchemy import select

from llmft.errors import NotFoundError
from llmft.store.store_base import StoreBase
from llmft.store.schema import Deployment, Tenant, utcnow


def _as_dict(row: Deployment) -> dict:
    return {"object": "deployment", "tenant": row.tenant, "name": row.name, "state": row.state,
            "live_colour": row.live_colour, "colours": dict(row.colours), "spec": dict(row.spec),
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


class DeploymentsMixin(StoreBase):
    def save_deployment(self, *, tenant: str, name: str, spec: dict, state: str, colours: dict, live_colour: str,
                        actor: str, action: str, payload: dict | None = None) -> dict:
        """Create or update a tenant's deployment record; `action` names the audited change."""
        with self.tx() as s:
            if s.get(Tenant, tenant) is None:
                raise NotFoundError(f"tenant {tenant!r} not found")
            row = s.scalar(select(Deployment).where(Deployment.tenant == tenant, Deployment.name == name))
            if row is None:
                row = Deployment(tenant=tenant, name=name, created_at=utcnow())
                s.add(row)
            row.spec, row.state, row.colours, row.live_colour = spec, state, colours, live_colour
            row.updated_at = utcnow()
            s.flush()
            self.audited(s, actor, tenant, action, f"deployment/{name}",
                         {"live": live_colour, "colours": colours, "state": state, **(payload or {})})
            return _as_dict(row)

    def get_deployment(self, tenant: str, name: str) -> dict:
        with self.read() as s:
            row = s.scalar(select(Deployment).where(Deployment.tenant == tenant, Deployment.name == name))
            if row is None:
                raise NotFoundError(f"deployment {name!r} not found for tenant {tenant!r}")
            return _as_dict(row)

    def list_deployments(self, tenant: str) -> list[dict]:
        with self.read() as s:
            rows = s.scalars(select(Deployment).where(Deployment.tenant == tenant).order_by(Deployment.name))
            return [_as_dict(r) for r in rows]
