"""`State`: everything a flow needs from the state store (tenants, ledger, audit, inbox, cursors,
alerts), opened and migrated in one call.

It lives apart from `store.py` so the stores it bundles can name `StateStore` without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ml_connector_pipelines.core import tables
from ml_connector_pipelines.core.alerts import Alerts
from ml_connector_pipelines.core.audit import AuditWriter
from ml_connector_pipelines.core.cursors import Cursors
from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.ledger import Ledger, RunFinished
from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.sync import SyncSession
from ml_connector_pipelines.core.tenants import TenantStore


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

    def next_sequence(self, name: str) -> int:
        """See `StateStore.next_sequence`: e.g. X12 control numbers per sender/receiver pair."""
        return self.store.next_sequence(name)

    def forget_sync_state(self, tenant: str) -> None:
        """Drop a tenant's ledger, cursors and inbox; the audit trail stays.

        Only for sandbox tenants whose targets were thrown away (the demo starts a fresh sandbox on
        every run): the ledger would otherwise claim records exist that the new sandbox never saw.
        """
        with self.store.session() as conn:
            for table in (tables.ledger, tables.cursors, tables.inbox):
                conn.execute(sa.delete(table).where(table.c.tenant == tenant))
