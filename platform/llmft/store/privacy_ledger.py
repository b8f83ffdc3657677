"""Per-tenant differential-privacy ledger: reserve epsilon before a job starts, settle after."""

from __future__ import annotations

import math

from sqlalchemy import func, select

from llmft.errors import BudgetExceededError, ConflictError, NotFoundError, SpecError
from llmft.store.store_base import StoreBase
from llmft.store.records import PrivacySummary
from llmft.store.schema import Job, PrivacyEntry, Tenant, utcnow


class PrivacyMixin(StoreBase):
    def _summary(self, session, tenant: str) -> PrivacySummary:  # type: ignore[no-untyped-def]
        row = session.get(Tenant, tenant)
        if row is None:
            raise NotFoundError(f"tenant {tenant!r} not found")
        totals = dict(session.execute(
            select(PrivacyEntry.status, func.coalesce(func.sum(PrivacyEntry.epsilon), 0.0))
            .where(PrivacyEntry.tenant == tenant).group_by(PrivacyEntry.status)).all())
        return PrivacySummary(tenant, row.epsilon_budget, float(totals.get("spent", 0.0)),
                              float(totals.get("reserved", 0.0)))

    def privacy_summary(self, tenant: str) -> PrivacySummary:
        with self.read() as s:
            return self._summary(s, tenant)

    def reserve_epsilon(self, tenant: str, job_id: str, epsilon: float, delta: float, *, actor: str) -> PrivacySummary:
        """Reserve `epsilon` for a job (basic composition), refusing if the budget would be exceeded."""
        if not (math.isfinite(epsilon) and math.isfinite(delta)) or epsilon < 0:  # NaN compares false: it'd pass
            raise SpecError(f"job {job_id}: epsilon and delta must be finite numbers (got {epsilon!r}, {delta!r})")
        with self.tx() as s:  # the write lock makes check-then-insert atomic across processes
            summary = self._summary(s, tenant)
            if s.get(Job, job_id) is None:
                raise NotFoundError(f"job {job_id!r} not found")
            existing = s.scalar(select(PrivacyEntry).where(PrivacyEntry.job_id == job_id))
            if existing is not None and existing.status == "reserved":
                return summary  # resuming the same job keeps its reservation
            if existing is not None and existing.status == "spent":
                raise ConflictError(f"job {job_id}: its epsilon is already spent; start a new job")
            if epsilon > summary.remaining + 1e-12:
                raise BudgetExceededError(
                    f"tenant {tenant!r}: epsilon {epsilon:g} would exceed its budget {summary.budget:g} "
                    f"(spent {summary.spent:g}, reserved {summary.reserved:g}, remaining {summary.remaining:g})")
            if existing is None:
                s.add(PrivacyEntry(tenant=tenant, job_id=job_id, epsilon=epsilon, delta=delta, status="reserved",
                                   created_at=utcnow(), updated_at=utcnow()))
            else:  # previously released: reserve again
                existing.epsilon, existing.delta, existing.status = epsilon, delta, "reserved"
                existing.updated_at = utcnow()
            self.audited(s, actor, tenant, "privacy.reserve", f"job/{job_id}", {"epsilon": epsilon, "delta": delta})
            return PrivacySummary(tenant, summary.budget, summary.spent, summary.reserved + epsilon)

    def settle_epsilon(self, job_id: str, spent: float, *, actor: str) -> PrivacySummary:
        """Record the epsilon a job actually spent (never more than reserved is refunded)."""
        with self.tx() as s:
            entry = s.scalar(select(PrivacyEntry).where(PrivacyEntry.job_id == job_id))
            if entry is None:
                raise NotFoundError(f"job {job_id!r} has no privacy reservation")
            entry.epsilon, entry.status, entry.updated_at = float(spent), "spent", utcnow()
            self.audited(s, actor, entry.tenant, "privacy.spend", f"job/{job_id}", {"epsilon": spent})
            s.flush()
            return self._summary(s, entry.tenant)

    def release_epsilon(self, job_id: str, *, actor: str) -> None:
        """Give back a reservation for a job that never trained (e.g. refused or cancelled before start)."""
        with self.tx() as s:
            entry = s.scalar(select(PrivacyEntry).where(PrivacyEntry.job_id == job_id))
            if entry is None or entry.status != "reserved":
                return
            entry.status, entry.updated_at = "released", utcnow()
            self.audited(s, actor, entry.tenant, "privacy.release", f"job/{job_id}", {"epsilon": entry.epsilon})
