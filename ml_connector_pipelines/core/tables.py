"""The state store's tables (SQLAlchemy Core). migrations/ creates them; keep both in step.

A test compares this metadata with the migrated database, so a column added here without a
migration fails the suite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

metadata = sa.MetaData()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    SQLite has no time zones: values are stored as naive UTC and read back as aware UTC, so
    Python code compares datetimes the same way whichever backend is in use.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("product", sa.String(20), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("removed_at", UtcDateTime),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("tenant", sa.String(100), sa.ForeignKey("tenants.name"), primary_key=True),
    sa.Column("system", sa.String(50), primary_key=True),
    # Fernet token only: plaintext secrets never reach the database.
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("flow", sa.String(100), nullable=False),
    sa.Column("source_id", sa.String(255), nullable=False),
    sa.Column("target_id", sa.String(255)),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("status", sa.String(10), nullable=False),
    # Status before the current pending claim (NULL: the row is new), restored by release().
    sa.Column("previous_status", sa.String(10)),
    sa.Column("run_id", sa.String(100)),
    sa.Column("reason", sa.Text),
    sa.Column("extra", sa.JSON, nullable=False),
    # Bumped on every change: claims are conditional updates on it (optimistic locking).
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("claimed_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant", "flow", "source_id", name="uq_ledger_record"),
    sa.Index("ix_ledger_target", "tenant", "flow", "target_id"),
    sa.Index("ix_ledger_status", "tenant", "flow", "status"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("flow", sa.String(100), nullable=False),
    sa.Column("source_id", sa.String(255), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("target_id", sa.String(255)),
    sa.Column("run_id", sa.String(100)),
    sa.Column("partition", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Column("details", sa.JSON),
    sa.Index("ix_audit_record", "tenant", "flow", "source_id"),
    sa.Index("ix_audit_run", "run_id"),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(50), nullable=False),
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("processed_at", UtcDateTime),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_at", UtcDateTime),
    sa.Column("error", sa.Text),
    # A redelivered webhook or a re-listed file carries the same event id: stored once.
    sa.UniqueConstraint("source", "tenant", "event_id", name="uq_inbox_event"),
    sa.Index("ix_inbox_pending", "source", "processed_at"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("tenant", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# One token bucket per (system, credential), shared by every process and run that uses it.
rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("system", sa.String(50), primary_key=True),
    sa.Column("credential", sa.String(255), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    # Unix seconds: the one clock every process on every machine shares (monotonic clocks are not).
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Named counters that only ever go up (X12 interchange control numbers, per sender/receiver).
sequences = sa.Table(
    "sequences",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)


def dialect_insert(backend: str, table: sa.Table) -> Any:
    """INSERT with ON CONFLICT: both backends spell it so; SQLAlchemy has one construct each."""
    return (postgresql if backend == "postgresql" else sqlite).insert(table)


def _dialect_insert(conn: Connection, table: sa.Table) -> Any:
    return dialect_insert(conn.dialect.name, table)


def insert_or_ignore(conn: Connection, table: sa.Table, values: dict[str, Any], keys: list[str]) -> bool:
    """Insert a row unless one with the same `keys` exists. True when this call inserted it.

    ON CONFLICT instead of catching IntegrityError: on Postgres an error aborts the whole
    transaction, and concurrent inserters would otherwise race.
    """
    stmt = _dialect_insert(conn, table).values(**values).on_conflict_do_nothing(index_elements=keys)
    return conn.execute(stmt).rowcount == 1


def upsert(conn: Connection, table: sa.Table, values: dict[str, Any], keys: list[str]) -> None:
    """Insert a row, or overwrite the non-key columns of the row with the same `keys`."""
    stmt = _dialect_insert(conn, table).values(**values)
    changes = {name: stmt.excluded[name] for name in values if name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changes))
