"""The state store: one SQLAlchemy engine on SQLite (default) or Postgres (production).

SQLite runs in WAL mode with a busy timeout, and every transaction starts with BEGIN IMMEDIATE:
writers queue up on the lock instead of failing half-way when two processes read then write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from ml_connector_pipelines.core import tables
from ml_connector_pipelines.core.alerts import Alerts
from ml_connector_pipelines.core.audit import AuditWriter
from ml_connector_pipelines.core.cursors import Cursors
from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.ledger import Ledger, RunFinished
from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.sync import SyncSession
from ml_connector_pipelines.core.tenants import TenantStore

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 7_340_117


class StateStore:
    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        if self.url.get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(self.url)
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
        with self.engine.begin() as conn:
            yield conn

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
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass
class State:
    """Everything a flow needs from the state store, opened and migrated in one call."""

    store: StateStore
    tenants: TenantStore
    ledger: Ledger
    audit: AuditWriter
    inbox: Inbox
    cursors: Cursors
    alerts: Alerts

    @classmethod
    def open(cls, settings: Settings) -> State:
        store = StateStore.from_settings(settings)
        store.migrate()
        audit = AuditWriter(store)
        return cls(
            store=store,
            tenants=TenantStore(store),
            ledger=Ledger(store),
            audit=audit,
            inbox=Inbox(store),
            cursors=Cursors(store),
            alerts=Alerts(audit),
        )

    def sync_session(
        self,
        *,
        tenant: str,
        flow: str,
        run_id: str,
        partition: str | None,
        run_finished: RunFinished | None = None,
    ) -> SyncSession:
        return SyncSession(
            self.store,
            tenant=tenant,
            flow=flow,
            run_id=run_id,
            partition=partition,
            alerts=self.alerts,
            run_finished=run_finished,
        )

    def forget_sync_state(self, tenant: str) -> None:
        """Drop a tenant's ledger, cursors and inbox; the audit trail stays.

        Only for sandbox tenants whose targets were thrown away (the demo starts a fresh sandbox on
        every run): the ledger would otherwise claim records exist that the new sandbox never saw.
        """
        with self.store.session() as conn:
            for table in (tables.ledger, tables.cursors, tables.inbox):
                conn.execute(sa.delete(table).where(table.c.tenant == tenant))
