"""The ledger: one row per (tenant, flow, source record) saying what the target holds for it.

A row goes `pending` (claimed by one run) before any call to the target and `done` (with the
target's id and the content hash that was sent) or `flagged` after it; see DESIGN.md §4.
Claims are conditional updates on `version`, so two runs or processes never both hold one.

A claim held by another run blocks until its lease runs out, unless the caller passes
`run_finished` (run id -> has that run ended?): then a claim of a run known to be over (its process
died, or the orchestrator marked it failed or canceled) is taken over at once. The lease stays the
fallback for holders nobody can vouch for. Core knows no orchestrator: integrations/runs.py supplies
the Dagster check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from ml_connector_pipelines.core.tables import dialect_insert, ledger, utcnow

if TYPE_CHECKING:
    from ml_connector_pipelines.core.store import StateStore

Status = Literal["pending", "done", "flagged"]
# run id -> True when that run has ended (success, failure, canceled, or its process is gone).
RunFinished = Callable[[str], bool]


class ClaimLost(RuntimeError):
    """The row is no longer pending for this run (its lease expired and another run took it)."""


@dataclass
class LedgerEntry:
    tenant: str
    flow: str
    source_id: str
    target_id: str | None
    content_hash: str | None
    status: Status
    run_id: str | None
    reason: str | None
    extra: dict[str, Any]
    version: int
    updated_at: datetime
    # Status before the current pending claim; None when the claim created the row. A claim
    # that finds "pending" here took over from a run that may have sent the record already.
    previous_status: Status | None = None
    claimed_at: datetime | None = None
    id: int | None = None  # the row's key


def _entry(row: RowMapping) -> LedgerEntry:
    return LedgerEntry(**{name: row[name] for name in LedgerEntry.__dataclass_fields__})


def _key(tenant: str, flow: str, source_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(ledger.c.tenant == tenant, ledger.c.flow == flow, ledger.c.source_id == source_id)


class Ledger:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    @contextmanager
    def _write(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's transaction when it passes one (several writes, one commit), else a new one."""
        if conn is not None:
            yield conn
        else:
            with self.store.session() as own:
                yield own

    def get(self, tenant: str, flow: str, source_id: str) -> LedgerEntry | None:
        with self.store.read() as conn:
            row = conn.execute(sa.select(ledger).where(_key(tenant, flow, source_id))).mappings().first()
        return _entry(row) if row else None

    def get_many(self, tenant: str, flow: str, source_ids: list[str]) -> dict[str, LedgerEntry]:
        """The rows of these records (one query); records without a row are absent."""
        if not source_ids:
            return {}
        query = sa.select(ledger).where(
            ledger.c.tenant == tenant, ledger.c.flow == flow, ledger.c.source_id.in_(source_ids)
        )
        with self.store.read() as conn:
            return {row["source_id"]: _entry(row) for row in conn.execute(query).mappings()}

    def find_by_target(self, tenant: str, flow: str, target_id: str) -> LedgerEntry | None:
        query = sa.select(ledger).where(
            ledger.c.tenant == tenant, ledger.c.flow == flow, ledger.c.target_id == target_id
        )
        with self.store.read() as conn:
            row = conn.execute(query.order_by(ledger.c.id)).mappings().first()
        return _entry(row) if row else None

    def entries(self, tenant: str, flow: str, status: Status | None = None) -> list[LedgerEntry]:
        query = sa.select(ledger).where(ledger.c.tenant == tenant, ledger.c.flow == flow)
        if status is not None:
            query = query.where(ledger.c.status == status)
        with self.store.read() as conn:
            return [_entry(row) for row in conn.execute(query.order_by(ledger.c.id)).mappings()]

    def claim(
        self,
        tenant: str,
        flow: str,
        source_id: str,
        run_id: str,
        lease_seconds: int = 900,
        run_finished: RunFinished | None = None,
        conn: Connection | None = None,
    ) -> LedgerEntry | None:
        """Mark the record pending for `run_id`; None when another run holds it.

        Wins when there is no row yet, the row is done or flagged, it is pending for this same
        run, or pending for another run whose lease (claimed_at + lease_seconds) has expired or
        was let go, or that `run_finished` reports ended. Target id, hash and extra are kept: the
        caller needs them to decide between create, update and skip.
        """
        now = utcnow()
        with self._write(conn) as conn:
            new = {
                "tenant": tenant,
                "flow": flow,
                "source_id": source_id,
                "status": "pending",
                "run_id": run_id,
                "extra": {},
                "version": 1,
                "claimed_at": now,
                "updated_at": now,
            }
            # ON CONFLICT DO NOTHING RETURNING: the new row, or nothing when the row existed.
            insert = dialect_insert(conn.dialect.name, ledger).values(**new)
            inserted = (
                conn.execute(
                    insert.on_conflict_do_nothing(index_elements=["tenant", "flow", "source_id"]).returning(
                        *ledger.c
                    )
                )
                .mappings()
                .first()
            )
            if inserted is not None:
                return _entry(inserted)
            row = conn.execute(sa.select(ledger).where(_key(tenant, flow, source_id))).mappings().one()
            if not _claimable(row, run_id, now - timedelta(seconds=lease_seconds), run_finished):
                return None
            # None here means a concurrent claimer changed the row first: it won.
            return _change(
                conn, row, status="pending", previous_status=row["status"], run_id=run_id, claimed_at=now
            )

    def complete(
        self,
        tenant: str,
        flow: str,
        source_id: str,
        run_id: str,
        target_id: str,
        content_hash: str | None,
        extra: dict[str, Any] | None = None,
        conn: Connection | None = None,
        claimed: LedgerEntry | None = None,
    ) -> LedgerEntry:
        """The target holds the record as `target_id`. `extra` is merged into the stored extra.

        `claimed`: the entry `claim` returned to this run; when nobody changed the row since, it
        saves reading the row again. Otherwise the row is read and must still be this run's claim."""

        def done(row: Any) -> dict[str, Any]:
            return {
                "status": "done",
                "previous_status": None,
                "target_id": target_id,
                "content_hash": content_hash,
                "reason": None,
                "extra": {**row["extra"], **(extra or {})},
                "claimed_at": None,
            }

        with self._write(conn) as conn:
            if claimed is not None and claimed.run_id == run_id and claimed.status == "pending":
                entry = _change(conn, vars(claimed), **done(vars(claimed)))
                if entry is not None:
                    return entry
            row = _held(conn, tenant, flow, source_id, run_id)
            return _change_held(conn, row, **done(row))

    def flag(
        self,
        tenant: str,
        flow: str,
        source_id: str,
        run_id: str,
        reason: str,
        content_hash: str | None = None,
        conn: Connection | None = None,
    ) -> LedgerEntry:
        """The record cannot be synced until someone fixes `reason`; rerunning retries it.
        The target id (if any) is kept: the target still holds the last good version."""
        with self._write(conn) as conn:
            row = _held(conn, tenant, flow, source_id, run_id)
            changes: dict[str, Any] = {
                "status": "flagged",
                "previous_status": None,
                "reason": reason,
                "claimed_at": None,
            }
            if content_hash is not None:
                changes["content_hash"] = content_hash
            return _change_held(conn, row, **changes)

    def release(
        self,
        tenant: str,
        flow: str,
        source_id: str,
        run_id: str,
        *,
        keep_pending: bool = False,
        reason: str | None = None,
        conn: Connection | None = None,
    ) -> LedgerEntry | None:
        """Give up a claim.

        keep_pending=False: nothing was sent, so the row goes back to the status it had before
        the claim (a row the claim created is deleted). keep_pending=True: a call may have
        reached the target, so the row stays pending (the next run looks the record up before
        creating) but the lease is let go so that run need not wait for it to expire.
        """
        with self._write(conn) as conn:
            row = _held(conn, tenant, flow, source_id, run_id)
            if keep_pending:
                return _change_held(conn, row, claimed_at=None, reason=reason)
            if row["previous_status"] is None:
                conn.execute(sa.delete(ledger).where(ledger.c.id == row["id"]))
                return None
            return _change_held(
                conn, row, status=row["previous_status"], previous_status=None, claimed_at=None
            )


def _change(conn: Connection, row: RowMapping, **changes: Any) -> LedgerEntry | None:
    """Apply `changes` only if nobody changed the row since it was read (optimistic lock).
    None when someone did."""
    # RETURNING (SQLite >= 3.35, Postgres): the changed row without a second round trip.
    changed = (
        conn.execute(
            sa.update(ledger)
            .where(ledger.c.id == row["id"], ledger.c.version == row["version"])
            .values(**changes, version=row["version"] + 1, updated_at=utcnow())
            .returning(*ledger.c)
        )
        .mappings()
        .first()
    )
    return _entry(changed) if changed is not None else None


def _change_held(conn: Connection, row: RowMapping, **changes: Any) -> LedgerEntry:
    entry = _change(conn, row, **changes)
    if entry is None:
        raise ClaimLost(f"{row['tenant']}/{row['flow']}/{row['source_id']} was taken by another run")
    return entry


def _claimable(
    row: RowMapping, run_id: str, lease_cutoff: datetime, run_finished: RunFinished | None
) -> bool:
    if row["status"] != "pending" or row["run_id"] == run_id:
        return True
    if row["claimed_at"] is None or row["claimed_at"] < lease_cutoff:
        return True
    # The holder's lease still runs, but a run that has ended cannot be pushing the record any more.
    return run_finished is not None and row["run_id"] is not None and run_finished(row["run_id"])


def _held(conn: Connection, tenant: str, flow: str, source_id: str, run_id: str) -> RowMapping:
    row = conn.execute(sa.select(ledger).where(_key(tenant, flow, source_id))).mappings().first()
    if row is None or row["status"] != "pending" or row["run_id"] != run_id:
        holder = f"{row['status']} / run {row['run_id']}" if row else "no row"
        raise ClaimLost(f"{tenant}/{flow}/{source_id} is not claimed by run {run_id} ({holder})")
    return row
