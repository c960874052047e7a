"""What a pair supplies to the push factory, and the worker pool that drives it. No Dagster here.

A pair's pusher is any object with `sync(record) -> SyncResult`, built from a `PushContext` (the
flow's SyncSession, the open target client, a lazily opened Infor adapter, the tenant config and
the shared dependency resolver). `push_all` feeds a partition's records to it from a bounded pool
of worker threads and applies the one per-record error policy (`push_one`):

- TargetRejected / ValidationFailed (a data problem): flagged with the target's words, alerted;
- anything else (RetryExhausted after 429s, a dependency held by another run, Infor unreachable):
  failed for that record only, never flagged, retried by the next run.

A run never stops halfway because of one record. Its time is bounded: given `time_budget`, no
record starts once the budget is spent; those left are failed ("not attempted") for the next run,
so a push ends within the budget plus one record's worst case (its requests times the HTTP
client's retry budget, see `core.http.HttpClient`). Several threads share one SyncSession: each
record is claimed in the ledger before any call (its claim committed in a transaction shared with
other workers' claims, or ahead, see `Pusher`), and `SyncSession.results` only grows by
`list.append` (atomic), read once the pool is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ...core.errors import TargetRejected, ValidationFailed
from ...core.sync import SyncResult, SyncSession
from ...systems.infor.adapter import InforAdapter
from .dependencies import Dependencies

R = TypeVar("R")
T = TypeVar("T")
R_contra = TypeVar("R_contra", contravariant=True)


class Pusher(Protocol[R_contra]):
    """A pair's pusher. It may also define `will_claim(record) -> bool`: True only when `sync` of
    that record, while the ledger has no row for it, certainly claims it in the flow's session
    (`session.sync` or `session.flag`, no skip before them; an exception is fine); `push_all` then
    claims such records ahead, a page of workers' worth in one transaction (sync.py). Without it
    every record is claimed by its own worker."""

    def sync(self, record: R_contra) -> SyncResult:
        """Bring the target in line with one source record (through `PushContext.session`)."""
        ...


class TargetClient(Protocol):
    """What the factory needs from a system client: its request count, how many requests it may
    have in flight at once (its declared concurrency), and close()."""

    @property
    def requests_made(self) -> int: ...

    @property
    def max_concurrency(self) -> int: ...

    def close(self) -> None: ...


@dataclass
class PushContext:
    """Everything a pusher is built from, for one flow, tenant and run."""

    tenant: str
    session: SyncSession
    target: Any
    config: Mapping[str, Any]
    dependencies: Dependencies
    open_infor: Callable[[], InforAdapter] | None = None
    open_session: Callable[[str], SyncSession] | None = None
    _infor: list[InforAdapter] = field(default_factory=list)
    _sessions: dict[str, SyncSession] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def infor(self) -> InforAdapter:
        """The tenant's Infor adapter, opened on first use: most runs never need Infor here."""
        with self._lock:
            if not self._infor:
                if self.open_infor is None:
                    raise RuntimeError(f"{self.session.flow} did not declare that it reads Infor")
                self._infor.append(self.open_infor())
            return self._infor[0]

    def session_for(self, flow: str) -> SyncSession:
        """The SyncSession of another flow in this run (a dependency synced on the spot)."""
        if flow == self.session.flow:
            return self.session
        with self._lock:
            if flow not in self._sessions:
                if self.open_session is None:
                    raise RuntimeError("no way to open another flow's session here")
                self._sessions[flow] = self.open_session(flow)
            return self._sessions[flow]

    @property
    def other_sessions(self) -> dict[str, SyncSession]:
        return dict(self._sessions)

    @property
    def requests_made(self) -> int:
        """Requests to the target plus to Infor, for the run metadata."""
        total = int(getattr(self.target, "requests_made", 0))
        return total + sum(int(getattr(adapter, "requests_made", 0)) for adapter in self._infor)

    def close(self) -> None:
        for adapter in self._infor:
            adapter.close()
        self._infor.clear()


PAGE_SIZE = 500  # records whose ledger rows are read at once


def push_one(pusher: Pusher[R], session: SyncSession, record: R, record_id: str) -> SyncResult:
    """One record through the pusher, with the one error policy (module docstring)."""
    try:
        return pusher.sync(record)
    except ValidationFailed as exc:
        return session.flag(record_id, exc.reason, field=exc.field)
    except TargetRejected as exc:
        return session.flag(record_id, f"{exc.system} rejected it (HTTP {exc.status}): {exc.target_message}")
    except Exception as exc:  # transient or unknown: this record fails, the others go on
        return session.note(record_id, "failed", reason=f"{type(exc).__name__}: {exc}")


def push_all(
    pusher: Pusher[R],
    session: SyncSession,
    records: Sequence[R],
    record_id: Callable[[R], str],
    *,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
    time_budget: float | None = None,
) -> list[SyncResult]:
    """Push every record with at most `workers` at once; the results in record order.
    Records not started within `time_budget` seconds are failed without a call (module docstring).

    Records sharing an id (never expected from an extract) go to one worker in their order, since
    the ledger lets one run claim a record it already holds.
    """
    groups: dict[str, list[R]] = {}
    for record in records:
        groups.setdefault(record_id(record), []).append(record)
    total, done = len(records), 0
    lock = threading.Lock()
    deadline = None if time_budget is None else time.monotonic() + time_budget

    def push_group(item: tuple[str, list[R]]) -> list[SyncResult]:
        nonlocal done
        key, members = item
        results = []
        for record in members:
            if deadline is not None and time.monotonic() >= deadline:
                reason = f"not attempted: the run's time budget of {time_budget:g} s was spent"
                results.append(session.note(key, "failed", reason=reason))
            else:
                results.append(push_one(pusher, session, record, key))
            with lock:
                done += 1
                count = done
            if progress is not None:
                progress(count, total)
        return results

    size = max(1, min(workers, len(groups)))
    items = list(groups.items())
    will_claim: Callable[[R], bool] | None = getattr(pusher, "will_claim", None)
    batches: list[list[SyncResult]] = []
    # The ledger rows of a page of records are read in one query; each claim's transaction carries
    # the completions waiting, and claims ahead the next records the pusher will claim (sync.py).
    with (
        session.batched(),
        ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"push-{session.flow}") as pool,
    ):
        for start in range(0, len(items), PAGE_SIZE):
            page = items[start : start + PAGE_SIZE]
            certain = (
                [key for key, members in page if will_claim(members[0])] if will_claim and size > 1 else []
            )
            session.prefetch([key for key, _ in page], claim_ahead=size, will_claim=certain)
            batches.extend(map(push_group, page) if size == 1 else _on_workers(pool, size, push_group, page))
    return [result for batch in batches for result in batch]


def _on_workers(pool: ThreadPoolExecutor, workers: int, work: Callable[[T], R], items: list[T]) -> list[R]:
    """`pool.map(work, items)` as `workers` loops that each take the next item: a future per
    worker, not per item (a future, its queue hand-off and wake-up were 7% of a push's CPU)."""
    results: list[Any] = [None] * len(items)
    taken = iter(range(len(items)))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                n = next(taken, None)
            if n is None:
                return
            results[n] = work(items[n])

    for future in [pool.submit(loop) for _ in range(min(workers, len(items)))]:
        future.result()  # an exception in `work` (push_one catches all but BaseException) propagates
    return results
