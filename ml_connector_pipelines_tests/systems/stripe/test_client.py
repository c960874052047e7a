"""StripeGateway against the Stripe simulator over real HTTP, through the official SDK.

Every test uses its own `sk_test_*` key, which the simulator treats as an isolated account, so
tests share one server without seeing each other's objects.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from stripe import _util as stripe_util

from ml_connector_pipelines.core.errors import AuthenticationFailed, OutcomeUnknown, TargetRejected
from ml_connector_pipelines.integrations.stripe.mapping import (
    customer_params,
    idempotency_key,
    invoice_item_params,
    invoice_params,
    payment_from_event,
    refund_from_event,
    refunded_payment_intent,
)
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.stripe.simulator import StripeSimulator
from ml_connector_pipelines.systems.infor.models import ARInvoice, Customer
from ml_connector_pipelines.systems.stripe.client import StripeGateway

TENANT = "acme"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(simulators=[StripeSimulator]) as sandbox:
        yield sandbox


@pytest.fixture
def api_key() -> str:
    return f"sk_test_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def gateway(server: SandboxServer, api_key: str) -> Iterator[StripeGateway]:
    with StripeGateway(api_key, f"{server.url}/stripe") as client:
        yield client


def account_state(server: SandboxServer, api_key: str) -> dict[str, Any]:
    """What the simulated Stripe account holds, read through the sandbox, not through our client."""
    return server.get_state("stripe")["accounts"][api_key]


def objects(server: SandboxServer, api_key: str, kind: str) -> list[dict[str, Any]]:
    return account_state(server, api_key)[f"{kind}s"]


def set_faults(server: SandboxServer, **overrides: float) -> None:
    body = {"profile": "none", "systems": ["stripe"], "overrides": overrides}
    httpx.put(f"{server.url}/_sandbox/faults", json=body, timeout=10).raise_for_status()


def make_customer(customer_id: str = "C1001") -> Customer:
    return Customer(
        customer_id=customer_id,
        name="Acme GmbH",
        currency="EUR",
        email="ap@acme.example",
        country="DE",
        city="Berlin",
        modified_date=date(2026, 11, 2),
    )


def make_invoice(number: str = "INV-77") -> ARInvoice:
    return ARInvoice(
        division="100",
        customer_id="C1001",
        invoice_number=number,
        invoice_year=2026,
        invoice_date=date(2026, 11, 1),
        due_date=date(2030, 12, 1),
        currency="EUR",
        amount=Decimal("150.00"),
        open_amount=Decimal("120.50"),
        status="open",
        modified_date=date(2026, 11, 2),
    )


def key(source_id: str, action: str, content_hash: str = "h1") -> str:
    return idempotency_key(TENANT, "stripe_invoices", source_id, content_hash, action)


def push_invoice(gateway: StripeGateway, invoice: ARInvoice, stripe_customer_id: str) -> str:
    """The integration's invoice push: draft, our one item, finalize. Returns the invoice id."""
    source = invoice.invoice_key
    draft = gateway.create_invoice(invoice_params(invoice, stripe_customer_id), key(source, "create_invoice"))
    item = invoice_item_params(invoice, stripe_customer_id, draft.id)
    gateway.create_invoice_item(item, key(source, "create_invoice_item"))
    gateway.finalize_invoice(draft.id, key(source, "finalize_invoice"))
    return draft.id


def test_invoice_paid_and_partly_refunded_comes_back_as_ar_payments(
    server: SandboxServer, api_key: str, gateway: StripeGateway
) -> None:
    customer = gateway.create_customer(
        customer_params(make_customer(), TENANT), key("C1001", "create_customer")
    )
    invoice_id = push_invoice(gateway, make_invoice(), customer.id)

    held = gateway.retrieve_invoice(invoice_id)
    assert (held.status, held.amount_due, held.currency) == ("open", 12050, "eur")
    assert held.metadata["infor_invoice_key"] == "100/C1001/INV-77/2026"

    paid = httpx.post(f"{server.url}/_sandbox/stripe/invoices/{invoice_id}/pay", timeout=10)
    paid.raise_for_status()
    payment_intent = paid.json()["payment_intent"]["id"]
    refund = httpx.post(
        f"{server.url}/_sandbox/stripe/refunds",
        json={"payment_intent": payment_intent, "amount": 2050},
        timeout=10,
    )
    refund.raise_for_status()

    events = gateway.list_events(types=["invoice.paid", "refund.created"])
    assert [e.type for e in events] == ["invoice.paid", "refund.created"]  # oldest first

    payment = payment_from_event(events[0].payload)
    assert payment is not None
    assert (payment.invoice_number, payment.amount, payment.currency) == ("INV-77", Decimal("120.50"), "EUR")
    assert payment.reference == invoice_id

    refund_event = events[1].payload
    assert refunded_payment_intent(refund_event) == payment_intent
    refunded_invoice = gateway.find_invoice_for_payment_intent(payment_intent)
    assert refunded_invoice is not None and refunded_invoice.id == invoice_id
    reversal = refund_from_event(refund_event, refunded_invoice.model_dump())
    assert reversal is not None
    assert (reversal.invoice_number, reversal.amount) == ("INV-77", Decimal("-20.50"))
    assert reversal.reference == refund.json()["id"]

    # What the account holds, read from the simulator itself.
    [stored_invoice] = objects(server, api_key, "invoice")
    assert (stored_invoice["status"], stored_invoice["amount_paid"]) == ("paid", 12050)
    [stored_refund] = objects(server, api_key, "refund")
    assert (stored_refund["amount"], stored_refund["status"]) == (2050, "succeeded")
    assert gateway.retrieve_refund(stored_refund["id"]).amount == 2050
    charge = gateway.retrieve_charge(stored_refund["charge"])
    assert (charge.amount_refunded, charge.payment_intent) == (2050, payment_intent)
    assert gateway.retrieve_payment_intent(payment_intent).status == "succeeded"


def test_events_after_a_cursor_only(gateway: StripeGateway) -> None:
    gateway.create_customer({"name": "First"}, "k-first")
    cursor = gateway.list_events()[-1].created
    assert gateway.list_events(created_gt=cursor) == []
    assert [e.type for e in gateway.list_events(created_gt=cursor - 1)] == ["customer.created"]
    with pytest.raises(ValueError):
        gateway.list_events(types=[f"type.{n}" for n in range(21)])


def test_idempotent_retries_create_nothing_twice(
    server: SandboxServer, api_key: str, gateway: StripeGateway
) -> None:
    params = customer_params(make_customer(), TENANT)
    first = gateway.create_customer(params, key("C1001", "create_customer"))
    again = gateway.create_customer(params, key("C1001", "create_customer"))
    assert again.id == first.id

    invoice = make_invoice()
    first_invoice = push_invoice(gateway, invoice, first.id)
    assert push_invoice(gateway, invoice, first.id) == first_invoice

    assert len(objects(server, api_key, "customer")) == 1
    assert len(objects(server, api_key, "invoice")) == 1
    assert len(objects(server, api_key, "invoiceitem")) == 1
    assert gateway.retrieve_invoice(first_invoice).amount_due == 12050  # the item was not added twice

    # The same key with other parameters is Stripe's idempotency error: a rejected record, not a retry.
    with pytest.raises(TargetRejected) as caught:
        gateway.create_customer({**params, "name": "Someone else"}, key("C1001", "create_customer"))
    assert "same parameters" in caught.value.target_message


def test_a_write_whose_answer_was_lost_is_outcome_unknown_and_safe_to_repeat(
    server: SandboxServer, api_key: str
) -> None:
    params = customer_params(make_customer("C2002"), TENANT)
    # Stripe commits the customer, then the answer takes longer than the client waits, every time
    # (the SDK's own retries, with the same key, time out too).
    set_faults(server, commit_then_timeout=1.0, timeout_hang_seconds=1.5)
    try:
        with StripeGateway(api_key, f"{server.url}/stripe", timeout=0.5) as impatient:
            with pytest.raises(OutcomeUnknown):
                impatient.create_customer(params, key("C2002", "create_customer"))
    finally:
        set_faults(server)
    with StripeGateway(api_key, f"{server.url}/stripe") as gateway:
        # It did commit: the lookup the sync engine makes first finds it ...
        found = gateway.find_customer_by_external_id("C2002")
        assert found is not None
        # ... and a repeat with the same key replays it instead of creating a second customer.
        assert gateway.create_customer(params, key("C2002", "create_customer")).id == found.id
    assert len(objects(server, api_key, "customer")) == 1


def test_find_by_external_id_pages_through_the_list(server: SandboxServer, gateway: StripeGateway) -> None:
    # The oldest customer ends up on the second page of 100 (lists are newest first).
    wanted = gateway.create_customer(customer_params(make_customer("C0"), TENANT), "k-c0")
    for n in range(1, 101):
        gateway.create_customer({"name": f"filler {n}", "metadata": {"infor_customer_id": f"F{n}"}}, f"k-{n}")
    before = gateway.requests_made
    found = gateway.find_customer_by_external_id("C0")
    assert found is not None and found.id == wanted.id
    assert gateway.requests_made - before == 2
    assert gateway.find_customer_by_external_id("nobody") is None


def test_find_invoice_by_external_id_narrowed_by_customer(gateway: StripeGateway) -> None:
    customer = gateway.create_customer(customer_params(make_customer(), TENANT), "k-c")
    other = gateway.create_customer(customer_params(make_customer("C9"), TENANT), "k-other")
    first = push_invoice(gateway, make_invoice("INV-1"), customer.id)
    push_invoice(gateway, make_invoice("INV-2"), customer.id)
    found = gateway.find_invoice_by_external_id("100/C1001/INV-1/2026", customer.id)
    assert found is not None and found.id == first
    assert gateway.find_invoice_by_external_id("100/C1001/INV-1/2026", other.id) is None
    assert gateway.find_invoice_by_external_id("100/C1001/INV-3/2026") is None
    assert [item.amount for item in gateway.list_invoice_items(first)] == [12050]


def test_update_customer(gateway: StripeGateway) -> None:
    created = gateway.create_customer(customer_params(make_customer(), TENANT), "k-create")
    changed = make_customer().model_copy(update={"name": "Acme AG", "email": None})
    gateway.update_customer(created.id, customer_params(changed, TENANT, clear_missing=True), "k-update")
    held = gateway.retrieve_customer(created.id)
    assert (held.name, held.email) == ("Acme AG", None)
    assert held.metadata == {"infor_customer_id": "C1001", "infor_tenant": TENANT}


def test_invoice_transitions_and_rejections(
    server: SandboxServer, api_key: str, gateway: StripeGateway
) -> None:
    customer = gateway.create_customer({"name": "X"}, "k-x")
    voided = push_invoice(gateway, make_invoice("INV-V"), customer.id)
    assert gateway.void_invoice(voided, "k-void").status == "void"
    uncollectible = push_invoice(gateway, make_invoice("INV-U"), customer.id)
    assert gateway.mark_uncollectible(uncollectible, "k-unc").status == "uncollectible"

    # A transition Stripe forbids comes back as a rejected record carrying Stripe's message.
    with pytest.raises(TargetRejected) as caught:
        gateway.finalize_invoice(voided, "k-refinalize")
    assert caught.value.status == 400 and caught.value.target_message
    with pytest.raises(TargetRejected) as missing:
        gateway.retrieve_invoice("in_doesnotexist")
    assert missing.value.status == 404 and "in_doesnotexist" in missing.value.target_message

    statuses = {inv["id"]: inv["status"] for inv in objects(server, api_key, "invoice")}
    assert statuses == {voided: "void", uncollectible: "uncollectible"}


def test_draft_invoice_needs_an_explicit_pending_items_choice(gateway: StripeGateway) -> None:
    with pytest.raises(ValueError):
        gateway.create_invoice({"customer": "cus_1", "currency": "eur"}, "k")
    with pytest.raises(ValueError):
        gateway.create_customer({"name": "no key"}, "")


def test_ids_are_one_path_segment_and_params_never_pass_as_sdk_options(gateway: StripeGateway) -> None:
    customer = gateway.create_customer({"name": "Quoted"}, "k-quoted")
    # An id carrying a slash stays one segment: Stripe's 404 names it, no other object is read.
    with pytest.raises(TargetRejected) as caught:
        gateway.retrieve_customer(f"{customer.id}/../{customer.id}")
    assert caught.value.status == 404
    with pytest.raises(ValueError, match="headers"):
        gateway.create_customer({"name": "X", "headers": {"a": "b"}}, "k-clash")


def test_no_telemetry_or_host_platform_is_sent_to_stripe(gateway: StripeGateway) -> None:
    sent: list[httpx.Request] = []
    inner = gateway._http._client
    original = inner.send
    inner.send = lambda request, **kw: sent.append(request) or original(request, **kw)  # type: ignore[method-assign]
    for n in range(3):  # the SDK would report each request's metrics on the next one
        gateway.create_customer({"name": f"Quiet {n}"}, f"k-quiet-{n}")
    assert len(sent) == 3
    for request in sent:
        assert "x-stripe-client-telemetry" not in request.headers
        agent = json.loads(request.headers["x-stripe-client-user-agent"])
        assert "platform" not in agent and "telemetry_id" not in agent


def test_the_sdk_logs_its_request_lines_only_when_its_logger_shows_them(
    gateway: StripeGateway, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK's lines are built only when shown (client.py); shown, they are the SDK's own.
    formatted: list[dict[str, Any]] = []
    original = stripe_util.logfmt
    monkeypatch.setattr(stripe_util, "logfmt", lambda props: formatted.append(props) or original(props))
    with caplog.at_level(logging.WARNING, logger="stripe"):
        gateway.create_customer({"name": "Unlogged"}, "k-unlogged")
    assert formatted == [] and not [r for r in caplog.records if r.name == "stripe"]
    with caplog.at_level(logging.INFO, logger="stripe"):
        gateway.create_customer({"name": "Logged"}, "k-logged")
    lines = [r.getMessage() for r in caplog.records if r.name == "stripe"]
    assert any("message='Request to Stripe api'" in line and "/v1/customers" in line for line in lines)
    assert any("message='Stripe API response'" in line and "response_code=200" in line for line in lines)
    # INFO shown, DEBUG not: the request body (a DEBUG line) is never even formatted.
    assert not any("post_data" in props or "body" in props for props in formatted)


def test_bad_api_key_is_authentication_failed(server: SandboxServer, gateway: StripeGateway) -> None:
    gateway.ping()
    with StripeGateway("sk_live_not_a_test_key", f"{server.url}/stripe") as client:
        with pytest.raises(AuthenticationFailed) as caught:
            client.ping()
    assert caught.value.status == 401
    assert "sk_live_not_a_test_key" not in str(caught.value)


def test_rate_limited_requests_are_retried(
    server: SandboxServer, api_key: str, gateway: StripeGateway
) -> None:
    url = f"{server.url}/_sandbox/stripe/rate_limit"
    httpx.put(url, json={"per_second": 2}, timeout=10).raise_for_status()
    try:
        for n in range(5):
            gateway.create_customer({"name": f"burst {n}"}, f"k-burst-{n}")
    finally:
        httpx.put(url, json={"per_second": None}, timeout=10).raise_for_status()
    assert len(objects(server, api_key, "customer")) == 5
    assert gateway.requests_made > 5  # some calls were answered 429 and sent again


def test_every_sdk_request_goes_through_the_http_layer(
    server: SandboxServer, api_key: str, gateway: StripeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    # Half the writes commit and then lose their answer (504): our layer retries them, with the
    # same Idempotency-Key, and Stripe replays the committed customer.
    set_faults(server, commit_then_timeout=0.5)
    try:
        with caplog.at_level(logging.INFO, logger="ml_connector.http"):
            for n in range(6):
                gateway.create_customer({"name": f"layer {n}"}, f"k-layer-{n}")
    finally:
        set_faults(server)
    assert len(objects(server, api_key, "customer")) == 6
    lines = [record for record in caplog.records if record.name == "ml_connector.http"]
    assert len(lines) == gateway.requests_made > 6
    assert {record.status for record in lines} == {200, 504}
    assert all(record.system == "stripe" and record.path == "/stripe/v1/customers" for record in lines)
