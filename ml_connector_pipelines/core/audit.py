"""The record-level audit trail: one append-only row per record per action (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ml_connector_pipelines.core.redact import redact
from ml_connector_pipelines.core.tables import audit_events, utcnow

if TYPE_CHECKING:
    from ml_connector_pipelines.core.store import StateStore

ACTIONS = (
    "created",
    "updated",
    "recreated",
    "linked",  # an existing target record adopted on first sight (SyncSession.sync match=)
    "skipped",
    "flagged",
    "failed",
    "deleted",
    "posted",
    "status",
    "alert",
    "replayed",  # a flagged record or event handed back for another try (`ml-connector replay`)
)


@dataclass
class AuditEvent:
    id: int
    at: datetime
    tenant: str
    flow: str
    source_id: str
    action: str
    target_id: str | None
    run_id: str | None
    partition: str | None
    reason: str | None
    details: dict[str, Any] | None


_INSERT = sa.insert(audit_events)  # built once: record_many runs for every pushed page


class AuditWriter:
    """Writes and reads audit rows. There is deliberately no way to change or delete one."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def record(
        self,
        tenant: str,
        flow: str,
        source_id: str,
        action: str,
        *,
        run_id: str | None = None,
        partition: str | None = None,
        target_id: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> AuditEvent:
        """Append one row; inside `conn`'s transaction when given (batched with other writes)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; expected one of {ACTIONS}")
        values = {
            "at": utcnow(),
            "tenant": tenant,
            "flow": flow,
            "source_id": source_id,
            "action": action,
            "target_id": target_id,
            "run_id": run_id,
            "partition": partition,
            # Reasons quote exception text: mask any secret this process has decrypted.
            "reason": redact(reason) if reason is not None else None,
            "details": details,
        }
        statement = sa.insert(audit_events).values(**values)
        if conn is not None:
            event_id = conn.execute(statement).inserted_primary_key[0]
        else:
            with self.store.session() as own:
                event_id = own.execute(statement).inserted_primary_key[0]
        return AuditEvent(id=event_id, **values)

    def record_many(self, rows: list[dict[str, Any]], conn: Connection) -> None:
        """Append several rows (each the keyword arguments of `record`) with one executemany
        INSERT inside `conn`'s transaction; their ids are not read back."""
        values = []
        for row in rows:
            if row["action"] not in ACTIONS:
                raise ValueError(f"unknown audit action {row['action']!r}; expected one of {ACTIONS}")
            reason = row.get("reason")
            values.append(
                {
                    "at": utcnow(),
                    "tenant": row["tenant"],
                    "flow": row["flow"],
                    "source_id": row["source_id"],
                    "action": row["action"],
                    "target_id": row.get("target_id"),
                    "run_id": row.get("run_id"),
                    "partition": row.get("partition"),
                    "reason": redact(reason) if reason is not None else None,
                    "details": row.get("details"),
                }
            )
        if values:
            conn.execute(_INSERT, values)

    def history(self, tenant: str, flow: str | None = None, record: str | None = None) -> list[AuditEvent]:
        """Oldest first. `record` is a source id."""
        query = sa.select(audit_events).where(audit_events.c.tenant == tenant)
        if flow is not None:
            query = query.where(audit_events.c.flow == flow)
        if record is not None:
            query = query.where(audit_events.c.source_id == record)
        with self.store.read() as conn:
            return [AuditEvent(**row) for row in conn.execute(query.order_by(audit_events.c.id)).mappings()]
