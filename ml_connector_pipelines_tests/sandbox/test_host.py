"""The sandbox host: named fault profiles, deterministic per seed, applied to simulator routes only."""

from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ml_connector_pipelines.sandbox.faults import PROFILES, FaultInjector
from ml_connector_pipelines.sandbox.host import SandboxContext, SandboxServer


class Counter:
    """A minimal simulator: counts the writes it committed."""

    name = "counter"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.committed = 0

    def routes(self) -> list[BaseRoute]:
        def write(request: Request) -> JSONResponse:
            self.committed += 1
            return JSONResponse({"committed": self.committed})

        return [Route("/write", write, methods=["POST"])]

    def control_routes(self) -> list[BaseRoute]:
        return [Route("/ping", lambda request: JSONResponse({"pong": True}))]

    def state(self) -> dict[str, Any]:
        return {"committed": self.committed}

    def credentials(self) -> dict[str, Any]:
        return {}


def _statuses(server: SandboxServer, n: int) -> list[int]:
    return [httpx.post(f"{server.url}/counter/write", timeout=30).status_code for _ in range(n)]


def test_every_profile_is_named_and_documented() -> None:
    assert {"none", "flaky", "storm", "chaos", "gateway_timeout"} <= set(PROFILES)
    for name, profile in PROFILES.items():
        assert profile.name == name and profile.description
    with pytest.raises(ValueError, match="unknown fault profile"):
        FaultInjector("nonsense")


def test_same_seed_gives_the_same_faults_and_another_seed_does_not() -> None:
    runs = []
    for seed in (3, 3, 4):
        with SandboxServer(simulators=[Counter], faults="chaos", seed=seed) as server:
            runs.append(_statuses(server, 80))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {429, 504} <= set(runs[0]) and 200 in runs[0]


def test_commit_then_timeout_commits_before_answering_504() -> None:
    with SandboxServer(simulators=[Counter], faults="chaos", seed=5) as server:
        statuses = _statuses(server, 80)
        committed = server.get_state("counter")["committed"]
    # Only 200s and gateway timeouts reach the simulator; 429s and 5xx are answered before it.
    assert committed == statuses.count(200) + statuses.count(504)
    assert statuses.count(504) > 0


def test_faults_target_chosen_systems_and_never_control_routes() -> None:
    with SandboxServer(simulators=[Counter], faults="none", seed=1) as server:
        server.set_faults("storm", seed=1, systems=["wise"])
        assert set(_statuses(server, 30)) == {200}  # counter is not targeted
        server.set_faults("storm", seed=1)
        assert 429 in _statuses(server, 30)
        assert all(httpx.get(f"{server.url}/_sandbox/counter/ping").status_code == 200 for _ in range(30))
        injected = httpx.get(f"{server.url}/_sandbox/faults").json()["injected"]
        assert injected.get("rate_limit", 0) + injected.get("rate_limit_no_header", 0) > 0
        bad = httpx.put(f"{server.url}/_sandbox/faults", json={"profile": "nonsense"})
        assert bad.status_code == 400


def test_rate_limits_carry_every_retry_after_form() -> None:
    injector = FaultInjector("flaky", seed=11)
    seen = {}
    for _ in range(3000):
        fault = injector.request_fault("infor")
        if fault is not None and fault.status == 429:
            seen[fault.kind] = fault.headers.get("Retry-After")
    assert seen["rate_limit"] in ("0", "1")
    assert seen["rate_limit_http_date"].endswith("GMT")
    assert seen["rate_limit_no_header"] is None


def test_gateway_timeout_profile_answers_504_after_60_seconds() -> None:
    injector = FaultInjector("gateway_timeout", seed=2)
    faults = [f for f in (injector.request_fault("infor") for _ in range(500)) if f is not None]
    assert faults and {(f.kind, f.status, f.hang_seconds) for f in faults} == {
        ("commit_then_timeout", 504, 60.0)
    }


def test_a_simulator_answers_injected_faults_in_its_own_error_shape() -> None:
    from ml_connector_pipelines.sandbox.wise.simulator import WiseSimulator

    with SandboxServer(simulators=[WiseSimulator, Counter], faults="storm", seed=4) as server:
        headers = {"Authorization": "Bearer wise-sandbox-shapes"}
        wise = [httpx.get(f"{server.url}/wise/v2/profiles", headers=headers) for _ in range(20)]
        other = [httpx.post(f"{server.url}/counter/write") for _ in range(20)]
    limited = next(r for r in wise if r.status_code == 429).json()
    # Wise's Spring-style system error (contract section 8), not another system's shape.
    assert (limited["status"], limited["error"]) == (429, "Too Many Requests") and "timestamp" in limited
    generic = next(r for r in other if r.status_code == 429).json()
    assert generic == {"error": {"type": "api_error", "message": "injected fault"}}
