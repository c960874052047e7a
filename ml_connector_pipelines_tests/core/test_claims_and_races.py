"""Claims of ended runs, the read-then-claim race, and `match=` (issue 16 items 1-2, issue 8 item 9).

The race is driven for real: two sessions with their own engines (as two processes have) on one
Postgres database, their order forced at the database driver: the second session's claim waits
until the first has pushed and completed the record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.sync import SyncSession, content_hash
from ml_connector_pipelines.core.tables import inbox as inbox_table
from ml_connector_pipelines.core.tables import utcnow
from ml_connector_pipelines_tests.core.test_sync import FLOW, TENANT, FakeTarget, push, session

ENDED = {"dead-run"}


def ended(run_id: str) -> bool:
    return run_id in ENDED


def test_a_claim_of_an_ended_run_is_taken_over_at_once(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    assert ledger.claim(TENANT, FLOW, "S1", "dead-run") is not None
    assert ledger.claim(TENANT, FLOW, "S2", "live-run") is not None
    # Without the check the lease decides: 15 minutes of "in progress".
    assert ledger.claim(TENANT, FLOW, "S1", "rerun") is None
    taken = ledger.claim(TENANT, FLOW, "S1", "rerun", run_finished=ended)
    assert taken is not None and taken.run_id == "rerun" and taken.previous_status == "pending"
    # A run the check does not report ended keeps its claim.
    assert ledger.claim(TENANT, FLOW, "S2", "rerun", run_finished=ended) is None


def test_a_rerun_posts_what_an_ended_run_had_claimed(state_store: StateStore) -> None:
    target = FakeTarget()
    Ledger(state_store).claim(TENANT, FLOW, "S1", "dead-run")
    blocked = push(session(state_store, "rerun-1"), target, "S1", {"name": "Acme"})
    assert blocked.in_progress and target.holding("S1") == []
    result = push(session(state_store, "rerun-2", run_finished=ended), target, "S1", {"name": "Acme"})
    assert result.action == "created" and len(target.holding("S1")) == 1


def test_inbox_events_of_an_ended_run_are_waiting_again(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    for n in range(3):
        inbox.put("stripe", TENANT, f"evt_{n}", "{}")
    ids = [event.id for event in inbox.pending("stripe", TENANT)]
    assert inbox.claim(ids[:2], "dead-run") == ids[:2]
    assert inbox.claim(ids[2:], "live-run") == ids[2:]
    assert inbox.pending("stripe", TENANT) == []
    assert inbox.claim(ids, "rerun") == []
    waiting = [event.id for event in inbox.pending("stripe", TENANT, run_finished=ended)]
    assert waiting == ids[:2]
    assert inbox.claim(ids, "rerun", run_finished=ended) == ids[:2]
    assert {inbox.get(i).claimed_by for i in ids} == {"rerun", "live-run"}


def test_inbox_lease_stays_the_fallback(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    inbox.put("stripe", TENANT, "evt_1", "{}")
    [event] = inbox.pending("stripe", TENANT)
    inbox.claim([event.id], "live-run")
    with state_store.session() as conn:
        conn.execute(sa.update(inbox_table).values(claimed_at=utcnow() - timedelta(seconds=901)))
    assert inbox.claim([event.id], "rerun", run_finished=lambda run_id: False) == [event.id]


# The read-then-claim race --------------------------------------------------------------------------


class Gate:
    """Holds one engine's first ledger claim (its INSERT ... ON CONFLICT) until `open()`; tells when
    that engine has read the ledger."""

    def __init__(self, engine: sa.Engine) -> None:
        self.has_read = threading.Event()
        self._open = threading.Event()
        sa.event.listen(engine, "before_cursor_execute", self._before)

    def open(self) -> None:
        self._open.set()

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith("SELECT") and "FROM LEDGER" in text:
            self.has_read.set()
        elif text.startswith("INSERT INTO LEDGER"):
            assert self._open.wait(30), "the other session never finished"


@pytest.fixture
def two_stores(postgres_url: str) -> Iterator[tuple[StateStore, StateStore]]:
    first, second = StateStore(postgres_url), StateStore(postgres_url)
    first.migrate()
    yield first, second
    first.dispose()
    second.dispose()


@pytest.mark.parametrize("history", ["new record", "changed record"])
def test_a_run_that_read_before_another_pushed_never_recreates_the_same_version(
    two_stores: tuple[StateStore, StateStore], history: str
) -> None:
    fast_store, slow_store = two_stores
    target = FakeTarget()
    if history == "changed record":
        push(session(fast_store, "run-0"), target, "S1", {"iban": "old"}, mode="recreate")
    payload = {"iban": "new"}
    gate = Gate(slow_store.engine)
    outcomes: dict[str, Any] = {}

    def slow() -> None:
        outcomes["slow"] = push(session(slow_store, "slow-run"), target, "S1", payload, mode="recreate")

    thread = threading.Thread(target=slow)
    thread.start()
    assert gate.has_read.wait(30)  # the slow run has read the ledger, not claimed yet
    outcomes["fast"] = push(session(fast_store, "fast-run"), target, "S1", payload, mode="recreate")
    gate.open()
    thread.join(30)

    assert outcomes["fast"].action == ("created" if history == "new record" else "recreated")
    assert outcomes["slow"].action == "skipped" and outcomes["slow"].reason == "unchanged"
    [held] = target.holding("S1")
    assert held["iban"] == "new"
    assert held is target.records[outcomes["fast"].target_id]  # the one the fast run made, still live
    entry = Ledger(fast_store).get(TENANT, FLOW, "S1")
    assert (entry.status, entry.target_id, entry.content_hash) == (
        "done",
        outcomes["fast"].target_id,
        content_hash(payload),
    )


# match= ------------------------------------------------------------------------------------------------


def test_match_links_a_record_the_target_already_holds(state_store: StateStore) -> None:
    target = FakeTarget()
    existing = target.create("V1", {"name": "Acme (made by hand)"})
    sync = session(state_store, "run-1")
    payload = {"name": "Acme"}

    def sync_vendor(ref: str, s: SyncSession) -> Any:
        return s.sync(
            ref,
            content_hash(payload),
            create=lambda: target.create(ref, payload),
            update=lambda tid: target.update(tid, payload),
            match=lambda: target.lookup(ref),
        )

    linked = sync_vendor("V1", sync)
    created = sync_vendor("V2", sync)
    assert (linked.action, linked.target_id) == ("linked", existing)
    assert created.action == "created"
    assert len(target.holding("V1")) == 1 and len(target.holding("V2")) == 1
    assert sync.counts["linked"] == 1 and sync.counts["created"] == 1
    assert Ledger(state_store).get(TENANT, FLOW, "V1").target_id == existing
    assert [e.action for e in sync.audit.history(TENANT, FLOW, record="V1")] == ["linked"]
    # Linked once, the ledger knows it: the next change is an update, not another match.
    payload["name"] = "Acme Ltd"
    again = sync_vendor("V1", session(state_store, "run-2"))
    assert (again.action, again.target_id) == ("updated", existing)
    assert target.records[existing]["name"] == "Acme Ltd"
