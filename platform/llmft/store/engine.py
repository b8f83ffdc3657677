"""Engine creation and schema migration: SQLite by default, any SQLAlchemy URL in production."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).with_name("migrations")
# The Postgres advisory lock a write transaction holds until it ends: what BEGIN IMMEDIATE is on SQLite.
WRITE_LOCK = 7311001


def make_engine(url: str, *, for_writes: bool = True) -> Engine:
    """Create an engine whose write transactions take the database's write lock at BEGIN.

    pysqlite's default deferred transactions let two processes both read the
    audit head and then race to append; BEGIN IMMEDIATE serialises writers, and
    busy_timeout makes the loser wait instead of failing. Readers keep deferred
    transactions so that, under WAL, they never block a writer.

    Postgres (READ COMMITTED) would let two writers read the same row or audit head
    and both write: the read-modify-writes of the repositories (a job's status and
    result, a version's lineage, an alias, a budget) would lose updates and the audit
    chain would fork. A write transaction there takes one transaction-scoped advisory
    lock first, so writers serialise as on SQLite while readers never wait (MVCC).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":  # the driver llmft ships (psycopg 3), not SQLAlchemy's psycopg2 default
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True)
        if for_writes:
            @event.listens_for(engine, "begin")
            def _on_pg_begin(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        return engine
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if for_writes else "BEGIN")

    return engine


def alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe from concurrent processes)."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:  # holds the write lock (see make_engine): one migrator at a time
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
