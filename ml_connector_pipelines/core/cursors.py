"""Named high-water marks per tenant (last polled event id, last modified date...).

Advance a cursor only after the work it covers is durable (in the inbox or the ledger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from ml_connector_pipelines.core.tables import cursors, upsert, utcnow

if TYPE_CHECKING:
    from ml_connector_pipelines.core.store import StateStore


class Cursors:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, tenant: str, name: str) -> str | None:
        query = sa.select(cursors.c.value).where(cursors.c.tenant == tenant, cursors.c.name == name)
        with self.store.session() as conn:
            return conn.execute(query).scalar_one_or_none()

    def set(self, tenant: str, name: str, value: str) -> None:
        with self.store.session() as conn:
            upsert(
                conn,
                cursors,
                {"tenant": tenant, "name": name, "value": value, "updated_at": utcnow()},
                ["tenant", "name"],
            )
