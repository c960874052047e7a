"""Real separate processes (spawn) racing for the same ledger keys and inbox rows.

Every process starts claiming at the same moment (a barrier) in the same order, so most claims
collide; each key and each row must still be won by exactly one process.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.core.store import StateStore

PROCESSES = 4
KEYS = [f"S{n:03d}" for n in range(40)]


def _race_for_ledger_keys(url: str, worker: int, barrier: Any, results: Any) -> None:
    store = StateStore(url)
    ledger = Ledger(store)
    barrier.wait()
    first = [key for key in KEYS if ledger.claim("acme", "suppliers", key, f"run-{worker}") is not None]
    barrier.wait()  # completing earlier would let a slower process legitimately claim the done row
    for key in first:
        ledger.complete("acme", "suppliers", key, f"run-{worker}", f"T-{key}", "h1")
    # Second round on rows that now exist as done: the optimistic version check decides.
    barrier.wait()
    second = [key for key in KEYS if ledger.claim("acme", "suppliers", key, f"run-{worker}b") is not None]
    results.put((worker, first, second))
    store.dispose()


def _race_for_inbox_rows(url: str, worker: int, barrier: Any, results: Any) -> None:
    store = StateStore(url)
    inbox = Inbox(store)
    barrier.wait()
    won: list[int] = []
    while pending := [event.id for event in inbox.pending("stripe", limit=5)]:
        won += inbox.claim(pending, f"run-{worker}")
    results.put((worker, won))
    store.dispose()


def _run_race(target: Any, url: str) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=target, args=(url, n, barrier, results)) for n in range(PROCESSES)]
    for process in processes:
        process.start()
    collected = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return collected


def test_each_ledger_key_is_claimed_by_exactly_one_process(state_store: StateStore) -> None:
    outcome = _run_race(_race_for_ledger_keys, state_store.url.render_as_string(hide_password=False))
    for round_index in (1, 2):
        winners = Counter(key for result in outcome for key in result[round_index])
        assert sorted(winners) == KEYS
        assert set(winners.values()) == {1}
    # The database agrees with what each process believes it won.
    second_winner = {key: f"run-{worker}b" for worker, _, second in outcome for key in second}
    entries = Ledger(state_store).entries("acme", "suppliers")
    assert {e.source_id: e.run_id for e in entries} == second_winner
    assert all(e.status == "pending" and e.previous_status == "done" for e in entries)


def test_each_inbox_row_is_claimed_by_exactly_one_process(state_store: StateStore) -> None:
    inbox = Inbox(state_store)
    for n in range(40):
        inbox.put("stripe", "acme", f"evt_{n}", "{}")
    outcome = _run_race(_race_for_inbox_rows, state_store.url.render_as_string(hide_password=False))
    winners = Counter(row for _, won in outcome for row in won)
    all_ids = sorted(inbox.get(i).id for i in winners)
    assert len(winners) == 40 and set(winners.values()) == {1}
    claimed_by = {row: f"run-{worker}" for worker, won in outcome for row in won}
    assert {i: inbox.get(i).claimed_by for i in all_ids} == claimed_by
