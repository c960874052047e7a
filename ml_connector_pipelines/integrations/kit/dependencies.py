"""Records a record needs first: a quote needs its supplier's recipient, an invoice its customer.

`Dependencies.resolve` is the one way a pusher gets such a record: the ledger's entry when it is
done, else the dependency is synced on the spot (once per run, however many records and worker
threads need it), and the outcome becomes the dependent record's:

- done: its target id is used;
- flagged (a data problem): the dependent record is flagged too, naming the dependency's reason;
- anything else (failed, held by another run): `DependencyNotReady`, so the dependent record
  fails for now and the next run tries again. Never flagged: nothing is wrong with the data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ...core.errors import ConnectorError, ValidationFailed
from ...core.ledger import Ledger, LedgerEntry


class DependencyNotReady(ConnectorError):
    """The record a record needs is not in the target yet, for a reason that may pass (transient)."""


class Dependencies:
    """Resolves dependencies for one tenant in one run; safe to share between worker threads."""

    def __init__(self, ledger: Ledger, tenant: str) -> None:
        self.ledger = ledger
        self.tenant = tenant
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._attempted: set[tuple[str, str]] = set()
        # A dependency that cannot exist (e.g. not found in Infor): every record needing it is told so.
        self._unfit: dict[tuple[str, str], str] = {}

    @property
    def synced_on_the_spot(self) -> int:
        return len(self._attempted)

    def resolve(
        self,
        record_id: str,
        field: str,
        flow: str,
        source_id: str,
        sync_now: Callable[[LedgerEntry | None], None],
        label: str,
        usable: Callable[[LedgerEntry], bool] = lambda entry: (
            entry.status == "done" and bool(entry.target_id)
        ),
    ) -> LedgerEntry:
        """The done ledger entry of `flow`/`source_id` (e.g. wise_recipients/<supplier>).

        `usable` says when an entry will do (default: done, with a target id). Not usable yet:
        `sync_now(entry)` is called once per run for that dependency (the first
        worker to need it; the others wait for it) and may decide not to sync. Raises
        ValidationFailed (record `record_id`, field `field`) when the dependency is flagged, and
        DependencyNotReady when it is neither done nor flagged.
        """
        entry = self.ledger.get(self.tenant, flow, source_id)
        if entry is None or not usable(entry):
            key = (flow, source_id)
            with self._lock:
                key_lock = self._key_locks.setdefault(key, threading.Lock())
            with key_lock:
                if key not in self._attempted:
                    self._attempted.add(key)
                    entry = self.ledger.get(self.tenant, flow, source_id)
                    if entry is None or not usable(entry):
                        try:
                            sync_now(entry)
                        except ValidationFailed as exc:
                            self._unfit[key] = exc.reason
                            raise
                if key in self._unfit:
                    raise ValidationFailed(record_id, field, self._unfit[key])
                entry = self.ledger.get(self.tenant, flow, source_id)
        if entry is not None and usable(entry):
            return entry
        if entry is not None and entry.status == "flagged":
            raise ValidationFailed(record_id, field, f"{label} is flagged: {entry.reason}")
        if entry is not None and entry.status == "pending":
            reason = entry.reason or f"in progress in run {entry.run_id}"
        else:
            reason = "not created yet"
        raise DependencyNotReady(f"{label} is not ready: {reason}")
