"""The state store: one SQLAlchemy engine on SQLite (default) or Postgres (production).
`State` (in `state.py`) bundles what flows use of it.

SQLite runs in WAL mode with a busy timeout and `synchronous=NORMAL` (SQLite's advice for WAL: a
killed process loses no commit; a power cut may lose the last ones, never corrupt the file).
Every write transaction starts with BEGIN IMMEDIATE: writers queue up on the lock instead of
failing half-way when two processes read then write. Within one process, writers also queue on a
Python lock first: SQLite's busy handler polls with sleeps of up to 100 ms, so threads of one
process contending for the write lock wasted most of a push's time waiting (issue 13).
`read()` is for reads only: a deferred BEGIN that takes no write lock and ends in a rollback, so a
lookup costs no commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from ml_connector_pipelines.core import tables
from ml_connector_pipelines.core.http import RateLimit
from ml_connector_pipelines.core.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 7_340_117


class StateStore:
    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        # One writer at a time on SQLite anyway; a thread waits here, woken as soon as the last
        # writer commits (reentrant: a nested session behaves as it would without the lock).
        self._writer: threading.RLock | None = None
        if self.url.get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(self.url)
            self._writer = threading.RLock()
        else:
            # pre_ping: long-lived Dagster processes outlive server-side idle timeouts.
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> StateStore:
        return cls(settings.db_url)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on exit, rolled back on error."""
        if self._writer is None:
            with self.engine.begin() as conn:
                yield conn
            return
        if not self._writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            # As SQLite's own busy timeout would have: the writer ahead never finished.
            raise TimeoutError(f"state store: no write lock within {SQLITE_BUSY_TIMEOUT_MS} ms")
        try:
            with self.engine.begin() as conn:
                yield conn
        finally:
            self._writer.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads only: no write lock, no commit (rolled back on exit)."""
        with self.engine.connect().execution_options(state_read=True) as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration shipped in the package.

        Safe to call from several processes at once: the migration runs inside one transaction
        that holds a lock (BEGIN IMMEDIATE on SQLite, an advisory lock on Postgres), so the
        second process finds the schema already current.
        """
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self.session() as conn:
            if self.backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def next_sequence(self, name: str) -> int:
        """The next value of a named counter: 1 first, then strictly increasing, never handed out
        twice, even to two processes at once (one atomic upsert ... RETURNING)."""
        table = tables.sequences
        insert = tables.dialect_insert(self.backend, table).values(
            name=name, value=1, updated_at=tables.utcnow()
        )
        statement = insert.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": table.c.value + 1, "updated_at": insert.excluded.updated_at},
        ).returning(table.c.value)
        with self.session() as conn:
            return int(conn.execute(statement).scalar_one())

    def lease_tokens(self, system: str, credential: str, limit: RateLimit, count: int) -> float:
        """Take `count` tokens from the shared bucket of (system, credential): the seconds to wait
        before spending them. Reservations may drive the bucket negative; each later caller then
        waits for its own refill, so together all processes stay within `limit`."""
        table = tables.rate_buckets
        key = (table.c.system == system) & (table.c.credential == credential)
        with self.session() as conn:
            now = time.time()
            tables.insert_or_ignore(
                conn,
                table,
                {"system": system, "credential": credential, "tokens": float(limit.burst), "updated_at": now},
                ["system", "credential"],
            )
            # The row lock (FOR UPDATE on Postgres; SQLite's BEGIN IMMEDIATE already holds the
            # database) makes read-modify-write atomic across processes.
            row = conn.execute(
                sa.select(table.c.tokens, table.c.updated_at).where(key).with_for_update()
            ).one()
            refilled = row.tokens + max(0.0, now - row.updated_at) * limit.per_second
            tokens = min(float(limit.burst), refilled) - count
            conn.execute(
                sa.update(table).where(key).values(tokens=tokens, updated_at=max(now, row.updated_at))
            )
        return 0.0 if tokens >= 0 else -tokens / limit.per_second

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: sa.URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would not BEGIN before DDL
        # or SELECT) and issue BEGIN ourselves below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe in WAL mode (module docstring)
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("state_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
