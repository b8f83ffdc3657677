"""Idempotency keys for POST: a replayed request returns the first response and changes nothing.

Responses are kept in a table of their own (`control_idempotency`, created on first use)
keyed by the hash of the presented API key and the `Idempotency-Key` header, so a
restart of the API does not forget them. Only 2xx responses are kept: a refused request
changed nothing, so retrying it is harmless.

Secrets are never at rest: an API key in a response (a new key, a new tenant's first admin
key) is replaced by `null` before the body is stored, with `"key_shown_once": true`, so a
replay answers the object without its key. Records expire after `LLMFT_IDEMPOTENCY_TTL`
seconds (default one day): an expired record is ignored and purged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

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
    Column("body", Text, nullable=True),             # secrets redacted (see `redact_secrets`)
    Column("created_at", DateTime(timezone=True), nullable=False),
)

MAX_KEY_LENGTH = 128
DEFAULT_TTL_S = 24 * 3600
PURGE_EVERY_S = 60.0
API_KEY = re.compile(r"^llmft_[0-9a-f]+_\S+$")  # the shape of a plaintext key (store.tenants_and_keys mints them)


def request_digest(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def redact_secrets(node: Any) -> Any:
    """`node` with every plaintext API key replaced by None; the object holding it gains `key_shown_once`."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if isinstance(v, str) and API_KEY.match(v):
                out[k] = None
                out[f"{k}_shown_once"] = True
            else:
                out[k] = redact_secrets(v)
        return out
    if isinstance(node, list):
        return [redact_secrets(v) for v in node]
    if isinstance(node, str) and API_KEY.match(node):
        return None
    return node


def storable_body(body: bytes) -> str:
    """The response body as kept at rest: JSON with secrets redacted (a non-JSON body is kept only if key-free)."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return "" if "llmft_" in text else text
    return json.dumps(redact_secrets(data))


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)


class IdempotencyStore:
    def __init__(self, engine, ttl_s: float | None = None, clock=time.time):  # noqa: ANN001
        self.engine = engine
        self.ttl_s = float(ttl_s if ttl_s is not None else os.environ.get("LLMFT_IDEMPOTENCY_TTL", DEFAULT_TTL_S))
        if self.ttl_s <= 0:
            raise ValueError("LLMFT_IDEMPOTENCY_TTL must be > 0 seconds")
        self.clock = clock
        self._purged_at = float("-inf")
        metadata.create_all(engine, checkfirst=True)
        self.redact_existing()

    def redact_existing(self) -> int:
        """Redact keys in records written before secrets were redacted (an upgrade leaves none in clear)."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(records.c.scope, records.c.key, records.c.body)
                                .where(records.c.body.like("%llmft\\_%", escape="\\"))).all()
            for row in rows:
                clean = storable_body(row.body.encode())
                if clean != row.body:
                    conn.execute(update(records).where(records.c.scope == row.scope, records.c.key == row.key)
                                 .values(body=clean))
        return len(rows)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def _expired(self, created_at: datetime) -> bool:
        return _utc(created_at) < self._now() - timedelta(seconds=self.ttl_s)

    def purge(self) -> int:
        """Delete every expired record; returns how many."""
        cutoff = self._now() - timedelta(seconds=self.ttl_s)
        with self.engine.begin() as conn:
            return conn.execute(delete(records).where(records.c.created_at < cutoff)).rowcount or 0

    def begin(self, scope: str, key: str, digest: str) -> dict | None:
        """Claim `key`; returns the stored response of an earlier identical request, if any."""
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise SpecError(f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable characters")
        if self.clock() - self._purged_at > PURGE_EVERY_S:
            self._purged_at = self.clock()
            self.purge()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(records).values(scope=scope, key=key, request_digest=digest, state="pending",
                                                    created_at=self._now()))
            return None
        except SqlIntegrityError:
            pass
        with self.engine.connect() as conn:
            row = conn.execute(select(records).where(records.c.scope == scope, records.c.key == key)).first()
        if row is None:  # the first request failed and released the key in between: claim again
            return self.begin(scope, key, digest)
        if self._expired(row.created_at):  # an expired record is forgotten: the key is claimed afresh
            with self.engine.begin() as conn:
                conn.execute(delete(records).where(records.c.scope == scope, records.c.key == key,
                                                   records.c.created_at == row.created_at))
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
                    state="done", status=status, content_type=content_type, body=storable_body(body)))
            else:
                conn.execute(delete(records).where(records.c.scope == scope, records.c.key == key))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(records.c.key)).all())


def scope_of(plaintext_key: str) -> str:
    return hashlib.sha256(plaintext_key.encode()).hexdigest()


def error_body(message: str, kind: str) -> bytes:
    from llmft.control.redaction import scrub

    return json.dumps({"error": {"type": kind, "message": scrub(message)}}).encode()
