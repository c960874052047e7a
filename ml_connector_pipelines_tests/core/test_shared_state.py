"""What several processes share through the state store: sequences and a system's rate budget."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ml_connector_pipelines.core.http import RateLimit
from ml_connector_pipelines.core.state import State
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.sandbox.host import SandboxContext, SandboxServer
from ml_connector_pipelines_tests.core import shared_state_worker

PROCESSES = 2


class StampSimulator:
    """Records when each request arrived: the limit is counted where it matters, at the target."""

    name = "stamped"

    def __init__(self, ctx: SandboxContext) -> None:
        self.arrivals: list[float] = []

    async def stamp(self, request: Request) -> Response:
        self.arrivals.append(time.monotonic())
        return JSONResponse({"ok": True})

    def routes(self) -> list[BaseRoute]:
        return [Route("/stamp", self.stamp)]

    def control_routes(self) -> list[BaseRoute]:
        return []

    def state(self) -> dict[str, Any]:
        return {"arrivals": len(self.arrivals)}

    def credentials(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def stamp_server() -> Iterator[SandboxServer]:
    with SandboxServer(simulators=[StampSimulator]) as server:
        yield server


def _migrated(url: str) -> str:
    store = StateStore(url)
    store.migrate()
    store.dispose()
    return url


def _in_processes(target: Any, *args: Any) -> list[Any]:
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        return pool.starmap(target, [args] * PROCESSES)


def test_sequence_starts_at_one_and_is_per_name(state_db_url: str) -> None:
    store = StateStore(_migrated(state_db_url))
    assert [store.next_sequence("ISA:ACME:CLEO") for _ in range(3)] == [1, 2, 3]
    assert store.next_sequence("ISA:OTHER:CLEO") == 1
    assert store.next_sequence("ISA:ACME:CLEO") == 4
    store.dispose()


def test_sequence_never_repeats_across_processes(state_db_url: str) -> None:
    url = _migrated(state_db_url)
    taken = _in_processes(shared_state_worker.take_sequence, url, "ISA:ACME:CLEO", 40)

    values = [value for batch in taken for value in batch]
    assert sorted(values) == list(range(1, PROCESSES * 40 + 1))  # none twice, none skipped
    assert all(batch == sorted(batch) for batch in taken)  # strictly increasing in each process


def test_two_processes_on_one_credential_stay_within_its_rate_limit(
    stamp_server: SandboxServer, state_db_url: str
) -> None:
    url = _migrated(state_db_url)
    limit = RateLimit(per_second=20, burst=4)
    per_process = 30

    sent = _in_processes(
        shared_state_worker.send_requests, url, f"{stamp_server.url}/stamped", limit, per_process
    )

    arrivals = sorted(stamp_server.simulator("stamped").arrivals)
    assert sent == [per_process] * PROCESSES and len(arrivals) == PROCESSES * per_process
    # In any one-second window: the rate, plus the burst, plus one leased block per process. Each
    # process alone could send 20 per second, so without the shared bucket two would send 40.
    block = max(1, min(limit.burst, int(limit.per_second / 10)))
    allowed = limit.per_second + limit.burst + PROCESSES * block
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= allowed, (busiest, allowed)


def test_state_exposes_the_sequence(state_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from ml_connector_pipelines.core.settings import Settings

    monkeypatch.setenv("ML_CONNECTOR_HOME", str(tmp_path))
    state = State.open(Settings.from_env().model_copy(update={"db_url": state_db_url}))
    assert [state.next_sequence("GS:ACME"), state.next_sequence("GS:ACME")] == [1, 2]
    state.store.dispose()
