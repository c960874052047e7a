"""Wise webhooks through the real receiver into a real SQLite inbox: Wise's own signed test vector,
and live deliveries from the Wise simulator."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn

from ml_connector_pipelines.core.inbox import Inbox
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.webhooks import create_webhook_app
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.wise.simulator import WiseSimulator
from ml_connector_pipelines.systems.wise.client import WiseClient
from ml_connector_pipelines.systems.wise.signature import (
    WISE_LIVE_PUBLIC_KEY_PEM,
    WISE_SANDBOX_PUBLIC_KEY_PEM,
    WiseWebhookVerifier,
)

VECTOR = json.loads(Path(__file__).with_name("wise-webhook-vector.json").read_text())
BODY: bytes = VECTOR["body"].encode("utf-8")
KEYS = {"acme": [WISE_SANDBOX_PUBLIC_KEY_PEM], "live-co": [WISE_LIVE_PUBLIC_KEY_PEM]}


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    return Inbox(store)


@pytest.fixture
def receiver(inbox: Inbox) -> Iterator[httpx.Client]:
    app = create_webhook_app(inbox, {"wise": WiseWebhookVerifier(lambda tenant: KEYS.get(tenant, []))})
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


def deliver(receiver: httpx.Client, tenant: str, body: bytes, delivery_id: str) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Signature-SHA256": VECTOR["signature_base64"],
        "X-Delivery-Id": delivery_id,
    }
    return receiver.post(f"/webhooks/wise/{tenant}", content=body, headers=headers)


def test_signed_wise_event_is_stored_once_across_redeliveries(receiver: httpx.Client, inbox: Inbox) -> None:
    first = deliver(receiver, "acme", BODY, "7d1c5f8e-0000-4000-8000-000000000001")
    retried = deliver(receiver, "acme", BODY, "7d1c5f8e-0000-4000-8000-000000000002")
    assert (first.status_code, first.json()["status"]) == (200, "stored")
    assert (retried.status_code, retried.json()["status"]) == (200, "duplicate")
    [event] = inbox.pending("wise", "acme")
    assert event.payload.encode("utf-8") == BODY
    assert event.event_id == first.json()["event_id"]


def test_tampered_or_wrong_key_or_unknown_tenant_stores_nothing(receiver: httpx.Client, inbox: Inbox) -> None:
    tampered = BODY.replace(b"00000000-0000-0000", b"00000000-0008-8000", 1)
    assert deliver(receiver, "acme", tampered, "d1").status_code == 400
    # The vector is signed by the sandbox key; a tenant on live keys must refuse it.
    assert deliver(receiver, "live-co", BODY, "d2").status_code == 400
    assert deliver(receiver, "nobody", BODY, "d3").status_code == 404
    assert inbox.pending("wise") == []


def test_simulator_events_reach_the_inbox(receiver: httpx.Client, inbox: Inbox) -> None:
    """Subscription -> transfer -> state change: the simulator's signed deliveries land once each."""
    with SandboxServer(simulators=[WiseSimulator]) as sandbox:
        KEYS["sim"] = [
            httpx.get(f"{sandbox.url}/_sandbox/credentials").json()["wise"]["webhook_public_key_pem"]
        ]
        try:
            with WiseClient(f"{sandbox.url}/wise", token="wise-sandbox-hooks") as wise:
                # Wise sends a test notification on create; the receiver must accept it (and not store it).
                wise.create_subscription(f"{receiver.base_url}/webhooks/wise/sim")
                assert inbox.pending("wise", "sim") == []
                payload = {
                    "profile": wise.business_profile_id(),
                    "currency": "GBP",
                    "type": "sort_code",
                    "accountHolderName": "Northwind Ltd",
                    "details": {"legalType": "BUSINESS", "sortCode": "404784", "accountNumber": "70872490"},
                }
                recipient = wise.create_recipient(payload)
                quote = wise.create_quote(
                    "GBP", "GBP", target_amount=Decimal("10.00"), target_account=recipient.id
                )
                transfer = wise.create_transfer(recipient.id, quote.id, str(uuid.uuid4()), "INV-1")
                # Wise's simulation call (wise.md §1) moves the transfer and emits the event.
                wise.http.get(f"/v1/simulation/transfers/{transfer.id}/processing")
                states = wait_for_states(
                    inbox, "sim", transfer.id, {"incoming_payment_waiting", "processing"}
                )
        finally:
            del KEYS["sim"]
    assert sorted(states) == ["incoming_payment_waiting", "processing"]


def wait_for_states(inbox: Inbox, tenant: str, transfer_id: int, expected: set[str]) -> list[str]:
    """The simulator may deliver after answering; wait (bounded) until the expected events are in."""
    deadline = time.monotonic() + 10
    while True:
        events = [json.loads(event.payload)["data"] for event in inbox.pending("wise", tenant)]
        states = [data["current_state"] for data in events if data["resource"]["id"] == transfer_id]
        if set(states) >= expected or time.monotonic() > deadline:
            return states
        time.sleep(0.05)
