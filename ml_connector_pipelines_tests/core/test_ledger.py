"""Ledger claim rules and transitions, on SQLite and Postgres."""

from __future__ import annotations

import pytest

from ml_connector_pipelines.core.ledger import ClaimLost, Completion, Ledger
from ml_connector_pipelines.core.store import StateStore

KEY = ("acme", "suppliers", "S1")


def test_first_claim_creates_a_pending_row(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    entry = ledger.claim(*KEY, "run-1")
    assert (entry.status, entry.run_id, entry.previous_status, entry.version) == ("pending", "run-1", None, 1)
    assert ledger.get(*KEY).status == "pending"


def test_live_claim_of_another_run_wins_over_nobody(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    ledger.claim(*KEY, "run-1")
    assert ledger.claim(*KEY, "run-2") is None
    assert ledger.claim(*KEY, "run-1") is not None  # the holder may claim again
    assert ledger.claim(*KEY, "run-2", lease_seconds=0) is not None  # expired: taken over
    assert ledger.get(*KEY).run_id == "run-2"


def test_complete_then_reclaim_keeps_target_and_hash(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    ledger.claim(*KEY, "run-1")
    done = ledger.complete(*KEY, "run-1", "T1", "h1", extra={"ref": "x"})
    assert (done.status, done.target_id, done.content_hash, done.claimed_at) == ("done", "T1", "h1", None)
    again = ledger.claim(*KEY, "run-2")
    assert (again.status, again.previous_status, again.target_id, again.content_hash) == (
        "pending",
        "done",
        "T1",
        "h1",
    )
    ledger.complete(*KEY, "run-2", "T1", "h2", extra={"more": 1})
    assert ledger.get(*KEY).extra == {"ref": "x", "more": 1}
    assert ledger.find_by_target("acme", "suppliers", "T1").source_id == "S1"
    assert ledger.find_by_target("acme", "suppliers", "T9") is None


def test_complete_and_flag_need_the_claim(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    with pytest.raises(ClaimLost):
        ledger.complete(*KEY, "run-1", "T1", "h1")
    ledger.claim(*KEY, "run-1")
    ledger.claim(*KEY, "run-2", lease_seconds=0)
    with pytest.raises(ClaimLost):
        ledger.flag(*KEY, "run-1", "too late")
    flagged = ledger.flag(*KEY, "run-2", "unknown GL code", content_hash="h9")
    assert (flagged.status, flagged.reason, flagged.content_hash) == ("flagged", "unknown GL code", "h9")
    assert [e.source_id for e in ledger.entries("acme", "suppliers", status="flagged")] == ["S1"]
    assert ledger.entries("acme", "suppliers", status="done") == []


def test_release_restores_what_was_there(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    ledger.claim(*KEY, "run-1")
    assert ledger.release(*KEY, "run-1") is None
    assert ledger.get(*KEY) is None  # the claim made the row, so nothing is left
    ledger.claim(*KEY, "run-1")
    ledger.complete(*KEY, "run-1", "T1", "h1")
    ledger.claim(*KEY, "run-2")
    restored = ledger.release(*KEY, "run-2")
    assert (restored.status, restored.target_id, restored.claimed_at) == ("done", "T1", None)


def test_release_keeping_pending_lets_the_next_run_in_at_once(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    ledger.claim(*KEY, "run-1")
    kept = ledger.release(*KEY, "run-1", keep_pending=True, reason="timeout")
    assert (kept.status, kept.claimed_at, kept.reason) == ("pending", None, "timeout")
    taken = ledger.claim(*KEY, "run-2")
    assert taken is not None and taken.previous_status == "pending"


def test_entries_are_separate_per_tenant_and_flow(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    ledger.claim("acme", "suppliers", "S1", "run-1")
    ledger.claim("acme", "invoices", "S1", "run-2")
    ledger.claim("globex", "suppliers", "S1", "run-3")
    assert [e.run_id for e in ledger.entries("acme", "suppliers")] == ["run-1"]
    assert ledger.get("globex", "suppliers", "S1").run_id == "run-3"


def test_claim_many_decides_each_record_as_claim_does(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    ledger.claim("acme", "suppliers", "held", "run-1")
    ledger.claim("acme", "suppliers", "done", "run-1")
    ledger.complete("acme", "suppliers", "done", "run-1", "T1", "h1", extra={"ref": "x"})
    ledger.claim("acme", "suppliers", "mine", "run-2")
    names = ["new", "held", "done", "mine", "new"]  # "new" twice: claimed twice, in order
    entries = ledger.claim_many("acme", "suppliers", names, "run-2")
    by_name = dict(zip(names[:4], entries[:4], strict=True))
    assert by_name["held"] is None  # run-1's lease still runs
    assert (by_name["new"].previous_status, by_name["new"].version) == (None, 1)
    assert (by_name["done"].previous_status, by_name["done"].target_id) == ("done", "T1")
    assert by_name["done"].extra == {"ref": "x"} and by_name["done"].status == "pending"
    assert by_name["mine"].previous_status == "pending" and by_name["mine"].run_id == "run-2"
    assert entries[4].previous_status == "pending" and entries[4].version == 2  # the second claim
    assert ledger.get("acme", "suppliers", "held").run_id == "run-1"
    assert ledger.claim_many("acme", "suppliers", [], "run-2") == []


def test_complete_many_completes_each_claim_and_reports_only_the_lost_one(state_store: StateStore) -> None:
    ledger = Ledger(state_store)
    claimed = ledger.claim_many("acme", "suppliers", ["S1", "S2", "S3"], "run-1")
    ledger.claim("acme", "suppliers", "S2", "run-2", lease_seconds=0)  # run-1 outlived its lease on S2
    completions = [
        Completion(entry, f"T{n}", f"h{n}", {"n": n}) for n, entry in enumerate(claimed, start=1) if entry
    ]
    lost = ledger.complete_many("run-1", completions)
    assert [exc is None for exc in lost] == [True, False, True]
    assert "not claimed by run run-1" in str(lost[1])
    for name, target in (("S1", "T1"), ("S3", "T3")):
        entry = ledger.get("acme", "suppliers", name)
        assert (entry.status, entry.target_id, entry.extra, entry.claimed_at) == (
            "done",
            target,
            {"n": int(target[1])},
            None,
        )
    assert ledger.get("acme", "suppliers", "S2").run_id == "run-2"
    # One completion alone, and one whose claim this run renewed since: decided like `complete`.
    again = ledger.claim("acme", "suppliers", "S1", "run-3")
    ledger.claim("acme", "suppliers", "S1", "run-3")
    assert ledger.complete_many("run-3", [Completion(again, "T9", "h9", {})]) == [None]
    assert ledger.get("acme", "suppliers", "S1").target_id == "T9"
