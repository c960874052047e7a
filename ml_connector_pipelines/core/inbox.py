"""Durable inbox for inbound events (webhooks, Cleo files, polled Stripe events).

Receivers only `put`; sensors and runs `claim` what is pending, process it and mark it. The
claim is one conditional UPDATE, so two runs never both take an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ml_connector_pipelines.core.tables import inbox, insert_or_ignore, utcnow

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

    def get(self, id: int) -> InboxEvent | None:
        with self.store.session() as conn:
            row = conn.execute(sa.select(inbox).where(inbox.c.id == id)).mappings().first()
        return InboxEvent(**row) if row else None

    def pending(
        self, source: str, tenant: str | None = None, limit: int = 500, lease_seconds: int = 900
    ) -> list[InboxEvent]:
        """Unprocessed events nobody holds (claims older than lease_seconds count as let go), oldest first."""
        query = sa.select(inbox).where(inbox.c.source == source, _unclaimed(lease_seconds))
        if tenant is not None:
            query = query.where(inbox.c.tenant == tenant)
        with self.store.session() as conn:
            rows = conn.execute(query.order_by(inbox.c.id).limit(limit)).mappings()
            return [InboxEvent(**row) for row in rows]

    def claim(self, ids: list[int], run_id: str, lease_seconds: int = 900) -> list[int]:
        """Take the events among `ids` that are still unclaimed; returns the ids this call won."""
        if not ids:
            return []
        stmt = (
            sa.update(inbox)
            .where(inbox.c.id.in_(ids), _unclaimed(lease_seconds))
            .values(claimed_by=run_id, claimed_at=utcnow())
            .returning(inbox.c.id)
        )
        with self.store.session() as conn:
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


def _unclaimed(lease_seconds: int) -> sa.ColumnElement[bool]:
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    return sa.and_(
        inbox.c.processed_at.is_(None),
        sa.or_(inbox.c.claimed_by.is_(None), inbox.c.claimed_at < cutoff),
    )
