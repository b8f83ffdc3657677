"""Control-plane metadata (tenants, keys, snapshots, jobs, privacy ledger) and the audit log on SQLAlchemy.

SQLite by default; any SQLAlchemy URL via LLMFT_DB_URL (Postgres in production).
Every mutation writes its audit record in the same transaction (`audit_log`, chained by `audit_chain`).
"""

from llmft.store.dataset_snapshots import DatasetsMixin
from llmft.store.deployment_records import DeploymentsMixin
from llmft.store.job_records import JOB_KINDS, TERMINAL, TRANSITIONS, JobsMixin
from llmft.store.model_versions import AliasMoveRecord, ModelsMixin, ModelVersionRecord
from llmft.store.privacy_ledger import PrivacyMixin
from llmft.store.records import (
    ApiKeyRecord,
    CheckpointRecord,
    JobEventRecord,
    JobRecord,
    PrivacySummary,
    SnapshotRecord,
    TenantRecord,
)
from llmft.store.tenants_and_keys import ROLES, TenancyMixin


class Store(TenancyMixin, DatasetsMixin, JobsMixin, PrivacyMixin, ModelsMixin, DeploymentsMixin):
    """The metadata store; one instance per process is enough (it owns a connection pool)."""


__all__ = [
    "AliasMoveRecord", "ApiKeyRecord", "CheckpointRecord", "JOB_KINDS", "JobEventRecord", "JobRecord",
    "ModelVersionRecord", "PrivacySummary",
    "ROLES", "SnapshotRecord", "Store", "TERMINAL", "TRANSITIONS", "TenantRecord",
]
