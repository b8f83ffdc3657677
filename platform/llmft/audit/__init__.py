"""Append-only, hash-chained audit log: every state change in llmft writes one record."""

from llmft.audit.chain import GENESIS, Verdict, verify_records
from llmft.audit.log import AuditLog

__all__ = ["AuditLog", "GENESIS", "Verdict", "verify_records"]
