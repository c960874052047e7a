"""The inbox kit: one way to consume inbound events (webhooks, polled events, files) and to replay them.

An inbox-driven flow is declared once as an `InboxFlow` (its flow name, inbox source, job and asset).
Its asset opens an `InboxBatch`, which claims the tenant's pending events for this run, and settles
each event by its outcome:

- done (posted, written, skipped): marked processed;
- flagged (a data problem, a 4xx from the target): marked processed with the record and reason as its
  error: a dead letter, kept until `ml-connector replay` requeues it after the data is fixed;
- failed, in progress elsewhere, or never settled (an exception, a crash): handed back, so the next
  run claims it again.

`consume` is the loop most flows need: one handler per event, in arrival order. A flow that has to
reorder (Wise merges webhook states with polled ones, oldest first) uses `batch.events` and
`batch.settle` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from ...core.inbox import InboxEvent
from ...core.state import State
from ...core.sync import SyncResult, SyncSession
from ...core.tables import inbox as inbox_table

INBOX_FLOW_TAG = "ml_connector/inbox_flow"
INBOX_SOURCE_TAG = "ml_connector/inbox_source"
# How a dead letter names what was flagged: "<record id>: <reason>".
_DEAD_LETTER_SEPARATOR = ": "


@dataclass(frozen=True)
class InboxFlow:
    """An inbox-driven flow: `job` runs `asset` (partitioned by tenant), which consumes `source`."""

    flow: str
    source: str
    job: str
    asset: str


class InboxBatch:
    """The pending events of one tenant and source that this run won the claim for."""

    def __init__(self, state: State, source: str, session: SyncSession) -> None:
        self.state = state
        self.session = session
        ended = session.run_finished  # events held by a run that died are taken over at once
        pending = state.inbox.pending(source, session.tenant, run_finished=ended)
        claimed = set(state.inbox.claim([e.id for e in pending], session.run_id, run_finished=ended))
        self.events: list[InboxEvent] = [event for event in pending if event.id in claimed]
        self._open = {event.id for event in self.events}

    def done(self, event: InboxEvent | int, error: str | None = None) -> None:
        """Processed; with `error` it is a dead letter (replayable with `ml-connector replay`)."""
        event_id = event if isinstance(event, int) else event.id
        self.state.inbox.mark_processed([event_id], self.session.run_id, error=error)
        self._open.discard(event_id)

    def settle(self, event: InboxEvent | int, result: SyncResult | None) -> None:
        """Settle an event by its outcome (None: it carried nothing to do)."""
        if result is not None and (result.action == "failed" or result.in_progress):
            return  # handed back when the batch closes: retried later, also if this run dies
        if result is not None and result.action == "flagged":
            self.done(event, error=f"{result.source_id}{_DEAD_LETTER_SEPARATOR}{result.reason}")
        else:
            self.done(event)

    def release(self) -> None:
        """Hand every unsettled event back, for the next run to claim."""
        self.state.inbox.release(sorted(self._open))
        self._open.clear()


@contextmanager
def inbox_batch(state: State, source: str, session: SyncSession) -> Iterator[InboxBatch]:
    batch = InboxBatch(state, source, session)
    try:
        yield batch
    finally:
        batch.release()


def consume(
    batch: InboxBatch,
    handle: Callable[[InboxEvent], SyncResult | None],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Each claimed event through `handle`, oldest first. An exception fails that event only: it is
    recorded as failed and handed back."""
    for done, event in enumerate(batch.events, start=1):
        try:
            result = handle(event)
        except Exception as exc:  # e.g. the source is unreachable before posting: retry next run
            batch.session.note(event.event_id, "failed", reason=f"{type(exc).__name__}: {exc}")
            continue
        batch.settle(event, result)
        if progress is not None:
            progress(done, len(batch.events))


def dead_letters(state: State, source: str, tenant: str, record: str | None = None) -> list[InboxEvent]:
    """The tenant's flagged events of `source`, or only those that flagged `record`."""
    query = sa.select(inbox_table).where(
        inbox_table.c.source == source,
        inbox_table.c.tenant == tenant,
        inbox_table.c.processed_at.is_not(None),
        inbox_table.c.error.is_not(None),
    )
    if record is not None:
        query = query.where(inbox_table.c.error.startswith(record + _DEAD_LETTER_SEPARATOR, autoescape=True))
    with state.store.session() as conn:
        return [InboxEvent(**row) for row in conn.execute(query.order_by(inbox_table.c.id)).mappings()]


def requeue(state: State, events: list[InboxEvent]) -> int:
    """Make dead letters pending again; returns how many were."""
    if not events:
        return 0
    stmt = (
        sa.update(inbox_table)
        .where(inbox_table.c.id.in_([event.id for event in events]), inbox_table.c.error.is_not(None))
        .values(processed_at=None, error=None, claimed_by=None, claimed_at=None)
    )
    with state.store.session() as conn:
        return conn.execute(stmt).rowcount


def flagged_record(event: InboxEvent) -> str:
    """The record a dead letter flagged (its event id for letters from before the kit)."""
    error = event.error or ""
    record, separator, _ = error.partition(_DEAD_LETTER_SEPARATOR)
    return record if separator else event.event_id
