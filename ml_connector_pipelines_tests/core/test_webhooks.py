"""The webhook receiver served by uvicorn over real HTTP, writing a real inbox (SQLite and Postgres)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn

from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.webhooks import (
    InvalidWebhook,
    LookupWouldBlock,
    UnknownTenant,
    VerifiedEvent,
    WebhookServer,
    cached_per_tenant,
    create_webhook_app,
)

SECRETS = {"acme": b"acme-secret", "globex": b"globex-secret"}
MAX_BODY = 2_000


class HmacVerifier:
    """A minimal source: HMAC-SHA256 over the body in X-Test-Signature, event id in the JSON."""

    def __call__(self, tenant: str, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        secret = SECRETS.get(tenant)
        if secret is None:
            raise UnknownTenant(f"unknown tenant {tenant}")
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-test-signature", ""), expected):
            raise InvalidWebhook("bad signature")
        try:
            event = json.loads(body)
        except ValueError as exc:
            raise InvalidWebhook("body is not JSON") from exc
        return VerifiedEvent(event_id=event["id"], is_test=headers.get("x-test-notification") == "true")


def signed(body: bytes, tenant: str = "acme") -> dict[str, str]:
    return {"X-Test-Signature": hmac.new(SECRETS[tenant], body, hashlib.sha256).hexdigest()}


@pytest.fixture
def inbox(state_db_url: str) -> Inbox:
    store = StateStore(state_db_url)
    store.migrate()
    return Inbox(store)


@pytest.fixture
def client(inbox: Inbox) -> Iterator[httpx.Client]:
    app = create_webhook_app(inbox, {"test": HmacVerifier()}, max_body_bytes=MAX_BODY)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "webhook server did not start"
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as http:
        yield http
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def stored(inbox: Inbox, tenant: str | None = None) -> list[tuple[str, str]]:
    return sorted((event.event_id, event.payload) for event in inbox.pending("test", tenant))


def test_verified_event_is_stored_once(client: httpx.Client, inbox: Inbox) -> None:
    body = json.dumps({"id": "evt_1", "amount": 10}).encode()
    first = client.post("/webhooks/test/acme", content=body, headers=signed(body))
    assert first.status_code == 200
    assert first.json() == {"status": "stored", "event_id": "evt_1"}
    # A redelivery is acknowledged (so the sender stops retrying) but not stored again.
    again = client.post("/webhooks/test/acme", content=body, headers=signed(body))
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert stored(inbox) == [("evt_1", body.decode())]
    # The tenant comes from the URL and is stored with the event.
    other = json.dumps({"id": "evt_g1"}).encode()
    assert (
        client.post("/webhooks/test/globex", content=other, headers=signed(other, "globex")).status_code
        == 200
    )
    assert stored(inbox, "globex") == [("evt_g1", other.decode())]
    assert stored(inbox, "acme") == [("evt_1", body.decode())]


def test_raw_body_is_stored_byte_for_byte(client: httpx.Client, inbox: Inbox) -> None:
    # Whitespace and key order kept: the stored payload is exactly what was signed.
    body = '{ "id":"evt_2",  "name": "Müller"}'.encode()
    assert client.post("/webhooks/test/acme", content=body, headers=signed(body)).status_code == 200
    assert stored(inbox) == [("evt_2", body.decode())]


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/webhooks/test/acme", {"X-Test-Signature": "0" * 64}, b'{"id":"evt_3"}', 400),
        ("/webhooks/test/acme", {}, b'{"id":"evt_3"}', 400),
        # Signed with the other tenant's secret.
        ("/webhooks/test/acme", signed(b'{"id":"evt_3"}', "globex"), b'{"id":"evt_3"}', 400),
        ("/webhooks/test/acme", signed(b'{"id": evt_3'), b'{"id": evt_3', 400),
        ("/webhooks/test/acme", signed(b'{"id":"\xff"}'), b'{"id":"\xff"}', 400),
        ("/webhooks/test/initech", signed(b'{"id":"evt_3"}'), b'{"id":"evt_3"}', 404),
        ("/webhooks/stripe/acme", signed(b'{"id":"evt_3"}'), b'{"id":"evt_3"}', 404),
    ],
    ids=[
        "bad-signature",
        "no-signature",
        "other-tenant-key",
        "malformed-json",
        "not-utf8",
        "tenant",
        "source",
    ],
)
def test_rejections_store_nothing(
    client: httpx.Client, inbox: Inbox, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == status
    assert "error" in response.json()
    assert stored(inbox) == []


def test_oversized_bodies_are_refused(client: httpx.Client, inbox: Inbox) -> None:
    body = json.dumps({"id": "evt_big", "pad": "x" * MAX_BODY}).encode()
    assert client.post("/webhooks/test/acme", content=body, headers=signed(body)).status_code == 413

    # Chunked, with no Content-Length to trust: the cap is enforced while reading.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    response = client.post("/webhooks/test/acme", content=chunks(), headers=signed(body))
    assert response.status_code == 413
    assert stored(inbox) == []
    # Exactly at the limit is fine.
    at_limit = json.dumps({"id": "evt_ok", "pad": ""}).encode()
    at_limit = at_limit.replace(b'""', b'"' + b"y" * (MAX_BODY - len(at_limit)) + b'"')
    assert len(at_limit) == MAX_BODY
    assert client.post("/webhooks/test/acme", content=at_limit, headers=signed(at_limit)).status_code == 200
    assert [event_id for event_id, _ in stored(inbox)] == ["evt_ok"]


def test_test_notifications_are_acknowledged_not_stored(client: httpx.Client, inbox: Inbox) -> None:
    body = b'{"id":"evt_test"}'
    response = client.post(
        "/webhooks/test/acme", content=body, headers={**signed(body), "X-Test-Notification": "true"}
    )
    assert response.status_code == 200
    assert stored(inbox) == []


def test_health_and_methods(client: httpx.Client) -> None:
    health = client.get("/webhooks/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "sources": ["test"], "database": "ok"}
    assert client.get("/webhooks/test/acme").status_code == 405
    assert (client.get("/healthz").status_code, client.get("/healthz").text) == (200, "ok")


def test_concurrent_events_are_all_stored_once(client: httpx.Client, inbox: Inbox) -> None:
    # Many requests at once share inbox transactions (group commit); each answer still tells
    # stored or duplicate correctly, and every event is there afterwards.
    bodies = [json.dumps({"id": f"evt_{n % 40}"}).encode() for n in range(80)]

    def send(body: bytes) -> str:
        return client.post("/webhooks/test/acme", content=body, headers=signed(body)).json()["status"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, bodies))
    assert sorted(answers).count("stored") == 40 and answers.count("duplicate") == 40
    assert [event_id for event_id, _ in stored(inbox)] == sorted(f"evt_{n}" for n in range(40))


def test_a_rotated_secret_takes_effect_within_the_cache_ttl(inbox: Inbox) -> None:
    secrets = {"acme": b"old-secret"}

    class RotatingVerifier(HmacVerifier):
        def __init__(self) -> None:
            self.secret_for = cached_per_tenant(lambda tenant: secrets[tenant], ttl_seconds=0.5)

        def __call__(self, tenant: str, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
            expected = hmac.new(self.secret_for(tenant), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(headers.get("x-test-signature", ""), expected):
                raise InvalidWebhook("bad signature")
            return VerifiedEvent(event_id=json.loads(body)["id"])

    def post(http: httpx.Client, event_id: str, secret: bytes) -> int:
        body = json.dumps({"id": event_id}).encode()
        signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return http.post(
            "/webhooks/test/acme", content=body, headers={"X-Test-Signature": signature}
        ).status_code

    with (
        WebhookServer(create_webhook_app(inbox, {"test": RotatingVerifier()})) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert post(http, "evt_1", b"old-secret") == 200
        secrets["acme"] = b"new-secret"
        time.sleep(0.6)  # past the TTL: the new secret is read, the old one no longer verifies
        assert post(http, "evt_2", b"new-secret") == 200
        assert post(http, "evt_3", b"old-secret") == 400
    assert [event_id for event_id, _ in stored(inbox)] == ["evt_1", "evt_2"]


def test_cached_lookups_never_read_the_vault_in_the_receivers_cache_only_mode() -> None:
    from ml_connector_pipelines.core.webhooks import _cache_only

    reads: list[str] = []
    lookup = cached_per_tenant(lambda tenant: reads.append(tenant) or f"secret-{tenant}")

    with pytest.raises(LookupWouldBlock), _cache_only():  # cold: the receiver runs it in a thread
        lookup("acme")
    assert reads == []
    assert lookup("acme") == "secret-acme"  # outside that mode it reads, and caches
    with _cache_only():
        assert lookup("acme") == "secret-acme"  # warm: answered from the cache
    assert reads == ["acme"]

    # Any other caller reads as needed, even one with an event loop running (a CLI, a test, a UI
    # driver): only the receiver asks for cache-only answers.
    async def on_some_loop() -> str:
        return lookup("globex")

    assert asyncio.run(on_some_loop()) == "secret-globex"
    assert reads == ["acme", "globex"]


def test_the_receiver_verifies_on_the_loop_once_credentials_are_cached(inbox: Inbox) -> None:
    reads: list[bool] = []  # per vault read: whether it ran on an event loop

    def read_secret(tenant: str) -> bytes:
        try:
            asyncio.get_running_loop()
            reads.append(True)
        except RuntimeError:
            reads.append(False)
        return SECRETS[tenant]

    class CachedVerifier(HmacVerifier):
        secret_for = staticmethod(cached_per_tenant(read_secret))

        def __call__(self, tenant: str, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
            expected = hmac.new(self.secret_for(tenant), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(headers.get("x-test-signature", ""), expected):
                raise InvalidWebhook("bad signature")
            return VerifiedEvent(event_id=json.loads(body)["id"])

    bodies = [json.dumps({"id": f"evt_{n}"}).encode() for n in range(20)]
    with (
        WebhookServer(create_webhook_app(inbox, {"test": CachedVerifier()})) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        answers = [
            http.post("/webhooks/test/acme", content=body, headers=signed(body)).json()["status"]
            for body in bodies
        ]
    assert answers == ["stored"] * 20
    assert reads == [False]  # one read, in a worker thread; the other 19 from the cache on the loop
    assert [event_id for event_id, _ in stored(inbox)] == sorted(f"evt_{n}" for n in range(20))


def test_a_process_serving_only_the_receiver_freezes_its_startup_heap(tmp_path: Path) -> None:
    # A full collection over the imported heap stalled every request ~200 ms (the p99 of `make
    # bench`); `webhooks serve` asks the app to gc.freeze() it at startup. In a child process, as
    # freezing is process-wide: a frozen heap in the test process would never be collected.
    script = f"""
import gc, httpx
from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.webhooks import WebhookServer, create_webhook_app
store = StateStore("sqlite:///{tmp_path}/inbox.db")
store.migrate()
for freeze in (False, True):
    before = gc.get_freeze_count()
    with WebhookServer(create_webhook_app(Inbox(store), {{}}, freeze_heap=freeze)) as server:
        assert httpx.get(server.url + "/healthz").text == "ok"
        print(freeze, before, gc.get_freeze_count())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    unfrozen, frozen = (line.split() for line in result.stdout.splitlines())
    assert unfrozen == ["False", "0", "0"]  # the demo and tests share their process: left alone
    assert frozen[:2] == ["True", "0"] and int(frozen[2]) > 10_000  # the imports, not a handful
