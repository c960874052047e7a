"""Inbox: durable, deduplicated inbound events with exclusive claims."""

from __future__ import annotations

from datetime import UTC, datetime

from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.store import StateStore


def test_put_stores_each_event_once(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    assert inbox.put("stripe", "acme", "evt_1", '{"id": "evt_1"}') is True
    assert inbox.put("stripe", "acme", "evt_1", '{"id": "evt_1"}') is False  # redelivered webhook
    assert inbox.put("wise", "acme", "evt_1", "{}") is True  # same id from another source is another event
    assert [e.event_id for e in inbox.pending("stripe")] == ["evt_1"]


def test_put_many_stores_each_event_once_in_one_transaction(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    assert inbox.put("stripe", "acme", "evt_old", "{}") is True
    batch = [
        ("stripe", "acme", "evt_1", '{"id": "evt_1"}'),
        ("stripe", "acme", "evt_old", "{}"),  # stored before: a redelivery
        ("stripe", "acme", "evt_1", '{"id": "evt_1"}'),  # twice in one batch: stored once
        ("wise", "acme", "evt_1", "{}"),  # another source's event of the same id
        ("stripe", "other", "evt_1", "{}"),  # another tenant's
    ]
    assert inbox.put_many(batch) == [True, False, False, True, True]
    assert inbox.put_many([]) == []
    stored = [(e.tenant, e.event_id, e.payload) for e in inbox.pending("stripe")]
    assert stored == [
        ("acme", "evt_old", "{}"),
        ("acme", "evt_1", '{"id": "evt_1"}'),
        ("other", "evt_1", "{}"),
    ]


def test_claim_process_release(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    at = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    for n in range(3):
        inbox.put("cleo", "acme" if n < 2 else "globex", f"file-{n}", f"ISA*{n}", received_at=at)
    events = inbox.pending("cleo", tenant="acme")
    assert [e.payload for e in events] == ["ISA*0", "ISA*1"]
    assert events[0].received_at == at
    ids = [e.id for e in events]
    assert inbox.claim(ids, "run-1") == ids
    assert inbox.claim(ids, "run-2") == []  # held by run-1
    assert inbox.pending("cleo", tenant="acme") == []
    assert inbox.mark_processed(ids, "run-2") == 0  # not its events
    assert inbox.mark_processed(ids[:1], "run-1") == 1
    inbox.mark_processed(ids[1:], "run-1", error="segment count mismatch")
    dead = inbox.get(ids[1])
    assert dead.processed_at is not None and dead.error == "segment count mismatch"
    other = inbox.pending("cleo")
    assert [e.tenant for e in other] == ["globex"]
    inbox.claim([other[0].id], "run-3")
    inbox.release([other[0].id])
    assert inbox.claim([other[0].id], "run-4") == [other[0].id]
    assert inbox.get(other[0].id).claimed_by == "run-4"


def test_claims_of_a_dead_run_expire(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    inbox.put("stripe", "acme", "evt_1", "{}")
    [event] = inbox.pending("stripe")
    inbox.claim([event.id], "dead-run")
    assert inbox.pending("stripe") == []
    assert [e.id for e in inbox.pending("stripe", lease_seconds=0)] == [event.id]
    assert inbox.claim([event.id], "run-2", lease_seconds=0) == [event.id]


def test_pending_respects_limit_and_order(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    for n in range(5):
        inbox.put("stripe", "acme", f"evt_{n}", "{}")
    assert [e.event_id for e in inbox.pending("stripe", limit=2)] == ["evt_0", "evt_1"]
