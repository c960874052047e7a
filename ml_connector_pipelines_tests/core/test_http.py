"""core/http.py against a real local HTTP server: a tiny test simulator served by the sandbox host."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ml_connector_pipelines.core import http as http_module
from ml_connector_pipelines.core.errors import (
    AuthenticationFailed,
    ConnectorError,
    OutcomeUnknown,
    RetryExhausted,
    TargetRejected,
)
from ml_connector_pipelines.core.http import (
    ErrorHooks,
    HttpClient,
    RateLimit,
    RetryPolicy,
    StatusClass,
    TokenBucket,
    default_status_class,
    paginate,
    parse_retry_after,
    run_bounded,
)
from ml_connector_pipelines.sandbox.host import SandboxContext, SandboxServer

SYSTEM = "httptest"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PAGE_ITEMS = [f"item-{n}" for n in range(8)]


class HttpTestSimulator:
    """Answers exactly what a test scripts, and records what reached it."""

    name = SYSTEM

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.reset()

    def reset(self) -> None:
        # Each scripted entry answers one request to /scripted: status, headers, json|text, hang.
        self.script: list[dict[str, Any]] = []
        self.hits: dict[str, int] = {}
        self.items: list[dict[str, Any]] = []
        self.valid_tokens = {"good-token"}
        self.in_flight = 0
        self.max_in_flight = 0

    def _hit(self, route: str) -> None:
        self.hits[route] = self.hits.get(route, 0) + 1

    async def scripted(self, request: Request) -> Response:
        self._hit("scripted")
        if not self.script:
            return JSONResponse({"ok": True})
        answer = self.script.pop(0)
        if answer.get("hang"):
            await asyncio.sleep(answer["hang"])
        status, headers = answer.get("status", 200), answer.get("headers")
        if "text" in answer:
            return PlainTextResponse(answer["text"], status_code=status, headers=headers)
        return JSONResponse(answer.get("json", {}), status_code=status, headers=headers)

    async def create_item(self, request: Request) -> Response:
        self._hit("items")
        self.items.append(await request.json())
        return JSONResponse({"id": len(self.items)}, status_code=201)

    async def protected(self, request: Request) -> Response:
        self._hit("protected")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.valid_tokens:
            return JSONResponse(
                {"error": "invalid_token", "error_description": "token revoked"}, status_code=401
            )
        return JSONResponse({"ok": True})

    async def pages(self, request: Request) -> Response:
        start = int(request.query_params.get("cursor", "0"))
        end = start + 3
        return JSONResponse({"data": PAGE_ITEMS[start:end], "next": end if end < len(PAGE_ITEMS) else None})

    async def slow(self, request: Request) -> Response:
        self.in_flight += 1  # handlers run on one event loop, so no lock is needed
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1
        return JSONResponse({"n": int(request.query_params["n"])})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/scripted", self.scripted, methods=ALL_METHODS),
            Route("/items", self.create_item, methods=["POST"]),
            Route("/protected", self.protected, methods=ALL_METHODS),
            Route("/pages", self.pages),
            Route("/slow", self.slow),
        ]

    def control_routes(self) -> list[BaseRoute]:
        return []

    def state(self) -> dict[str, Any]:
        return {"hits": self.hits, "items": self.items}

    def credentials(self) -> dict[str, Any]:
        return {"token": "good-token"}


class FakeTime:
    """A clock that only moves when the client sleeps: tests run instantly and see every delay."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TokenAuth:
    """An AuthHook that hands out a list of tokens in turn, one more per re-authentication."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.reauthentications = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[self.reauthentications]}"}

    def reauthenticate(self) -> None:
        self.reauthentications += 1


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(simulators=[HttpTestSimulator]) as running:
        yield running


@pytest.fixture
def sim(server: SandboxServer) -> HttpTestSimulator:
    server.set_faults("none")
    simulator = server.simulator(SYSTEM)
    simulator.reset()
    return simulator


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(
    server: SandboxServer, sim: HttpTestSimulator, fake_time: FakeTime
) -> Iterator[Callable[..., HttpClient]]:
    clients: list[HttpClient] = []

    def make(base_url: str | None = None, **kw: Any) -> HttpClient:
        # A fresh credential id per client keeps the process-wide token buckets apart between tests.
        kw.setdefault("credential_id", uuid.uuid4().hex)
        client = HttpClient(SYSTEM, base_url or f"{server.url}/{SYSTEM}", **kw)
        client.sleep, client.clock = fake_time.sleep, fake_time.clock
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --- The target's clock ---------------------------------------------------------------------------


def test_server_now_follows_the_latest_date_header_not_our_clock(make_client, sim) -> None:
    client = make_client()
    assert client.server_now() is None  # nothing answered yet
    client.get("/scripted")  # dated by the sandbox host, with the real clock
    assert abs(client.server_now() - datetime.now(UTC)) < timedelta(seconds=5)
    # A server whose clock is years behind ours, answering an error: its time is what counts.
    skewed = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    sim.script = [{"status": 404, "headers": {"Date": format_datetime(skewed, usegmt=True)}}]
    with pytest.raises(TargetRejected):
        client.get("/scripted")
    assert skewed <= client.server_now() < skewed + timedelta(seconds=5)


# --- Retry-After and backoff ---------------------------------------------------------------------


def test_a_cookie_a_target_sets_is_never_sent_back() -> None:
    seen: list[str | None] = []

    def target(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={}, headers={"set-cookie": "AWSALB=sticky; Path=/"})

    with HttpClient(SYSTEM, "http://target.test", transport=httpx.MockTransport(target)) as client:
        client.get("/a")
        client.get("/b")
    assert seen == [None, None]


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after("0", now) == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_429_with_retry_after_seconds_waits_that_long(make_client, sim, fake_time) -> None:
    sim.script = [{"status": 429, "headers": {"Retry-After": "2"}}]
    client = make_client()
    assert client.get("/scripted").json() == {"ok": True}
    assert fake_time.sleeps == [2.0]
    assert client.requests_made == 2 == sim.hits["scripted"]


def test_429_with_retry_after_http_date(make_client, sim, fake_time) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    sim.script = [{"status": 429, "headers": {"Retry-After": when}}]
    make_client(retry=RetryPolicy(max_delay=60)).get("/scripted")
    # The date has one-second resolution and the clock moved on a little since it was written.
    assert len(fake_time.sleeps) == 1 and 25 < fake_time.sleeps[0] <= 30
    # Honoured above max_delay too: the server said when; calling back earlier only earns another 429.
    sim.script = [{"status": 429, "headers": {"Retry-After": when}}]
    make_client(retry=RetryPolicy(max_delay=5)).get("/scripted")
    assert len(fake_time.sleeps) == 2 and 25 < fake_time.sleeps[1] <= 30


def test_retry_after_beyond_the_retry_budget_gives_up_without_calling_early(
    make_client, sim, fake_time
) -> None:
    sim.script = [{"status": 429, "headers": {"Retry-After": "600"}}] * 2
    with pytest.raises(RetryExhausted):
        make_client(retry=RetryPolicy(max_total=120)).get("/scripted")
    assert fake_time.sleeps == [] and sim.hits["scripted"] == 1


def test_retry_after_zero_waits_min_delay_and_counts_the_attempt(make_client, sim, fake_time) -> None:
    sim.script = [{"status": 429, "headers": {"Retry-After": "0"}}] * 5
    client = make_client(retry=RetryPolicy(max_attempts=3))
    with pytest.raises(RetryExhausted) as raised:
        client.get("/scripted")
    assert raised.value.status == 429
    assert fake_time.sleeps == [RetryPolicy().min_delay] * 2
    assert client.requests_made == 3 == sim.hits["scripted"]


def test_429_without_header_backs_off_exponentially_with_full_jitter(make_client, sim, fake_time) -> None:
    sim.script = [{"status": 429}] * 5
    policy = RetryPolicy(base_delay=1.0, max_delay=100)
    client = make_client(retry=policy)
    client.get("/scripted")
    assert len(fake_time.sleeps) == 5
    for attempt, delay in enumerate(fake_time.sleeps, start=1):
        assert policy.min_delay <= delay <= policy.base_delay * 2 ** (attempt - 1)


def test_storm_profile_every_get_succeeds_and_each_429_costs_one_backoff(
    server, make_client, sim, fake_time
) -> None:
    server.set_faults("storm", seed=1, systems=[SYSTEM])
    client = make_client()
    for _ in range(30):
        assert client.get("/scripted").status_code == 200
    injected = server.ctx.faults.injected
    assert injected.get("rate_limit", 0) > 0 and injected.get("rate_limit_no_header", 0) > 0
    throttled = sum(injected.values())
    assert client.requests_made == 30 + throttled
    assert sim.hits["scripted"] == 30  # the host answers injected 429s before the simulator
    assert len(fake_time.sleeps) == throttled
    assert min(fake_time.sleeps) >= RetryPolicy().min_delay


def test_storm_profile_posts_are_retried_on_429_and_created_exactly_once(server, make_client, sim) -> None:
    server.set_faults("storm", seed=2, systems=[SYSTEM])
    client = make_client()
    for n in range(20):
        client.post("/items", json={"n": n})
    assert sum(server.ctx.faults.injected.values()) > 0
    assert [item["n"] for item in server.get_state(SYSTEM)["items"]] == list(range(20))


def test_flaky_profile_gets_survive_every_fault_kind(server, make_client, sim) -> None:
    server.set_faults("flaky", seed=3, systems=[SYSTEM])
    client = make_client()
    for _ in range(80):
        assert client.get("/scripted").status_code == 200
    injected = server.ctx.faults.injected
    assert {"rate_limit_http_date", "server_error", "commit_then_timeout"} <= set(injected)
    assert client.requests_made == 80 + sum(injected.values())


# --- 5xx, timeouts and idempotency ---------------------------------------------------------------


def test_get_is_retried_on_5xx(make_client, sim) -> None:
    sim.script = [{"status": 503}, {"status": 500}, {"status": 502}]
    client = make_client()
    assert client.get("/scripted").json() == {"ok": True}
    assert sim.hits["scripted"] == 4


def test_post_5xx_raises_outcome_unknown_without_retrying(make_client, sim) -> None:
    sim.script = [{"status": 500, "json": {"message": "database hiccup"}}]
    with pytest.raises(OutcomeUnknown) as raised:
        make_client().post("/scripted", json={})
    assert (raised.value.status, raised.value.target_message) == (500, "database hiccup")
    assert sim.hits["scripted"] == 1


def test_post_commit_then_504_is_outcome_unknown_and_the_server_did_commit(server, make_client, sim) -> None:
    server.ctx.faults.configure("none", seed=1, systems=[SYSTEM], commit_then_timeout=1.0)
    client = make_client()
    with pytest.raises(OutcomeUnknown) as raised:
        client.post("/items", json={"supplier": "S1"})
    assert raised.value.status == 504
    assert client.requests_made == 1
    assert server.get_state(SYSTEM)["items"] == [{"supplier": "S1"}]


def test_post_read_timeout_is_outcome_unknown_and_the_server_did_commit(server, make_client, sim) -> None:
    server.ctx.faults.configure(
        "none", seed=1, systems=[SYSTEM], commit_then_timeout=1.0, timeout_hang_seconds=2.0
    )
    client = make_client(timeout=0.3)
    with pytest.raises(OutcomeUnknown) as raised:
        client.post("/items", json={"supplier": "S2"})
    assert raised.value.status is None
    assert client.requests_made == 1
    assert server.get_state(SYSTEM)["items"] == [{"supplier": "S2"}]


def test_get_read_timeout_is_retried(make_client, sim) -> None:
    sim.script = [{"hang": 1.0}]
    client = make_client(timeout=0.3)
    assert client.get("/scripted").json() == {"ok": True}
    assert client.requests_made == 2


def test_post_marked_idempotent_is_retried_on_5xx(make_client, sim) -> None:
    sim.script = [{"status": 502}]
    client = make_client()
    assert client.post("/scripted", json={}, idempotent=True).status_code == 200
    assert sim.hits["scripted"] == 2


def test_connection_errors_are_retried_even_for_post_then_exhausted(make_client, fake_time) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=3))
    with pytest.raises(RetryExhausted) as raised:
        client.post("/items", json={})
    assert raised.value.status is None
    assert "ConnectError" in raised.value.target_message
    assert client.requests_made == 3
    assert len(fake_time.sleeps) == 2


def test_total_retry_time_is_capped(make_client, sim, fake_time) -> None:
    sim.script = [{"status": 429, "headers": {"Retry-After": "1"}}] * 50
    client = make_client(retry=RetryPolicy(max_attempts=50, max_total=3.5))
    with pytest.raises(RetryExhausted) as raised:
        client.get("/scripted")
    # Three 1 s waits fit in 3.5 s; a fourth would not, so the client gives up instead of sleeping.
    assert fake_time.sleeps == [1.0, 1.0, 1.0]
    assert client.requests_made == 4
    assert "4 attempts" in str(raised.value)


# --- Authentication ------------------------------------------------------------------------------


def test_401_reauthenticates_once_then_succeeds(make_client, sim) -> None:
    auth = TokenAuth("revoked-token", "good-token")
    client = make_client(auth=auth)
    assert client.post("/protected", json={}).json() == {"ok": True}
    assert auth.reauthentications == 1
    assert sim.hits["protected"] == 2


def test_401_after_reauthentication_raises_authentication_failed(make_client, sim) -> None:
    auth = TokenAuth("revoked-token", "also-revoked", "never-used")
    with pytest.raises(AuthenticationFailed) as raised:
        make_client(auth=auth).get("/protected")
    assert raised.value.target_message == "token revoked"
    assert auth.reauthentications == 1
    assert sim.hits["protected"] == 2


def test_401_without_auth_hook_fails_at_once(make_client, sim) -> None:
    with pytest.raises(AuthenticationFailed):
        make_client().get("/protected")
    assert sim.hits["protected"] == 1


# --- Rejections ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"json": {"error": {"type": "invalid_request_error", "message": "No such customer"}}},
            "No such customer",
        ),
        (
            422,
            {"json": {"errors": [{"code": "NOT_VALID", "message": "IBAN invalid", "path": "iban"}]}},
            "IBAN invalid",
        ),
        (
            400,
            {"json": {"error": "invalid_grant", "error_description": "Bad credentials"}},
            "Bad credentials",
        ),
        (
            400,
            {"json": {"errorMessage": "WCU0102 Customer does not exist   "}},
            "WCU0102 Customer does not exist",
        ),
        (400, {"json": {"@type": "ServerReturnedNOK", "Message": "Item is invalid"}}, "Item is invalid"),
        (404, {"json": {"message": "Partner not found"}}, "Partner not found"),
        (403, {"text": "x" * 500}, "x" * 300),
    ],
)
def test_other_4xx_raise_target_rejected_with_the_targets_message(
    make_client, sim, status, body, expected
) -> None:
    sim.script = [{"status": status, **body}]
    with pytest.raises(TargetRejected) as raised:
        make_client().post("/scripted", json={})
    assert (raised.value.status, raised.value.target_message) == (status, expected)
    assert sim.hits["scripted"] == 1


def test_409_is_retried_only_when_the_request_is_idempotent(make_client, sim) -> None:
    sim.script = [{"status": 409, "json": {"error": {"message": "key in use"}}}]
    assert make_client().post("/scripted", json={}, idempotent=True).status_code == 200
    sim.script = [{"status": 409, "json": {"errors": [{"message": "duplicate profile"}]}}]
    with pytest.raises(TargetRejected, match="duplicate profile"):
        make_client().post("/scripted", json={})


# --- raise_for_status=False: the final response, unraised (for SDK adapters) ----------------------


def test_raw_response_keeps_retries_and_returns_the_final_status(make_client, sim, fake_time) -> None:
    sim.script = [{"status": 429}, {"status": 503}, {"status": 404, "json": {"error": {"message": "gone"}}}]
    response = make_client().get("/scripted", raise_for_status=False)
    assert (response.status_code, response.json()) == (404, {"error": {"message": "gone"}})
    assert sim.hits["scripted"] == 3  # the 429 and the 503 were retried as usual
    assert len(fake_time.sleeps) == 2


def test_raw_response_after_retries_run_out_is_the_last_one(make_client, sim) -> None:
    sim.script = [{"status": 429}] * 2
    client = make_client(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    assert client.get("/scripted", raise_for_status=False).status_code == 429
    assert sim.hits["scripted"] == 2


def test_raw_response_for_unsafe_5xx_and_401_is_not_retried(make_client, sim) -> None:
    sim.script = [{"status": 500}]
    assert make_client().post("/scripted", json={}, raise_for_status=False).status_code == 500
    assert make_client().get("/protected", raise_for_status=False).status_code == 401
    assert (sim.hits["scripted"], sim.hits["protected"]) == (1, 1)


# --- Rate limiting and concurrency ---------------------------------------------------------------


def test_token_bucket_refills_up_to_its_burst() -> None:
    bucket = TokenBucket(RateLimit(per_second=2, burst=2))
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    # Ten idle seconds refill to the burst of 2, not to 20.
    assert [bucket.reserve(10.5) for _ in range(3)] == [0.0, 0.0, 0.5]


def test_rate_limit_paces_requests(make_client, sim, fake_time) -> None:
    client = make_client(rate_limit=RateLimit(per_second=2, burst=2))
    for _ in range(6):
        client.get("/scripted")
    assert fake_time.sleeps == [0.5] * 4  # two from the burst, then one every half second
    assert sim.hits["scripted"] == 6


def test_rate_limit_is_shared_per_system_and_credential(make_client, fake_time) -> None:
    limit = RateLimit(per_second=1, burst=2)
    first = make_client(credential_id="tenant-a", rate_limit=limit)
    second = make_client(credential_id="tenant-a", rate_limit=limit)
    other = make_client(credential_id="tenant-b", rate_limit=limit)
    first.get("/scripted")
    first.get("/scripted")
    other.get("/scripted")
    assert fake_time.sleeps == []
    second.get("/scripted")
    assert fake_time.sleeps == [1.0]


def test_client_never_has_more_than_max_concurrency_requests_in_flight(make_client, sim) -> None:
    client = make_client(max_concurrency=2)
    results = run_bounded(
        lambda n: client.get("/slow", params={"n": n}).json()["n"], range(10), max_workers=8
    )
    assert results == list(range(10))
    assert sim.max_in_flight == 2


def test_run_bounded_limits_workers_and_raises_the_first_error(make_client, sim) -> None:
    client = make_client(max_concurrency=10)
    run_bounded(lambda n: client.get("/slow", params={"n": n}), range(9), max_workers=3)
    assert sim.max_in_flight == 3

    def fail_on_three(n: int) -> int:
        if n == 3:
            raise ValueError("bad record")
        return n

    with pytest.raises(ValueError, match="bad record"):
        run_bounded(fail_on_three, range(6), max_workers=2)


# --- Pagination ----------------------------------------------------------------------------------


def test_paginate_follows_the_cursor_to_the_end(make_client) -> None:
    client = make_client()

    def fetch_page(cursor: int | None) -> tuple[list[str], int | None]:
        body = client.get("/pages", params={"cursor": cursor or 0}).json()
        return body["data"], body["next"]

    assert list(paginate(fetch_page)) == PAGE_ITEMS
    assert client.requests_made == 3
    assert list(paginate(fetch_page, start=6)) == PAGE_ITEMS[6:]


def test_paginate_stops_a_cursor_that_does_not_advance() -> None:
    with pytest.raises(ConnectorError, match="did not advance"):
        list(paginate(lambda cursor: (["x"], "same"), start="same"))


# --- Logging -------------------------------------------------------------------------------------


def test_every_request_is_logged_without_secrets(make_client, sim, caplog) -> None:
    canary = "canary-" + uuid.uuid4().hex
    sim.valid_tokens = {canary}
    sim.script = [
        {"status": 429, "headers": {"Retry-After": "0"}},
        {"status": 400, "json": {"message": "bad"}},
    ]
    caplog.set_level(logging.DEBUG)
    client = make_client(auth=TokenAuth(canary), headers={"X-Api-Key": canary})
    client.get("/protected", params={"api_key": canary})
    with pytest.raises(TargetRejected) as raised:
        client.post(
            "/scripted", params={"token": canary}, json={"secret": canary}, headers={"X-Other": canary}
        )

    assert canary not in caplog.text
    assert canary not in str(raised.value)
    lines = [(r.method, r.path, r.status, r.attempt) for r in caplog.records if r.name == "ml_connector.http"]
    assert lines == [
        ("GET", f"/{SYSTEM}/protected", 200, 1),
        ("POST", f"/{SYSTEM}/scripted", 429, 1),
        ("POST", f"/{SYSTEM}/scripted", 400, 2),
    ]
    assert f"{SYSTEM} GET /{SYSTEM}/protected -> 200 in " in caplog.text


# --- Hooks: what each system's client tells the HTTP layer ---------------------------------------


def test_a_system_that_answers_503_for_over_the_limit_gets_its_posts_retried(make_client, sim) -> None:
    def over_the_limit(status: int, idempotent: bool) -> StatusClass:
        return StatusClass.THROTTLED if status == 503 else default_status_class(status, idempotent)

    sim.script = [{"status": 503, "json": {"message": "over the limit"}}]
    with pytest.raises(OutcomeUnknown):  # by default a 503 on a POST may have executed
        make_client().post("/scripted", json={})
    sim.script = [{"status": 503, "json": {"message": "over the limit"}}]
    throttled = make_client(hooks=ErrorHooks(classify=over_the_limit))
    assert throttled.post("/scripted", json={}).status_code == 200
    assert sim.hits["scripted"] == 3


def test_the_clients_message_hook_reads_its_error_shape(make_client, sim) -> None:
    sim.script = [{"status": 422, "json": {"fault": {"text": "PO number taken"}}}]
    hooks = ErrorHooks(message=lambda response: response.json()["fault"]["text"])
    with pytest.raises(TargetRejected) as raised:
        make_client(hooks=hooks).post("/scripted", json={})
    assert raised.value.target_message == "PO number taken"


def test_core_http_names_no_vendor() -> None:
    source = Path(http_module.__file__).read_text().lower()
    vendors = ("stripe", "wise", "infor", "m3", "syteline", "mongoose", "procurify", "cleo", "cin7")
    assert [v for v in vendors if re.search(rf"\b{v}\b", source)] == []


# --- A request's time is bounded by its retry budget ---------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_hanging_target_costs_at_most_the_retry_budget(server, sim, method) -> None:
    # The gateway holds the request far longer than the budget (and than the client timeout allows).
    sim.script = [{"hang": 6} for _ in range(3)]
    budget = RetryPolicy(max_total=2.0)
    started = time.monotonic()
    with HttpClient(SYSTEM, f"{server.url}/{SYSTEM}", timeout=30, retry=budget) as client:
        with pytest.raises((OutcomeUnknown, RetryExhausted)) as raised:
            client.request(method, "/scripted")
    assert time.monotonic() - started < 5 * budget.max_total  # a generous ceiling, from config
    assert isinstance(raised.value, OutcomeUnknown if method == "POST" else RetryExhausted)


# --- TLS -----------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_clients_share_one_tls_context_and_still_refuse_an_unsigned_certificate(tmp_path: Path) -> None:
    import http.server
    import ssl
    import threading

    cert, key = _self_signed(tmp_path)
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        with (
            HttpClient(SYSTEM, url, retry=RetryPolicy(max_attempts=1)) as first,
            HttpClient(SYSTEM, url) as second,
        ):
            with pytest.raises(RetryExhausted, match="ConnectError"):
                first.get("/")
            # One context for every client and thread: its CAs are loaded once per process.
            [pool] = first._client._transport._pools.values()
            assert pool._pool._ssl_context is second._client._transport._verify is http_module._tls_context()
    finally:
        server.shutdown()
        server.server_close()


def test_each_worker_thread_has_its_own_connections_and_an_ended_thread_gives_them_back(
    make_client, sim
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = make_client(max_concurrency=4)
    transport = client._client._transport

    def fetch(n: int) -> int:
        return client.get("/slow", params={"n": n}).json()["n"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(fetch, range(8))) == list(range(8))
        first_pools = list(transport._pools.values())
    # Four threads, four pools, each with its one kept-alive connection; and the requests did overlap.
    assert len(first_pools) == 4 and sim.max_in_flight == 4
    assert all(len(p._pool.connections) == 1 for p in first_pools)
    # The next new thread closes the pools of the ended ones: no connection outlives its thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(fetch, 9).result() == 9
    assert all(p._pool.connections == [] for p in first_pools)
    assert len(transport._pools) == 1
    client.close()
    assert transport._pools == {}
