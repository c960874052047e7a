"""Exactly-once pushes to targets without idempotency (DESIGN.md §4), shared by every flow.

For each source record a flow calls `SyncSession.sync` with callables that do the I/O; the
session decides, from the ledger, whether to create, update, recreate or skip, and writes the
ledger and one audit row per outcome:

- done with the same content hash: skipped, no call to the target. Checked again once the
  record is claimed: another run may have pushed this very version between the read and the claim,
  and recreating it then would delete a live record (a Wise recipient, a Stripe invoice).
- another live run holds the record: skipped. A holder that `run_finished` reports ended (or
  whose lease ran out) is taken over.
- pending from a run that died or failed: `lookup()` first; if the target already has it, the
  ledger is completed without a second create.
- no target id yet and `match()` finds a record the target already holds (created there by hand,
  or before the connector): linked to it, no create.
- done with another hash: `update(target_id)`, else `recreate(old_id)` for immutable targets.
- TargetRejected / ValidationFailed: flagged with the target's message, and alerted.
- OutcomeUnknown: `lookup()`; found -> done; not found -> one more try; unknown again -> failed.
- any other error: failed; the ledger stays pending so the next run looks the record up first.

Writes: a record that is done with the same hash costs one read and no write at all; it is
counted (`counts["skipped"]`, `unchanged`), not audited one by one. Every other outcome writes
its ledger change and audit row in one transaction. Inside `batched()` (the push factory uses it)
the completion of a pushed record rides in the transaction of the next claim; a crash before that
commit leaves the record pending, which the next run looks up first (the same as a crash between
the call and its completion).

Claims go through a group commit: a worker's claim joins those of the other workers waiting at
that moment, one of them writes them all (and the completions waiting) in one transaction, and
each worker returns only once that transaction is committed, so every claim is still durable
before its record's call. Sequentially that is one transaction per record, as before.

Claiming ahead (`prefetch(..., claim_ahead=n, will_claim=ids)`, from the push factory with its
worker count, for the records its pusher says it certainly claims): that transaction also claims
the next n of those records that have no ledger row yet, so their workers find their claim
committed already and write nothing. Only records that will be claimed anyway qualify: a claim
left by a crash on a record that is then never synced would stay pending for good. A claim taken
ahead is used only while it is young (a tenth of the lease: the call still starts well inside the
lease, as after a claim of its own); an older one is given back and claimed afresh. Claims nobody
used (a failure before `sync`, a spent time budget) are given back (the row deleted, as `release`
does) in the next transaction, at the latest when `batched()` ends. A crash leaves them pending,
so the next run looks those records up before creating them, as after any crash between a claim
and its call.

Pass `lookup` (find the record in the target by the external reference stored there) unless
`create` is idempotent on its own (Stripe Idempotency-Key, Wise customerTransactionId).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.engine import Connection

from ml_connector_pipelines.core.alerts import Alerts
from ml_connector_pipelines.core.audit import AuditWriter
from ml_connector_pipelines.core.errors import OutcomeUnknown, TargetRejected, ValidationFailed
from ml_connector_pipelines.core.ledger import Completion, Ledger, LedgerEntry, RunFinished

if TYPE_CHECKING:
    from ml_connector_pipelines.core.store import StateStore

BASE_ACTIONS = ("created", "updated", "linked", "skipped", "flagged", "failed")
UNCHANGED = "unchanged"  # the reason of a skip that is counted, not audited


def content_hash(obj: Any) -> str:
    """sha256 of canonical JSON: key order and whitespace do not change the hash."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class SyncResult:
    source_id: str
    action: str
    target_id: str | None
    reason: str | None
    in_progress: bool = False  # skipped only because another live run holds the record


@dataclass
class _Pushed:
    """A pushed record whose completion and audit row are waiting to be written."""

    result: SyncResult
    completion: Completion


@dataclass
class _ClaimRequest:
    """One worker's claim waiting in the group commit (`SyncSession._claim`)."""

    source_id: str
    settled: bool = False
    entry: LedgerEntry | None = None
    error: BaseException | None = None


class SessionResults:
    """The outcomes a session collected: counted per action, and as a table (run metadata)."""

    results: list[SyncResult]

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(result.action for result in self.results)
        return {action: counted.get(action, 0) for action in BASE_ACTIONS} | dict(counted)

    def summary(self) -> pd.DataFrame:
        columns = ["source_id", "action", "target_id", "reason"]
        return pd.DataFrame([[getattr(r, c) for c in columns] for r in self.results], columns=columns)


class SyncSession(SessionResults):
    def __init__(
        self,
        store: StateStore,
        *,
        tenant: str,
        flow: str,
        run_id: str,
        partition: str | None,
        alerts: Alerts | None = None,
        lease_seconds: int = 900,
        run_finished: RunFinished | None = None,
    ) -> None:
        self.tenant = tenant
        self.flow = flow
        self.run_id = run_id
        self.partition = partition
        self.ledger = Ledger(store)
        self.audit = AuditWriter(store)
        self.alerts = alerts or Alerts(self.audit)
        # How long a claim by another run blocks this one: past it, that run is presumed dead.
        self.lease_seconds = lease_seconds
        # Whether another run has ended, so its claims need not wait for the lease (None: lease only).
        self.run_finished = run_finished
        self.results: list[SyncResult] = []
        self.store = store
        # Writes waiting for the next transaction of this session (see batched()).
        self._deferred: list[_Pushed] = []
        self._deferred_lock = threading.Lock()
        # The group commit of claims (module docstring): who waits, and who is writing.
        self._claims: list[_ClaimRequest] = []
        self._committer = threading.Lock()
        self._batching = 0
        self._prefetched: dict[str, LedgerEntry | None] = {}
        # Claiming ahead (module docstring): the page's records without a row, in order, the next
        # to look at, how many to claim ahead, the claims taken (entry, when), the records whose
        # claim is being written ahead (-> the request of a worker that came for it meanwhile),
        # the records already claimed by their worker, and claims to give back.
        self._candidates: list[str] = []
        self._next_candidate = 0
        self._claim_ahead = 0
        self._ahead: dict[str, tuple[LedgerEntry, float]] = {}
        self._ahead_writing: dict[str, _ClaimRequest | None] = {}
        self._started: set[str] = set()
        self._give_back: list[LedgerEntry] = []

    @contextmanager
    def batched(self) -> Iterator[SyncSession]:
        """Defer each completion to the next write of this session (it rides in the next claim's
        transaction); everything is written, and unused claims given back, by the time it ends."""
        self._batching += 1
        try:
            yield self
        finally:
            self._batching -= 1
            if not self._batching:
                self.flush()

    def prefetch(
        self, source_ids: list[str], *, claim_ahead: int = 0, will_claim: Collection[str] = ()
    ) -> None:
        """Read the ledger rows of these records in one query; each `sync` of one of them then
        starts from it instead of a read of its own (the claim re-checks, so a stale row is safe).

        `claim_ahead`: each claim's transaction also claims up to this many of the next records of
        `will_claim` (those whose push certainly claims them: `sync` or `flag`) that have no row
        yet (module docstring); the records are then pushed in this order."""
        found = self.ledger.get_many(self.tenant, self.flow, source_ids)
        with self._deferred_lock:
            self._prefetched = {source_id: found.get(source_id) for source_id in source_ids}
            self._give_back_unused()
            # Only while a claim taken ahead is sure to be used well inside the lease.
            self._claim_ahead = claim_ahead if self._ahead_max_age >= 1 else 0
            self._started.clear()  # the records of the pages before are done
            certain = set(will_claim)
            self._candidates = [
                source_id for source_id in source_ids if source_id in certain and found.get(source_id) is None
            ]
            self._next_candidate = 0

    def flush(self) -> None:
        """Write what batched() deferred, and give back claims taken ahead that nobody used."""
        with self._deferred_lock:
            self._give_back_unused()
            self._candidates, self._next_candidate = [], 0
        if self._deferred or self._give_back:
            with self._writes():
                pass

    @property
    def unchanged(self) -> int:
        """Records skipped because the target already holds this version (counted, not audited)."""
        return sum(r.action == "skipped" and r.reason == UNCHANGED for r in self.results)

    def sync(
        self,
        source_id: str,
        content_hash: str,
        *,
        create: Callable[[], str],
        lookup: Callable[[], str | None] | None = None,
        update: Callable[[str], str] | None = None,
        recreate: Callable[[str], str] | None = None,
        match: Callable[[], str | None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> SyncResult:
        """Bring the target in line with one source record; see the module docstring.

        `match()` finds a record the target already holds for this source record without us having
        created it (e.g. a supplier by its vendor id); it is asked only while the ledger has no
        target id for the record.
        """
        current = self._current(source_id)
        if current is not None and current.status == "done" and current.content_hash == content_hash:
            return self._outcome(source_id, "skipped", current.target_id, UNCHANGED)
        entry = self._claim(source_id)
        if entry is None:
            return self._in_progress(source_id)
        if entry.previous_status == "done" and entry.content_hash == content_hash:
            # Another run pushed this version between our read and our claim: nothing changed.
            with self._writes() as conn:
                self.ledger.release(self.tenant, self.flow, source_id, self.run_id, conn=conn)
                return self._outcome(source_id, "skipped", entry.target_id, UNCHANGED, conn=conn)
        try:
            action, target_id, reason = self._push(entry, create, lookup, update, recreate, match)
        except (TargetRejected, ValidationFailed) as exc:
            return self._flag(source_id, target_message_for(exc, source_id), content_hash)
        except Exception as exc:
            # The call may have reached the target: stay pending so the next run looks it up.
            reason = f"{type(exc).__name__}: {exc}"
            with self._writes() as conn:
                self.ledger.release(
                    self.tenant,
                    self.flow,
                    source_id,
                    self.run_id,
                    keep_pending=True,
                    reason=reason,
                    conn=conn,
                )
                return self._outcome(source_id, "failed", entry.target_id, reason, conn=conn)
        if action == "skipped":
            with self._writes() as conn:
                self.ledger.release(self.tenant, self.flow, source_id, self.run_id, conn=conn)
                return self._outcome(source_id, action, entry.target_id, reason, conn=conn)
        result = SyncResult(source_id=source_id, action=action, target_id=target_id, reason=reason)
        ledger_extra = {**(extra or {}), **_previous_ids(entry, target_id)}
        pushed = _Pushed(result, Completion(entry, target_id, content_hash, ledger_extra))
        self.results.append(result)
        if self._batching:
            with self._deferred_lock:
                self._deferred.append(pushed)
        else:
            with self._writes([pushed]):
                pass
        return result

    def skip_if_unchanged(self, source_id: str, content_hash: str) -> SyncResult | None:
        """The unchanged skip of `sync`, for a caller that would otherwise build the request first
        (and call the target to do so): the skipped result, or None when the record needs `sync`."""
        current = self._current(source_id)
        if current is not None and current.status == "done" and current.content_hash == content_hash:
            return self._outcome(source_id, "skipped", current.target_id, UNCHANGED)
        with self._deferred_lock:
            self._prefetched[source_id] = current  # `sync` starts from it without reading again
        return None

    def flag(
        self, source_id: str, reason: str, *, field: str | None = None, content_hash: str | None = None
    ) -> SyncResult:
        """Flag a record before any call to the target (bad or unmappable source data)."""
        if self._claim(source_id) is None:
            return self._in_progress(source_id)
        return self._flag(source_id, f"{field}: {reason}" if field else reason, content_hash)

    def note(
        self,
        source_id: str,
        action: str,
        *,
        target_id: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> SyncResult:
        """Record an outcome the ledger does not track (a status posted back, a file moved...)."""
        return self._outcome(source_id, action, target_id, reason, details)

    # -- internals ---------------------------------------------------------------------------

    def _push(
        self,
        entry: LedgerEntry,
        create: Callable[[], str],
        lookup: Callable[[], str | None] | None,
        update: Callable[[str], str] | None,
        recreate: Callable[[str], str] | None,
        match: Callable[[], str | None] | None,
    ) -> tuple[str, str | None, str | None]:
        """The calls to the target for a claimed record -> (action, target id, reason)."""
        old_id = entry.target_id
        if entry.previous_status == "pending" and lookup is not None:
            # A run died (or failed) after claiming: its create may have committed. A hit with
            # the old id proves nothing (it existed before), so only a new id counts.
            found = lookup()
            if found is not None and found != old_id:
                return ("created" if old_id is None else "recreated"), found, "recovered"
        if old_id is None and match is not None:
            matched = match()
            if matched is not None:
                return "linked", matched, "already in the target"
        if old_id is None:
            return _with_recovery("created", create, lookup, None)
        if update is not None:
            # Updates overwrite, so after an unknown outcome simply sending it again is safe.
            return _with_recovery("updated", lambda: update(old_id), None, old_id)
        if recreate is not None:
            return _with_recovery("recreated", lambda: recreate(old_id), lookup, old_id)
        return "skipped", old_id, "changed, but this flow cannot change records in the target"

    def _current(self, source_id: str) -> LedgerEntry | None:
        """The record's ledger row: the prefetched one (used once), else read now."""
        with self._deferred_lock:
            if source_id in self._prefetched:
                return self._prefetched.pop(source_id)
        return self.ledger.get(self.tenant, self.flow, source_id)

    @property
    def _ahead_max_age(self) -> float:
        """Seconds a claim taken ahead may wait for its worker (module docstring)."""
        return self.lease_seconds / 10

    def _give_back_unused(self) -> None:
        """Claims taken ahead and not used (yet) go back in the next transaction (lock held)."""
        self._give_back.extend(entry for entry, _ in self._ahead.values())
        self._ahead.clear()

    @contextmanager
    def _writes(self, pushed: list[_Pushed] | None = None) -> Iterator[Connection]:
        """One transaction for this session's next writes, with the deferred ones (and `pushed`)
        written first."""
        with self._deferred_lock:
            deferred, self._deferred = self._deferred, []
            give_back, self._give_back = self._give_back, []
        deferred += pushed or []
        with self.store.session() as conn:
            self._complete(deferred, conn)
            self.ledger.release_unused(self.run_id, give_back, conn)
            yield conn

    def _complete(self, pushed: list[_Pushed], conn: Connection) -> None:
        """Pushed records' completions, then their audit rows: one statement each for the lot."""
        if not pushed:
            return
        lost = self.ledger.complete_many(self.run_id, [p.completion for p in pushed], conn)
        for p, exc in zip(pushed, lost, strict=True):
            if exc is not None:
                # This run outlived its lease and another took the record over; that run's lookup
                # will find what was just written, so only report it.
                p.result.action, p.result.reason = "failed", str(exc)
        self.audit.record_many([self._audit_row(p.result, None) for p in pushed], conn)

    def _claim(self, source_id: str) -> LedgerEntry | None:
        """Claim one record through the group commit (module docstring); returns once committed:
        a claim taken ahead for it, or one written now together with every claim waiting."""
        request = _ClaimRequest(source_id)
        with self._deferred_lock:
            self._started.add(source_id)
            taken = self._ahead.pop(source_id, None)
            if taken is not None:
                entry, at = taken
                if time.monotonic() - at < self._ahead_max_age:
                    return entry
                self._give_back.append(entry)  # too old to rely on: claimed afresh below
            if source_id in self._ahead_writing:
                self._ahead_writing[source_id] = request  # settled by the transaction writing it
            else:
                self._claims.append(request)
        with self._committer:
            if not request.settled:
                self._write_claims()
        if request.error is not None:
            raise request.error
        return request.entry

    def _write_claims(self) -> None:
        """One transaction: every claim waiting, and the next records' claims taken ahead."""
        with self._deferred_lock:
            batch, self._claims = self._claims, []
            ahead: list[str] = []
            while len(ahead) < self._claim_ahead and self._next_candidate < len(self._candidates):
                candidate = self._candidates[self._next_candidate]
                self._next_candidate += 1
                if candidate not in self._started and candidate not in self._ahead:
                    ahead.append(candidate)
                    self._ahead_writing[candidate] = None
        try:
            with self._writes() as conn:
                entries = self.ledger.claim_many(
                    self.tenant,
                    self.flow,
                    [r.source_id for r in batch] + ahead,
                    self.run_id,
                    lease_seconds=self.lease_seconds,
                    run_finished=self.run_finished,
                    conn=conn,
                )
        except BaseException as exc:  # nothing of the transaction was written
            with self._deferred_lock:
                waiting = [self._ahead_writing.pop(source_id) for source_id in ahead]
            for r in [*batch, *(w for w in waiting if w is not None)]:
                r.error, r.settled = exc, True
            return
        now = time.monotonic()
        for r, claimed in zip(batch, entries, strict=False):
            r.entry, r.settled = claimed, True
        with self._deferred_lock:
            for source_id, claimed in zip(ahead, entries[len(batch) :], strict=True):
                worker = self._ahead_writing.pop(source_id)
                if worker is not None:  # its worker came while this was written: it is its claim
                    worker.entry, worker.settled = claimed, True
                elif claimed is not None:
                    self._ahead[source_id] = (claimed, now)

    def _in_progress(self, source_id: str) -> SyncResult:
        holder = self.ledger.get(self.tenant, self.flow, source_id)
        result = self._outcome(
            source_id, "skipped", None, f"in progress in run {holder.run_id if holder else '?'}"
        )
        result.in_progress = True
        return result

    def _flag(self, source_id: str, reason: str, content_hash: str | None) -> SyncResult:
        with self._writes() as conn:
            entry = self.ledger.flag(
                self.tenant, self.flow, source_id, self.run_id, reason, content_hash=content_hash, conn=conn
            )
            result = self._outcome(source_id, "flagged", entry.target_id, reason, conn=conn)
        self.alerts.alert(self.tenant, self.flow, source_id, reason, run_id=self.run_id)
        return result

    def _outcome(
        self,
        source_id: str,
        action: str,
        target_id: str | None,
        reason: str | None,
        details: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> SyncResult:
        """Record an outcome: in the results, and in the audit trail unless it is an unchanged skip."""
        result = SyncResult(source_id=source_id, action=action, target_id=target_id, reason=reason)
        if not (action == "skipped" and reason == UNCHANGED):
            if conn is None:
                with self._writes() as own:
                    self._audit(result, details, own)
            else:
                self._audit(result, details, conn)
        self.results.append(result)
        return result

    def _audit(self, result: SyncResult, details: dict[str, Any] | None, conn: Connection) -> None:
        self.audit.record_many([self._audit_row(result, details)], conn)

    def _audit_row(self, result: SyncResult, details: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "flow": self.flow,
            "source_id": result.source_id,
            "action": result.action,
            "run_id": self.run_id,
            "partition": self.partition,
            "target_id": result.target_id,
            "reason": result.reason,
            "details": details,
        }


def _with_recovery(
    action: str, call: Callable[[], str], lookup: Callable[[], str | None] | None, old_id: str | None
) -> tuple[str, str | None, str | None]:
    """Run a create-like call; on OutcomeUnknown look the record up, else try exactly once more.
    A second OutcomeUnknown propagates (the record is then failed and stays pending)."""
    try:
        return action, call(), None
    except OutcomeUnknown:
        if lookup is not None:
            found = lookup()
            if found is not None and found != old_id:
                return action, found, "recovered after unknown outcome"
        return action, call(), "retried after unknown outcome"


def _previous_ids(entry: LedgerEntry, new_id: str | None) -> dict[str, Any]:
    if entry.target_id is None or entry.target_id == new_id:
        return {}
    return {"previous_target_ids": [*entry.extra.get("previous_target_ids", []), entry.target_id]}


def target_message_for(exc: Exception, source_id: str) -> str:
    # The target's own words when there are some; they tell the user what to fix.
    if isinstance(exc, TargetRejected):
        return f"{exc.system} rejected it (HTTP {exc.status}): {exc.target_message}"
    if isinstance(exc, ValidationFailed) and exc.record_id == source_id:
        return f"field {exc.field}: {exc.reason}"  # the audit row already names the record
    return str(exc)
