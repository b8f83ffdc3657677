"""Idempotency keys for POST: a replayed request returns the first response and changes nothing.

Responses are kept in a table of their own (`control_idempotency`, created on first use)
keyed by the hash of the presented API key and the `Idempotency-Key` header, so a
restart of the API does not forget them. Only 2xx responses are kept: a refused request
changed nothing, so retrying it is harmless.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from llmft.errors import ConflictError, SpecError

metadata = MetaData()
records = Table(
    "control_idempotency", metadata,
    Column("scope", String(64), primary_key=True),   # sha256 of the API key that sent it
    Column("key", String(128), primary_key=True),    # the Idempotency-Key header
    Column("request_digest", String(64), nullable=False),
    Column("state", String(8), nullable=False),      # pending | done
    Column("status", Integer, nullable=True),
    Column("content_type", String(128), nullable=True),
    Column("body", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

MAX_KEY_LENGTH = 128


def request_digest(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


class IdempotencyStore:
    def __init__(self, engine):  # noqa: ANN001
        self.engine = engine
        metadata.create_all(engine, checkfirst=True)

    def begin(self, scope: str, key: str, digest: str) -> dict | None:
        """Claim `key`; returns the stored response of an earlier identical request, if any."""
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise SpecError(f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable characters")
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(records).values(scope=scope, key=key, request_digest=digest, state="pending",
                                                    created_at=datetime.now(timezone.utc)))
            return None
        except SqlIntegrityError:
            pass
        with self.engine.connect() as conn:
            row = conn.execute(select(records).where(records.c.scope == scope, records.c.key == key)).first()
        if row is None:  # the first request failed and released the key in between: claim again
            return self.begin(scope, key, digest)
        if row.request_digest != digest:
            raise ConflictError(f"Idempotency-Key {key!r} was already used for a different request")
        if row.state != "done":
            raise ConflictError(f"a request with Idempotency-Key {key!r} is still in progress")
        return {"status": row.status, "content_type": row.content_type, "body": row.body}

    def finish(self, scope: str, key: str, status: int, content_type: str | None, body: bytes) -> None:
        with self.engine.begin() as conn:
            if 200 <= status < 300:
                conn.execute(update(records).where(records.c.scope == scope, records.c.key == key).values(
                    state="done", status=status, content_type=content_type, body=body.decode("utf-8", "replace")))
            else:
                conn.execute(delete(records).where(records.c.scope == scope, records.c.key == key))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(records.c.key)).all())


def scope_of(plaintext_key: str) -> str:
    return hashlib.sha256(plaintext_key.encode()).hexdigest()


def error_body(message: str, kind: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message}}).encode()
