"""The ledger: one row per (tenant, flow, source record) saying what the target holds for it.

A row goes `pending` (claimed by one run) before any call to the target and `done` (with the
target's id and the content hash that was sent) or `flagged` after it; see DESIGN.md §4.
Claims are conditional updates on `version`, so two runs or processes never both hold one.

A claim held by another run blocks until its lease runs out, unless the caller passes
`run_finished` (run id -> has that run ended?): then a claim of a run known to be over (its process
died, or the orchestrator marked it failed or canceled) is taken over at once. The lease stays the
fallback for holders nobody can vouch for. Core knows no orchestrator: integrations/runs.py supplies
the Dagster check.

`claim_many` and `complete_many` do the same for several records inside one transaction (the
push's group commit, see sync.py): one INSERT and one UPDATE statement for the lot, each record
still decided on its own exactly as `claim` and `complete` decide it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
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


@dataclass
class Completion:
    """One record for `complete_many`: what `complete` is given for it."""

    claimed: LedgerEntry  # the entry this run's claim returned
    target_id: str
    content_hash: str | None
    extra: dict[str, Any]


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
            new = _pending_row(tenant, flow, source_id, run_id, now)
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

    def claim_many(
        self,
        tenant: str,
        flow: str,
        source_ids: Sequence[str],
        run_id: str,
        lease_seconds: int = 900,
        run_finished: RunFinished | None = None,
        conn: Connection | None = None,
    ) -> list[LedgerEntry | None]:
        """`claim` each record, in one transaction: the entries in the order of `source_ids`.

        Records without a row are inserted by one INSERT ... ON CONFLICT DO NOTHING; the others are
        read in one query and each claimed as `claim` would. A record named twice is claimed twice,
        in order, as two calls of `claim` would."""
        now = utcnow()
        with self._write(conn) as conn:
            # Sorted: concurrent batches on Postgres then take their row locks in one order.
            unique = sorted(set(source_ids))
            new = [_pending_row(tenant, flow, source_id, run_id, now) for source_id in unique]
            claimed: dict[str, LedgerEntry | None] = {}
            if new:
                # executemany with RETURNING (SQLAlchemy's insertmanyvalues): the rows inserted.
                for row in conn.execute(_claim_insert(conn.dialect.name), new).mappings():
                    claimed[row["source_id"]] = _entry(row)
            existing = [source_id for source_id in unique if source_id not in claimed]
            if existing:
                query = sa.select(ledger).where(
                    ledger.c.tenant == tenant, ledger.c.flow == flow, ledger.c.source_id.in_(existing)
                )
                cutoff = now - timedelta(seconds=lease_seconds)
                for row in conn.execute(query.order_by(ledger.c.id)).mappings().all():
                    if not _claimable(row, run_id, cutoff, run_finished):
                        claimed[row["source_id"]] = None
                        continue
                    claimed[row["source_id"]] = _change(
                        conn,
                        row,
                        status="pending",
                        previous_status=row["status"],
                        run_id=run_id,
                        claimed_at=now,
                    )
            entries: list[LedgerEntry | None] = []
            seen: set[str] = set()
            for source_id in source_ids:
                if source_id in seen:
                    entries.append(
                        self.claim(tenant, flow, source_id, run_id, lease_seconds, run_finished, conn)
                    )
                else:
                    seen.add(source_id)
                    entries.append(claimed.get(source_id))
            return entries

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

    def complete_many(
        self, run_id: str, completions: Sequence[Completion], conn: Connection | None = None
    ) -> list[ClaimLost | None]:
        """`complete` each record (with its `claimed` entry), in one transaction: per record None,
        or the ClaimLost that `complete` would have raised for it.

        One executemany UPDATE conditional on each row's version; the rows it did not change (a
        claim lost, or a row this run changed since) go through `complete`, which decides them."""
        if not completions:
            return []
        now = utcnow()
        with self._write(conn) as conn:
            fast = [
                n
                for n, c in enumerate(completions)
                if c.claimed.run_id == run_id and c.claimed.status == "pending" and c.claimed.id is not None
            ]
            applied = self._complete_fast(conn, run_id, [completions[n] for n in fast], now)
            applied = {fast[k] for k in applied}
            outcomes: list[ClaimLost | None] = []
            for n, c in enumerate(completions):
                if n in applied:
                    outcomes.append(None)
                    continue
                entry = c.claimed
                try:
                    self.complete(
                        entry.tenant,
                        entry.flow,
                        entry.source_id,
                        run_id,
                        c.target_id,
                        c.content_hash,
                        c.extra,
                        conn,
                    )
                    outcomes.append(None)
                except ClaimLost as exc:
                    outcomes.append(exc)
            return outcomes

    @staticmethod
    def _complete_fast(
        conn: Connection, run_id: str, completions: list[Completion], now: datetime
    ) -> set[int]:
        """The UPDATE of `complete_many` for claims still as this run took them: the positions of
        the rows it changed."""
        if not completions:
            return set()
        values = [
            {
                "b_id": c.claimed.id,
                "b_version": c.claimed.version,
                "b_new_version": c.claimed.version + 1,
                "b_target_id": c.target_id,
                "b_content_hash": c.content_hash,
                "b_extra": {**c.claimed.extra, **c.extra},
                "b_updated_at": now,
            }
            for c in completions
        ]
        changed = conn.execute(_COMPLETE, values[0] if len(values) == 1 else values).rowcount
        if changed == len(values) and (len(values) == 1 or conn.dialect.supports_sane_multi_rowcount):
            return set(range(len(values)))
        # Some row was changed by someone else (or the driver counts no executemany rows:
        # psycopg2): read back which rows now carry this run's completion.
        query = sa.select(
            ledger.c.id, ledger.c.version, ledger.c.run_id, ledger.c.status, ledger.c.target_id
        ).where(ledger.c.id.in_([c.claimed.id for c in completions]))
        rows = {row.id: row for row in conn.execute(query)}
        applied = set()
        for n, c in enumerate(completions):
            row = rows.get(c.claimed.id)
            if (
                row is not None
                and row.version == c.claimed.version + 1
                and row.run_id == run_id
                and row.status == "done"
                and row.target_id == c.target_id
            ):
                applied.add(n)
        return applied

    def release_unused(
        self, run_id: str, claimed: Sequence[LedgerEntry], conn: Connection | None = None
    ) -> None:
        """Give back claims that created their row and were never used (claimed ahead, see sync.py):
        each row is deleted if it is still exactly as this run's claim left it."""
        rows = [
            {"b_id": e.id, "b_version": e.version, "b_run_id": run_id}
            for e in claimed
            if e.id is not None and e.previous_status is None and e.run_id == run_id
        ]
        if rows:
            with self._write(conn) as conn:
                conn.execute(_RELEASE_UNUSED, rows)

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


@functools.cache
def _claim_insert(backend: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING of `claim_many`, built once per backend."""
    return (
        dialect_insert(backend, ledger)
        .on_conflict_do_nothing(index_elements=["tenant", "flow", "source_id"])
        .returning(*ledger.c)
    )


# `complete` of many rows at once (complete_many): built once, executed with one row of values each.
_COMPLETE = (
    sa.update(ledger)
    .where(ledger.c.id == sa.bindparam("b_id"), ledger.c.version == sa.bindparam("b_version"))
    .values(
        status="done",
        previous_status=None,
        target_id=sa.bindparam("b_target_id"),
        content_hash=sa.bindparam("b_content_hash"),
        reason=None,
        extra=sa.bindparam("b_extra", type_=ledger.c.extra.type),
        claimed_at=None,
        version=sa.bindparam("b_new_version"),
        updated_at=sa.bindparam("b_updated_at", type_=ledger.c.updated_at.type),
    )
)


# `release_unused`: a claim's own row, deleted only if nobody changed it since.
_RELEASE_UNUSED = sa.delete(ledger).where(
    ledger.c.id == sa.bindparam("b_id"),
    ledger.c.version == sa.bindparam("b_version"),
    ledger.c.run_id == sa.bindparam("b_run_id"),
    ledger.c.status == "pending",
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


def _pending_row(tenant: str, flow: str, source_id: str, run_id: str, now: datetime) -> dict[str, Any]:
    """A new ledger row claimed by `run_id`."""
    return {
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
