"""The Store's shared core: engine, migrations, transactions, audit within each transaction."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.orm import Session

from llmft.store.audit_log import AuditLog
from llmft.store.engine import make_engine, migrate

_MIGRATED: set[str] = set()


class StoreBase:
    def __init__(self, url: str | None = None):
        if url is None:
            from llmft.settings import Settings

            url = Settings.from_env().ensure_dirs().db_url
        self.url = url
        self.engine = make_engine(url)
        self.read_engine = make_engine(url, for_writes=False)
        if url not in _MIGRATED:  # once per process: alembic costs ~100 ms
            migrate(self.engine)
            _MIGRATED.add(url)
        self.audit = AuditLog(self.engine, self.read_engine)

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One write transaction (BEGIN IMMEDIATE on SQLite); commits on success, rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session

    def audited(self, session: Session, actor: str, tenant: str | None, action: str, obj: str,
                payload: dict | None = None) -> None:
        self.audit.append_in(session, actor, tenant, action, obj, payload)

    def close(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
