"""Durable inbox for inbound events (webhooks, Cleo files, polled Stripe events).

Receivers only `put`; sensors and runs `claim` what is pending, process it and mark it. The
claim is one conditional UPDATE, so two runs never both take an event.

An event claimed by a run counts as let go when the claim's lease runs out, or at once when the
caller's `run_finished` (see core/ledger.py) reports that run ended: a run that died mid-batch does
not hold its events back for the length of the lease.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ml_connector_pipelines.core.ledger import RunFinished
from ml_connector_pipelines.core.tables import dialect_insert, inbox, insert_or_ignore, utcnow

if TYPE_CHECKING:
    from ml_connector_pipelines.core.store import StateStore


@dataclass
class InboxEvent:
    id: int
    source: str
    event_id: str
    tenant: str
    payload: str
    received_at: datetime
    processed_at: datetime | None
    claimed_by: str | None
    claimed_at: datetime | None
    error: str | None


_EVENT_KEY = ("source", "tenant", "event_id")  # the inbox's unique key: an event is stored once


class Inbox:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def put(
        self, source: str, tenant: str, event_id: str, payload: str, received_at: datetime | None = None
    ) -> bool:
        """Store an event once per tenant. False when it is already there: a redelivery."""
        values = {
            "source": source,
            "event_id": event_id,
            "tenant": tenant,
            "payload": payload,
            "received_at": received_at or utcnow(),
        }
        with self.store.session() as conn:
            return insert_or_ignore(conn, inbox, values, ["source", "tenant", "event_id"])

    def put_many(self, events: list[tuple[str, str, str, str]], conn: Connection | None = None) -> list[bool]:
        """`put` for many (source, tenant, event id, payload) in one transaction, so one commit
        stores them all (the receiver's group commit). One bool per event, in order. Given `conn`
        (a connection the caller keeps, not in a transaction), the transaction is begun and
        committed on it, which saves a pool checkout per batch.

        One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING the keys it inserted (SQLAlchemy
        batches the rows into few statements), instead of a statement per event: an event is new
        when its key came back, and only its first occurrence in `events` counts as stored."""
        if not events:
            return []
        received_at = utcnow()
        rows = [
            {
                "source": source,
                "tenant": tenant,
                "event_id": event_id,
                "payload": payload,
                "received_at": received_at,
            }
            for source, tenant, event_id, payload in events
        ]
        with self.store.session() if conn is None else _begun(conn) as writing:
            statement = (
                dialect_insert(writing.dialect.name, inbox)
                .on_conflict_do_nothing(index_elements=list(_EVENT_KEY))
                .returning(*(inbox.c[name] for name in _EVENT_KEY))
            )
            inserted = {tuple(row) for row in writing.execute(statement, rows)}
        stored: list[bool] = []
        seen: set[tuple[str, str, str]] = set()
        for source, tenant, event_id, _ in events:
            key = (source, tenant, event_id)
            stored.append(key in inserted and key not in seen)
            seen.add(key)
        return stored

    def get(self, id: int) -> InboxEvent | None:
        with self.store.read() as conn:
            row = conn.execute(sa.select(inbox).where(inbox.c.id == id)).mappings().first()
        return InboxEvent(**row) if row else None

    def pending(
        self,
        source: str,
        tenant: str | None = None,
        limit: int = 500,
        lease_seconds: int = 900,
        run_finished: RunFinished | None = None,
    ) -> list[InboxEvent]:
        """Unprocessed events nobody holds (claims older than lease_seconds, or of runs that
        `run_finished` reports ended, count as let go), oldest first."""
        scope = inbox.c.source == source
        if tenant is not None:
            scope = sa.and_(scope, inbox.c.tenant == tenant)
        with self.store.session() as conn:
            free = _unclaimed(conn, scope, lease_seconds, run_finished)
            rows = conn.execute(sa.select(inbox).where(scope, free).order_by(inbox.c.id).limit(limit))
            return [InboxEvent(**row) for row in rows.mappings()]

    def claim(
        self,
        ids: list[int],
        run_id: str,
        lease_seconds: int = 900,
        run_finished: RunFinished | None = None,
    ) -> list[int]:
        """Take the events among `ids` that are still unclaimed; returns the ids this call won."""
        if not ids:
            return []
        with self.store.session() as conn:
            free = _unclaimed(conn, inbox.c.id.in_(ids), lease_seconds, run_finished)
            stmt = (
                sa.update(inbox)
                .where(inbox.c.id.in_(ids), free)
                .values(claimed_by=run_id, claimed_at=utcnow())
                .returning(inbox.c.id)
            )
            return sorted(conn.execute(stmt).scalars())

    def mark_processed(self, ids: list[int], run_id: str, error: str | None = None) -> int:
        """Done with these events (with `error`, they are kept as dead letters, not retried).
        Only events this run holds are marked; returns how many were."""
        if not ids:
            return 0
        stmt = (
            sa.update(inbox)
            .where(inbox.c.id.in_(ids), inbox.c.claimed_by == run_id, inbox.c.processed_at.is_(None))
            .values(processed_at=utcnow(), error=error)
        )
        with self.store.session() as conn:
            return conn.execute(stmt).rowcount

    def release(self, ids: list[int]) -> None:
        """Hand unprocessed events back, for the next run to claim."""
        if not ids:
            return
        stmt = (
            sa.update(inbox)
            .where(inbox.c.id.in_(ids), inbox.c.processed_at.is_(None))
            .values(claimed_by=None, claimed_at=None)
        )
        with self.store.session() as conn:
            conn.execute(stmt)


@contextmanager
def _begun(conn: Connection) -> Iterator[Connection]:
    """One transaction on a connection the caller holds: committed on exit, rolled back on error."""
    with conn.begin():
        yield conn


def _unclaimed(
    conn: Connection, scope: sa.ColumnElement[bool], lease_seconds: int, run_finished: RunFinished | None
) -> sa.ColumnElement[bool]:
    """Unprocessed and held by nobody: never claimed, lease run out, or held by a run that ended.

    The ended holders are named in the condition itself, so an UPDATE built on it still only takes
    a row whose holder is one of them, even if another run claims the row in between.
    """
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    let_go = sa.or_(inbox.c.claimed_by.is_(None), inbox.c.claimed_at.is_(None), inbox.c.claimed_at < cutoff)
    if run_finished is not None:
        holders = conn.execute(
            sa.select(inbox.c.claimed_by)
            .where(scope, inbox.c.processed_at.is_(None), sa.not_(let_go))
            .distinct()
        ).scalars()
        ended = [run_id for run_id in holders if run_finished(run_id)]
        if ended:
            let_go = sa.or_(let_go, inbox.c.claimed_by.in_(ended))
    return sa.and_(inbox.c.processed_at.is_(None), let_go)
