"""Append-only audit log stored in the metadata DB, each record chained to the previous one."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from llmft.store.audit_chain import GENESIS, Verdict, payload_digest, record_digest, verify_records
from llmft.store.engine import WRITE_LOCK
from llmft.store.schema import AuditEvent

_COLUMNS = ("seq", "ts", "actor", "tenant", "action", "object", "payload", "payload_digest", "prev_digest", "digest")


class AuditLog:
    """Appends inside the caller's transaction so a state change and its audit record commit together."""

    def __init__(self, engine: Engine, read_engine: Engine | None = None):
        self.engine = engine
        self.read_engine = read_engine or engine

    def append_in(self, session: Session, actor: str, tenant: str | None, action: str, obj: str,
                  payload: dict | None = None) -> dict:
        """Append within `session`'s transaction, under the DB write lock: the head read here must stay the head.

        A Store's write transactions already hold it (BEGIN IMMEDIATE on SQLite, the advisory
        lock on Postgres); taking it again here covers a session on any other engine.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
        head = session.execute(select(AuditEvent.seq, AuditEvent.digest).order_by(AuditEvent.seq.desc()).limit(1)).first()
        payload = json.loads(json.dumps(payload or {}, default=str))
        record = {
            "seq": (head.seq + 1) if head else 1,
            "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "actor": actor,
            "tenant": tenant,
            "action": action,
            "object": obj,
            "payload": payload,
            "payload_digest": payload_digest(payload),
            "prev_digest": head.digest if head else GENESIS,
        }
        record["digest"] = record_digest(record)
        session.add(AuditEvent(**record))
        return record

    def append(self, actor: str, tenant: str | None, action: str, obj: str, payload: dict | None = None) -> dict:
        with Session(self.engine) as session, session.begin():
            return self.append_in(session, actor, tenant, action, obj, payload)

    def records(self, tenant: str | None = None, since_seq: int = 0) -> Iterator[dict]:
        with Session(self.read_engine) as session:
            query = select(AuditEvent).where(AuditEvent.seq > since_seq).order_by(AuditEvent.seq)
            if tenant is not None:
                query = query.where(AuditEvent.tenant == tenant)
            for row in session.scalars(query).yield_per(1000):
                yield {c: getattr(row, c) for c in _COLUMNS}

    def verify(self, anchor: dict | None = None) -> Verdict:
        return verify_records(self.records(), anchor)

    def head(self) -> dict:
        """The newest record's seq and digest: hand it to a SIEM/WORM store as an anchor."""
        with Session(self.read_engine) as session:
            row = session.execute(select(AuditEvent.seq, AuditEvent.digest).order_by(AuditEvent.seq.desc()).limit(1)).first()
        return {"seq": row.seq, "digest": row.digest} if row else {"seq": 0, "digest": GENESIS}

    def export_jsonl(self, path: Path, tenant: str | None = None, since_seq: int = 0) -> int:
        """Write records as JSON lines (one event per line, chain fields included) for a SIEM."""
        count = 0
        with open(path, "w", encoding="utf-8") as fh:
            for rec in self.records(tenant, since_seq):
                fh.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")
                count += 1
        return count
