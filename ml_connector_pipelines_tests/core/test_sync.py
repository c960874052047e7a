"""SyncSession against a small in-memory target that, like Cleo, Cin7, Procurify and M3, has no
idempotency: every create call makes a new record. Each branch of DESIGN.md §4 is driven for
real on SQLite and Postgres, and the assertions are on what the target holds afterwards."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
import sqlalchemy as sa

from ml_connector_pipelines.core.audit import AuditWriter
from ml_connector_pipelines.core.errors import (
    OutcomeUnknown,
    RetryExhausted,
    TargetRejected,
    ValidationFailed,
)
from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.sync import SyncSession, content_hash

TENANT, FLOW = "acme", "suppliers"


class FakeTarget:
    """A target system: records keyed by its own ids, each carrying our external reference."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self.commit_then_time_out = 0  # next N creates commit, then the answer is lost
        self.time_out_before_commit = 0  # next N creates never arrive
        self.reject_with: str | None = None

    def create(self, ref: str, payload: dict) -> str:
        if self.reject_with:
            raise TargetRejected("fake", "POST", "/records", 400, self.reject_with)
        if self.time_out_before_commit:
            self.time_out_before_commit -= 1
            raise OutcomeUnknown("fake", "POST", "/records", 504, "gateway timeout")
        target_id = f"T{next(self._ids)}"
        self.records[target_id] = {"ref": ref, **payload}
        if self.commit_then_time_out:
            self.commit_then_time_out -= 1
            raise OutcomeUnknown("fake", "POST", "/records", None, "read timeout")
        return target_id

    def lookup(self, ref: str) -> str | None:
        return next((tid for tid, rec in self.records.items() if rec["ref"] == ref), None)

    def update(self, target_id: str, payload: dict) -> str:
        self.records[target_id].update(payload)
        return target_id

    def recreate(self, target_id: str, ref: str, payload: dict) -> str:
        self.records.pop(target_id, None)
        return self.create(ref, payload)

    def holding(self, ref: str) -> list[dict]:
        return [rec for rec in self.records.values() if rec["ref"] == ref]


def push(session: SyncSession, target: FakeTarget, ref: str, payload: dict, *, mode: str = "update"):
    return session.sync(
        ref,
        content_hash(payload),
        create=lambda: target.create(ref, payload),
        lookup=lambda: target.lookup(ref),
        update=(lambda tid: target.update(tid, payload)) if mode == "update" else None,
        recreate=(lambda tid: target.recreate(tid, ref, payload)) if mode == "recreate" else None,
    )


def session(store: StateStore, run_id: str, **kwargs) -> SyncSession:
    return SyncSession(store, tenant=TENANT, flow=FLOW, run_id=run_id, partition="acme|2026-11-20", **kwargs)


def test_new_then_same_then_changed(state_store: StateStore) -> None:
    target = FakeTarget()
    first = push(session(state_store, "run-1"), target, "S1", {"name": "Acme"})
    assert (first.action, first.target_id) == ("created", "T1")
    version = Ledger(state_store).get(TENANT, FLOW, "S1").version
    rerun = session(state_store, "run-2")
    again = push(rerun, target, "S1", {"name": "Acme"})
    assert (again.action, again.target_id, again.reason) == ("skipped", "T1", "unchanged")
    # Rerunning a partition of unchanged records writes nothing: no ledger change, no audit row;
    # the skip is only counted (issue 13).
    assert Ledger(state_store).get(TENANT, FLOW, "S1").version == version
    assert (rerun.counts["skipped"], rerun.unchanged) == (1, 1)
    changed = push(session(state_store, "run-3"), target, "S1", {"name": "Acme Ltd"})
    assert (changed.action, changed.target_id) == ("updated", "T1")
    assert target.records == {"T1": {"ref": "S1", "name": "Acme Ltd"}}
    entry = Ledger(state_store).get(TENANT, FLOW, "S1")
    assert (entry.status, entry.content_hash, entry.run_id) == (
        "done",
        content_hash({"name": "Acme Ltd"}),
        "run-3",
    )
    actions = [e.action for e in AuditWriter(state_store).history(TENANT, FLOW, "S1")]
    assert actions == ["created", "updated"]


def test_changed_record_on_immutable_target_is_recreated(state_store: StateStore) -> None:
    target = FakeTarget()
    push(session(state_store, "run-1"), target, "S1", {"iban": "GB1"}, mode="recreate")
    push(session(state_store, "run-2"), target, "S1", {"iban": "GB2"}, mode="recreate")
    result = push(session(state_store, "run-3"), target, "S1", {"iban": "GB3"}, mode="recreate")
    assert (result.action, result.target_id) == ("recreated", "T3")
    assert target.records == {"T3": {"ref": "S1", "iban": "GB3"}}
    entry = Ledger(state_store).get(TENANT, FLOW, "S1")
    assert entry.extra["previous_target_ids"] == ["T1", "T2"]


def test_changed_record_without_update_or_recreate_is_left_as_it_was(state_store: StateStore) -> None:
    target = FakeTarget()
    push(session(state_store, "run-1"), target, "S1", {"v": 1})
    result = session(state_store, "run-2").sync("S1", content_hash({"v": 2}), create=lambda: "never")
    assert result.action == "skipped" and "cannot change" in result.reason
    assert target.records == {"T1": {"ref": "S1", "v": 1}}
    entry = Ledger(state_store).get(TENANT, FLOW, "S1")
    assert (entry.status, entry.content_hash) == ("done", content_hash({"v": 1}))


def test_target_rejection_is_flagged_audited_and_alerted(state_store: StateStore) -> None:
    target = FakeTarget()
    target.reject_with = "currency XYZ is not supported"
    sync = session(state_store, "run-1")
    result = push(sync, target, "S1", {"currency": "XYZ"})
    assert result.action == "flagged"
    assert "currency XYZ is not supported" in result.reason
    assert target.records == {}
    entry = Ledger(state_store).get(TENANT, FLOW, "S1")
    assert entry.status == "flagged" and "XYZ is not supported" in entry.reason
    history = AuditWriter(state_store).history(TENANT, FLOW, "S1")
    assert [e.action for e in history] == ["flagged", "alert"]
    assert all("XYZ is not supported" in e.reason for e in history)
    # Fixed at the source: rerunning the partition retries the flagged record.
    target.reject_with = None
    retried = push(session(state_store, "run-2"), target, "S1", {"currency": "EUR"})
    assert (retried.action, retried.target_id) == ("created", "T1")


def test_validation_failure_is_flagged_without_any_call(state_store: StateStore) -> None:
    target = FakeTarget()

    def create() -> str:
        raise ValidationFailed("S1", "bank_account", "IBAN checksum is wrong")

    sync = session(state_store, "run-1")
    result = sync.sync("S1", content_hash({"iban": "x"}), create=create)
    flagged_before_call = sync.flag("S2", "unknown GL code 9999", field="gl_account")
    assert result.action == "flagged" and "IBAN checksum is wrong" in result.reason
    assert flagged_before_call.reason == "gl_account: unknown GL code 9999"
    assert target.records == {}
    statuses = {e.source_id: e.status for e in Ledger(state_store).entries(TENANT, FLOW)}
    assert statuses == {"S1": "flagged", "S2": "flagged"}
    assert sync.counts["flagged"] == 2


def test_unknown_outcome_after_commit_finds_the_record_instead_of_duplicating(
    state_store: StateStore,
) -> None:
    target = FakeTarget()
    target.commit_then_time_out = 1
    result = push(session(state_store, "run-1"), target, "S1", {"name": "Acme"})
    assert (result.action, result.target_id) == ("created", "T1")
    assert result.reason == "recovered after unknown outcome"
    assert len(target.holding("S1")) == 1
    assert Ledger(state_store).get(TENANT, FLOW, "S1").status == "done"


def test_unknown_outcome_before_commit_is_tried_once_more(state_store: StateStore) -> None:
    target = FakeTarget()
    target.time_out_before_commit = 1
    result = push(session(state_store, "run-1"), target, "S1", {"name": "Acme"})
    assert (result.action, result.reason) == ("created", "retried after unknown outcome")
    assert len(target.holding("S1")) == 1


def test_unknown_twice_fails_and_next_run_recovers(state_store: StateStore) -> None:
    target = FakeTarget()
    target.time_out_before_commit = 1
    target.commit_then_time_out = 1  # second try commits but the answer is lost again
    sync = session(state_store, "run-1")
    result = sync.sync(
        "S1",
        content_hash({"n": 1}),
        create=lambda: target.create("S1", {"n": 1}),
        # The target's search is eventually consistent: the first lookup misses the record.
        lookup=lambda: None,
    )
    assert result.action == "failed" and "OutcomeUnknown" in result.reason
    assert Ledger(state_store).get(TENANT, FLOW, "S1").status == "pending"
    # The failed run let go of its lease, so the next run can recover at once.
    recovered = push(session(state_store, "run-2"), target, "S1", {"n": 1})
    assert (recovered.action, recovered.reason) == ("created", "recovered")
    assert len(target.holding("S1")) == 1


def test_crash_between_pending_and_done_is_recovered_without_duplicate(state_store: StateStore) -> None:
    target = FakeTarget()
    ledger = Ledger(state_store)
    # The crashed run claimed the record, created it in the target, and died before complete().
    assert ledger.claim(TENANT, FLOW, "S1", "crashed-run") is not None
    target.create("S1", {"name": "Acme"})
    # While its lease lasts, another run leaves the record alone.
    blocked = push(session(state_store, "run-2"), target, "S1", {"name": "Acme"})
    assert (blocked.action, blocked.reason) == ("skipped", "in progress in run crashed-run")
    assert blocked.in_progress
    # Once the lease has expired, the next run finds the record instead of creating it again.
    result = push(session(state_store, "run-3", lease_seconds=0), target, "S1", {"name": "Acme"})
    assert (result.action, result.target_id, result.reason) == ("created", "T1", "recovered")
    assert len(target.holding("S1")) == 1
    assert ledger.get(TENANT, FLOW, "S1").status == "done"


def test_crash_before_the_call_creates_after_lookup_misses(state_store: StateStore) -> None:
    target = FakeTarget()
    Ledger(state_store).claim(TENANT, FLOW, "S1", "crashed-run")
    result = push(session(state_store, "run-2", lease_seconds=0), target, "S1", {"name": "Acme"})
    assert (result.action, result.target_id, result.reason) == ("created", "T1", None)
    assert len(target.holding("S1")) == 1


def test_other_errors_fail_the_record_and_keep_it_pending(state_store: StateStore) -> None:
    target = FakeTarget()

    def create() -> str:
        raise RetryExhausted("fake", "POST", "/records", 503, "service unavailable")

    sync = session(state_store, "run-1")
    result = sync.sync("S1", content_hash({}), create=create, lookup=lambda: target.lookup("S1"))
    assert result.action == "failed" and "service unavailable" in result.reason
    entry = Ledger(state_store).get(TENANT, FLOW, "S1")
    assert entry.status == "pending" and entry.claimed_at is None
    assert sync.counts == {"created": 0, "updated": 0, "linked": 0, "skipped": 0, "flagged": 0, "failed": 1}


def test_summary_and_note(state_store: StateStore) -> None:
    target = FakeTarget()
    sync = session(state_store, "run-1")
    push(sync, target, "S1", {"a": 1})
    push(sync, target, "S1", {"a": 1})
    sync.note("S1", "posted", target_id="T1", reason="status written back", details={"status": "paid"})
    frame = sync.summary()
    assert list(frame.columns) == ["source_id", "action", "target_id", "reason"]
    assert frame["action"].tolist() == ["created", "skipped", "posted"]
    assert sync.counts["posted"] == 1 and sync.counts["created"] == 1
    assert AuditWriter(state_store).history(TENANT, FLOW, "S1")[-1].details == {"status": "paid"}


@pytest.mark.parametrize(
    ("a", "b"),
    [({"x": 1, "y": [1, 2]}, {"y": [1, 2], "x": 1}), ({"d": "2026-01-01"}, {"d": "2026-01-01"})],
)
def test_content_hash_is_canonical(a: dict, b: dict) -> None:
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "z": None})


def test_run_that_outlived_its_lease_reports_failure_and_the_new_holder_recovers(
    state_store: StateStore,
) -> None:
    target = FakeTarget()
    ledger = Ledger(state_store)

    def slow_create() -> str:
        # While this run waits on the target, its lease expires and run-2 takes the record over.
        assert ledger.claim(TENANT, FLOW, "S1", "run-2", lease_seconds=0) is not None
        return target.create("S1", {"n": 1})

    result = session(state_store, "run-1").sync("S1", content_hash({"n": 1}), create=slow_create)
    assert result.action == "failed" and "not claimed by run run-1" in result.reason
    assert ledger.get(TENANT, FLOW, "S1").run_id == "run-2"
    recovered = push(session(state_store, "run-3", lease_seconds=0), target, "S1", {"n": 1})
    assert (recovered.action, recovered.target_id, recovered.reason) == ("created", "T1", "recovered")
    assert len(target.holding("S1")) == 1


def test_batched_push_commits_once_per_record_and_writes_everything(state_store: StateStore) -> None:
    commits = itertools.count()
    sa.event.listen(state_store.engine, "commit", lambda _conn: next(commits))
    target = FakeTarget()
    batch = session(state_store, "run-1")
    start = next(commits)
    with batch.batched():
        for n in range(10):
            push(batch, target, f"S{n}", {"name": f"Acme {n}"})
    # Ten claims (each carrying the previous completion) plus the final flush.
    assert next(commits) - start - 1 == 11
    ledger = Ledger(state_store)
    assert all(ledger.get(TENANT, FLOW, f"S{n}").status == "done" for n in range(10))
    assert len(AuditWriter(state_store).history(TENANT, FLOW)) == 10
    rerun = session(state_store, "run-2")
    before = next(commits)
    with rerun.batched():
        for n in range(10):
            push(rerun, target, f"S{n}", {"name": f"Acme {n}"})
    assert next(commits) - before - 1 == 0  # an unchanged re-poll writes nothing
    assert rerun.unchanged == 10 and len(target.records) == 10


def _sync_together(run: SyncSession, refs: list[str], sync_one) -> dict[str, object]:
    """Call `sync_one(ref)` from one thread per record, all claiming at once: while the test holds
    the session's committer (a transaction in progress), every claim queues up behind it."""
    outcomes: dict[str, object] = {}

    def work(ref: str) -> None:
        try:
            outcomes[ref] = sync_one(ref)
        except Exception as exc:
            outcomes[ref] = exc

    threads = [threading.Thread(target=work, args=(ref,)) for ref in refs]
    with run._committer:
        for thread in threads:
            thread.start()
        while len(run._claims) < len(refs):  # wait for every claim to queue (not a timing check)
            time.sleep(0.001)
    for thread in threads:
        thread.join()
    return outcomes


def test_claims_waiting_together_share_one_commit_and_each_is_durable_before_its_call(
    state_store: StateStore,
) -> None:
    target = FakeTarget()
    ledger = Ledger(state_store)
    run = session(state_store, "run-1")
    seen_at_call = {}
    commits = itertools.count()
    sa.event.listen(state_store.engine, "commit", lambda _conn: next(commits))
    refs = [f"S{n}" for n in range(6)]

    def create(ref: str) -> str:
        # Read on another connection, which sees committed rows only: the claim is durable.
        seen_at_call[ref] = ledger.get(TENANT, FLOW, ref)
        return target.create(ref, {"n": ref})

    start = next(commits)
    with run.batched():
        outcomes = _sync_together(
            run,
            refs,
            lambda ref: run.sync(ref, "h", create=lambda: create(ref), lookup=lambda: target.lookup(ref)),
        )
    assert next(commits) - start - 1 == 2  # the six claims, then the six completions with their audit rows
    assert all(seen_at_call[ref].status == "pending" and seen_at_call[ref].run_id == "run-1" for ref in refs)
    assert {outcomes[ref].action for ref in refs} == {"created"}
    assert all(ledger.get(TENANT, FLOW, ref).status == "done" for ref in refs)
    assert len(AuditWriter(state_store).history(TENANT, FLOW)) == 6 and len(target.records) == 6


def test_a_claim_transaction_that_fails_fails_every_record_in_it_before_any_call(
    state_store: StateStore,
) -> None:
    target = FakeTarget()
    ledger = Ledger(state_store)
    ledger.claim(TENANT, FLOW, "held", "other-run")

    def run_finished(_run_id: str) -> bool:
        raise RuntimeError("the orchestrator cannot be asked")

    run = session(state_store, "run-1", run_finished=run_finished)
    outcomes = _sync_together(run, ["held", "S1", "S2"], lambda ref: push(run, target, ref, {"n": ref}))
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes.values())
    assert target.records == {}  # no call without its claim committed
    assert ledger.get(TENANT, FLOW, "S1") is None and ledger.get(TENANT, FLOW, "S2") is None
    assert ledger.get(TENANT, FLOW, "held").run_id == "other-run"


def test_claims_taken_ahead_are_durable_before_their_calls_and_unused_ones_are_given_back(
    state_store: StateStore,
) -> None:
    target = FakeTarget()
    ledger = Ledger(state_store)
    run = session(state_store, "run-1")
    refs = ["S0", "S1", "no-bank", "S2", "S3", "S4", "S5", "S6", "broken"]
    seen_at_call = {}
    commits = itertools.count()
    sa.event.listen(state_store.engine, "commit", lambda _conn: next(commits))

    def create(ref: str) -> str:
        seen_at_call[ref] = ledger.get(TENANT, FLOW, ref)  # another connection: committed rows only
        return target.create(ref, {"n": ref})

    start = next(commits)
    with run.batched():
        # The pusher says every record but "no-bank" will be claimed ("broken" then fails first).
        run.prefetch(refs, claim_ahead=3, will_claim=[ref for ref in refs if ref != "no-bank"])
        for ref in refs:
            if ref == "no-bank":  # skipped before `sync`: never claimed, not even ahead
                assert ref not in run._ahead
                run.note(ref, "skipped", reason="supplier has no bank details")
            elif ref == "broken":  # claimed ahead, but its push fails before `sync`
                assert ref in run._ahead
                run.note(ref, "failed", reason="RetryExhausted: account requirements")
            else:
                run.sync(
                    ref, "h", create=lambda ref=ref: create(ref), lookup=lambda ref=ref: target.lookup(ref)
                )
    # S0 with S1-S3 ahead; no-bank's audit row; S4 with S5, S6, broken ahead; broken's audit row;
    # the final flush (the last completions, broken's claim given back).
    assert next(commits) - start - 1 == 5
    pushed = [ref for ref in refs if ref not in ("no-bank", "broken")]
    assert all(
        seen_at_call[ref].status == "pending" and seen_at_call[ref].run_id == "run-1" for ref in pushed
    )
    assert all(ledger.get(TENANT, FLOW, ref).status == "done" for ref in pushed)
    assert ledger.get(TENANT, FLOW, "broken") is None and ledger.get(TENANT, FLOW, "no-bank") is None
    assert len(target.records) == 7 and len(AuditWriter(state_store).history(TENANT, FLOW)) == 9


def test_a_claim_taken_ahead_that_waited_too_long_is_given_back_and_claimed_afresh(
    state_store: StateStore,
) -> None:
    target = FakeTarget()
    ledger = Ledger(state_store)
    run = session(state_store, "run-1")
    at_call = {}

    def create(ref: str) -> str:
        at_call[ref] = ledger.get(TENANT, FLOW, ref)
        return target.create(ref, {"n": ref})

    with run.batched():
        run.prefetch(["S0", "S1"], claim_ahead=1, will_claim=["S0", "S1"])
        run.sync("S0", "h", create=lambda: create("S0"), lookup=lambda: target.lookup("S0"))
        early, _ = run._ahead["S1"]
        run._ahead["S1"] = (early, float("-inf"))  # as if its worker came only after a tenth of the lease
        result = run.sync("S1", "h", create=lambda: create("S1"), lookup=lambda: target.lookup("S1"))
    assert (result.action, result.reason) == ("created", None)  # a fresh claim: no lookup first
    fresh = at_call["S1"]
    assert (fresh.status, fresh.previous_status, fresh.version) == ("pending", None, 1)
    assert fresh.claimed_at > early.claimed_at  # the old claim was given back, a new one taken
    assert ledger.get(TENANT, FLOW, "S1").status == "done" and len(target.holding("S1")) == 1


def test_a_run_that_dies_holding_claims_taken_ahead_leaves_them_for_the_rerun_to_look_up(
    state_store: StateStore,
) -> None:
    target = FakeTarget()
    ledger = Ledger(state_store)
    refs = ["S0", "S1", "S2", "S3"]
    dead = session(state_store, "dead-run")
    dying = dead.batched()
    dying.__enter__()  # never left: the process dies inside the push
    dead.prefetch(refs, claim_ahead=3, will_claim=refs)
    push(dead, target, "S0", {"n": "S0"})  # claims S1-S3 ahead
    push(dead, target, "S1", {"n": "S1"})  # sent; its completion (like S0's) never written
    assert [ledger.get(TENANT, FLOW, ref).status for ref in refs] == ["pending"] * 4
    rerun = session(state_store, "rerun", run_finished=lambda run_id: run_id == "dead-run")
    with rerun.batched():
        rerun.prefetch(refs, claim_ahead=3, will_claim=refs)
        results = [push(rerun, target, ref, {"n": ref}) for ref in refs]
    assert [(r.action, r.reason) for r in results] == [
        ("created", "recovered"),
        ("created", "recovered"),
        ("created", None),
        ("created", None),
    ]
    assert all(len(target.holding(ref)) == 1 for ref in refs)
    assert all(ledger.get(TENANT, FLOW, ref).status == "done" for ref in refs)


def test_a_worker_arriving_while_its_claim_is_written_ahead_gets_that_claim(state_store: StateStore) -> None:
    target = FakeTarget()
    run = session(state_store, "run-1")
    refs = [f"S{n}" for n in range(4)]
    writing, proceed = threading.Event(), threading.Event()
    original, written = run.ledger.claim_many, []

    def claim_many(*args, **kwargs):
        written.append(args[2])  # the records of this claim transaction
        writing.set()
        proceed.wait()
        return original(*args, **kwargs)

    run.ledger.claim_many = claim_many
    results = {}

    def worker(ref: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.__setitem__(ref, push(run, target, ref, {"n": ref})))
        thread.start()
        return thread

    with run.batched():
        run.prefetch(refs, claim_ahead=3, will_claim=refs)
        first = worker("S0")
        writing.wait()  # S0's transaction, claiming S1-S3 ahead, is being written
        second = worker("S1")
        while run._ahead_writing.get("S1") is None:  # S1's worker waits for that transaction
            time.sleep(0.001)
        proceed.set()
        first.join()
        second.join()
        for ref in refs[2:]:
            results[ref] = push(run, target, ref, {"n": ref})
    assert written == [["S0", "S1", "S2", "S3"]]  # one claim transaction for all four
    assert all((results[ref].action, results[ref].reason) == ("created", None) for ref in refs)
    assert all(len(target.holding(ref)) == 1 for ref in refs)
