"""The Stripe simulator, driven over real HTTP by the official SDK and by raw httpx."""

from __future__ import annotations

import json
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.stripe.account import API_VERSION
from ml_connector_pipelines.sandbox.stripe.forms import parse_form
from ml_connector_pipelines.sandbox.stripe.simulator import StripeSimulator

pytestmark = pytest.mark.filterwarnings(
    "ignore:Use .content=:DeprecationWarning"
)  # inside stripe.HTTPXClient
# A copy of ../shared/contracts/stripe-fixtures3.json (stripe-mock, MIT), so the test needs only the repo.
ORIGINAL_FIXTURES = Path(__file__).parent / "stripe-fixtures3.json"
PACKAGED_FIXTURES = Path(__file__).parents[2] / "ml_connector_pipelines/sandbox/stripe/fixtures3.json"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(seed=7, simulators=[StripeSimulator]) as srv:
        yield srv


@pytest.fixture
def api_key() -> str:
    return f"sk_test_{uuid.uuid4().hex[:16]}"  # a fresh, isolated account per test


def sdk(server: SandboxServer, api_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": f"{server.url}/stripe"},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )


@pytest.fixture
def client(server: SandboxServer, api_key: str) -> stripe.StripeClient:
    return sdk(server, api_key)


def raw(server: SandboxServer, api_key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/stripe", headers={"Authorization": f"Bearer {api_key}"})


def account_state(server: SandboxServer, api_key: str) -> dict[str, Any]:
    return server.get_state("stripe")["accounts"][api_key]


class Receiver:
    """A webhook endpoint on loopback that records what it receives (and may call back first)."""

    def __init__(self, status: int = 200, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                if on_event is not None:
                    on_event(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/stripe"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def open_invoice(client: stripe.StripeClient, amount: int = 2500) -> tuple[str, str]:
    customer = client.v1.customers.create(params={"email": "ar@example.com", "name": "Acme"})
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": amount, "currency": "usd"}
    )
    client.v1.invoices.finalize_invoice(invoice.id)
    return customer.id, invoice.id


# ---- form decoding -----------------------------------------------------------------------------
def test_form_decoding_matches_the_sdk_encoding() -> None:
    body = (
        "metadata[order_id]=42&metadata%5Bnote%5D=a+b&types[0]=invoice.paid&types[1]=charge.refunded"
        "&created[gt]=1700000000&expand[]=payments&expand[]=lines&confirm=true&description="
    )
    assert parse_form(body) == {
        "metadata": {"order_id": "42", "note": "a b"},
        "types": ["invoice.paid", "charge.refunded"],
        "created": {"gt": "1700000000"},
        "expand": ["payments", "lines"],
        "confirm": "true",
        "description": "",
    }


# ---- customers -----------------------------------------------------------------------------------
def test_customer_crud_email_filter_and_metadata_unset(client: stripe.StripeClient) -> None:
    created = client.v1.customers.create(
        params={"email": "Jo@Example.com", "name": "Jo", "metadata": {"ext_id": "C-1", "keep": "yes"}}
    )
    assert created.id.startswith("cus_") and created.metadata.to_dict() == {"ext_id": "C-1", "keep": "yes"}
    client.v1.customers.create(params={"email": "other@example.com"})

    updated = client.v1.customers.update(created.id, params={"metadata": {"ext_id": ""}, "phone": "+1 555"})
    assert updated.metadata.to_dict() == {"keep": "yes"} and updated.phone == "+1 555"
    assert client.v1.customers.update(created.id, params={"description": ""}).description is None

    # The email filter is exact and case-sensitive.
    assert [c.id for c in client.v1.customers.list(params={"email": "Jo@Example.com"}).data] == [created.id]
    assert client.v1.customers.list(params={"email": "jo@example.com"}).data == []

    deleted = client.v1.customers.delete(created.id)
    assert deleted.deleted is True
    assert client.v1.customers.retrieve(created.id).deleted is True
    assert client.v1.customers.list(params={"email": "Jo@Example.com"}).data == []


def test_customer_list_cursors_newest_first(client: stripe.StripeClient) -> None:
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(5)]
    first = client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in first.data] == [ids[4], ids[3]] and first.has_more
    second = client.v1.customers.list(params={"limit": 2, "starting_after": ids[3]})
    assert [c.id for c in second.data] == [ids[2], ids[1]] and second.has_more
    last = client.v1.customers.list(params={"limit": 2, "starting_after": ids[1]})
    assert [c.id for c in last.data] == [ids[0]] and not last.has_more
    newer = client.v1.customers.list(params={"limit": 2, "ending_before": ids[0]})
    assert [c.id for c in newer.data] == [ids[2], ids[1]] and newer.has_more
    assert [c.id for c in client.v1.customers.list().auto_paging_iter()] == ids[::-1]


def test_customer_search_by_metadata_and_email(client: stripe.StripeClient) -> None:
    a = client.v1.customers.create(params={"email": "a@x.com", "metadata": {"ext_id": "W-1"}})
    client.v1.customers.create(params={"email": "b@x.com", "metadata": {"ext_id": "W-2"}})
    found = client.v1.customers.search(params={"query": 'metadata["ext_id"]:"W-1"'})
    assert [c.id for c in found.data] == [a.id] and found.object == "search_result"
    assert [c.id for c in client.v1.customers.search(params={"query": "email:'a@x.com'"}).data] == [a.id]
    both = client.v1.customers.search(params={"query": 'email:"a@x.com" OR email:"b@x.com"', "limit": 1})
    assert both.has_more and both.next_page
    rest = client.v1.customers.search(
        params={"query": 'email:"a@x.com" OR email:"b@x.com"', "page": both.next_page}
    )
    assert [c.id for c in rest.data] == [a.id] and not rest.has_more
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.search(params={"query": "email a@x.com"})
    assert err.value.param == "query"


# ---- invoices ------------------------------------------------------------------------------------
def test_pending_invoice_items_behavior(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "p@example.com"})
    for amount in (1000, 250):
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": amount, "currency": "usd"})

    excluded = client.v1.invoices.create(params={"customer": customer.id})
    assert excluded.amount_due == 0 and excluded.lines.data == []

    included = client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    assert (included.total, included.amount_due, len(included.lines.data)) == (1250, 1250, 2)
    pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True})
    assert pending.data == []

    priced = client.v1.invoice_items.create(
        params={
            "customer": customer.id,
            "invoice": included.id,
            "quantity": 3,
            "price_data": {"currency": "usd", "product": "prod_x", "unit_amount": 100},
        }
    )
    assert priced.amount == 300 and client.v1.invoices.retrieve(included.id).amount_due == 1550
    client.v1.invoice_items.delete(priced.id)

    # A negative item lowers the amount due.
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": included.id, "amount": -250, "currency": "usd"}
    )
    assert client.v1.invoices.retrieve(included.id).amount_due == 1000


def test_invoice_transitions_follow_the_contract(client: stripe.StripeClient, server: SandboxServer) -> None:
    customer = client.v1.customers.create(params={"email": "t@example.com"})
    draft = client.v1.invoices.create(
        params={"customer": customer.id, "collection_method": "send_invoice", "days_until_due": 30}
    )
    assert draft.status == "draft" and draft.auto_advance is False and draft.number is None
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": draft.id, "amount": 5000, "currency": "usd"}
    )
    for illegal in (client.v1.invoices.pay, client.v1.invoices.void_invoice, client.v1.invoices.send_invoice):
        with pytest.raises(stripe.InvalidRequestError):
            illegal(draft.id)

    opened = client.v1.invoices.finalize_invoice(draft.id)
    assert opened.status == "open" and opened.number and opened.amount_due == 5000
    assert opened.status_transitions.finalized_at and opened.due_date
    assert client.v1.invoices.send_invoice(draft.id).status == "open"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.update(item.id, params={"amount": 1})  # items freeze with the invoice
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.delete(draft.id)  # only drafts can be deleted

    uncollectible = client.v1.invoices.mark_uncollectible(draft.id)
    assert (
        uncollectible.status == "uncollectible" and uncollectible.status_transitions.marked_uncollectible_at
    )
    voided = client.v1.invoices.void_invoice(draft.id)
    assert voided.status == "void" and voided.status_transitions.voided_at
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.pay(draft.id)
    assert err.value.http_status == 400 and err.value.error.type == "invalid_request_error"

    paid = client.v1.invoices.retrieve(open_invoice(client)[1])
    assert client.v1.invoices.pay(paid.id, params={"paid_out_of_band": True}).status == "paid"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(paid.id)

    types = [e.type for e in client.v1.events.list(params={"type": "invoice.*", "limit": 100}).data]
    for expected in (
        "invoice.created",
        "invoice.finalized",
        "invoice.sent",
        "invoice.marked_uncollectible",
        "invoice.voided",
        "invoice.paid",
    ):
        assert expected in types


def test_deleting_a_draft_returns_its_items_to_pending(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={})
    draft = client.v1.invoices.create(params={"customer": customer.id})
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": draft.id, "amount": 700, "currency": "usd"}
    )
    assert client.v1.invoices.delete(draft.id).deleted is True
    assert client.v1.invoice_items.retrieve(item.id).invoice is None
    assert client.v1.events.list(params={"type": "invoice.deleted"}).data[0].data.object.id == draft.id


# ---- payments and refunds ------------------------------------------------------------------------
def test_control_pay_creates_linked_payment_intent_and_charge(
    client: stripe.StripeClient, server: SandboxServer
) -> None:
    customer_id, invoice_id = open_invoice(client, 4200)
    answer = httpx.post(f"{server.url}/_sandbox/stripe/invoices/{invoice_id}/pay")
    assert answer.status_code == 200

    invoice = client.v1.invoices.retrieve(invoice_id, params={"expand": ["payments"]})
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("paid", 4200, 0)
    assert invoice.status_transitions.paid_at
    intent_id = invoice.payments.data[0].payment.payment_intent
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert (intent.status, intent.amount_received, intent.customer) == ("succeeded", 4200, customer_id)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.amount, charge.payment_intent, charge.paid) == (
        "succeeded",
        4200,
        intent_id,
        True,
    )
    by_intent = client.v1.invoice_payments.list(params={"payment": {"payment_intent": intent_id}})
    assert [p.invoice for p in by_intent.data] == [invoice_id]

    types = {e.type for e in client.v1.events.list(params={"limit": 100}).data}
    assert {"invoice.paid", "payment_intent.succeeded", "charge.succeeded"} <= types
    again = httpx.post(f"{server.url}/_sandbox/stripe/invoices/{invoice_id}/pay")
    assert again.status_code == 400 and again.json()["error"]["type"] == "invalid_request_error"


def test_refunds_partial_then_full(client: stripe.StripeClient, server: SandboxServer) -> None:
    _, invoice_id = open_invoice(client, 1000)
    paid = httpx.post(f"{server.url}/_sandbox/stripe/invoices/{invoice_id}/pay").json()
    charge_id, intent_id = paid["charge"]["id"], paid["payment_intent"]["id"]

    partial = httpx.post(f"{server.url}/_sandbox/stripe/refunds", json={"charge": charge_id, "amount": 300})
    assert partial.status_code == 200 and partial.json()["amount"] == 300
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (300, False)

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 701})
    rest = client.v1.refunds.create(params={"payment_intent": intent_id, "reason": "requested_by_customer"})
    assert (rest.amount, rest.charge, rest.status) == (700, charge_id, "succeeded")
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded, len(charge.refunds.data)) == (1000, True, 2)
    assert [r.amount for r in client.v1.refunds.list(params={"charge": charge_id}).data] == [700, 300]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"charge": charge_id})
    assert err.value.code == "charge_already_refunded"

    types = [
        e.type for e in client.v1.events.list(params={"types": ["charge.refunded", "refund.created"]}).data
    ]
    assert types == ["refund.created", "charge.refunded"] * 2


def test_payment_intent_confirm_and_cancel(client: stripe.StripeClient) -> None:
    confirmed = client.v1.payment_intents.create(
        params={"amount": 1999, "currency": "USD", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert (confirmed.status, confirmed.currency, confirmed.amount_received) == ("succeeded", "usd", 1999)
    assert client.v1.charges.list(params={"payment_intent": confirmed.id}).data[0].amount == 1999
    pending = client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    assert pending.status == "requires_payment_method"
    assert client.v1.payment_intents.cancel(pending.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.confirm(pending.id, params={"payment_method": "pm_card_visa"})


# ---- events --------------------------------------------------------------------------------------
def test_events_filters_and_cursors(client: stripe.StripeClient, server: SandboxServer, api_key: str) -> None:
    customers = [client.v1.customers.create(params={"name": f"e{i}"}) for i in range(3)]
    client.v1.customers.update(customers[0].id, params={"name": "renamed"})
    everything = client.v1.events.list(params={"limit": 100}).data
    assert [e.type for e in everything] == ["customer.updated"] + ["customer.created"] * 3
    assert everything[0].data.previous_attributes.to_dict() == {"name": "e0"}
    assert everything[0].request.idempotency_key  # the SDK sends a key with every POST

    assert len(client.v1.events.list(params={"type": "customer.*"}).data) == 4
    assert len(client.v1.events.list(params={"type": "customer.created"}).data) == 3
    assert len(client.v1.events.list(params={"types": ["customer.updated", "invoice.paid"]}).data) == 1
    page = client.v1.events.list(params={"limit": 2})
    assert page.has_more and [e.id for e in page.data] == [e.id for e in everything[:2]]
    older = client.v1.events.list(params={"limit": 2, "starting_after": page.data[-1].id})
    assert [e.id for e in older.data] == [e.id for e in everything[2:]] and not older.has_more
    newer = client.v1.events.list(params={"ending_before": everything[-1].id})
    assert [e.id for e in newer.data] == [e.id for e in everything[:-1]]
    assert client.v1.events.retrieve(everything[1].id).type == "customer.created"

    created = everything[-1].created
    assert len(client.v1.events.list(params={"created": {"gte": created}}).data) == 4
    assert client.v1.events.list(params={"created": {"gt": created + 3600}}).data == []
    assert client.v1.events.list(params={"created": {"lt": created}}).data == []
    assert len(client.v1.events.list(params={"created": {"lte": created + 3600}}).data) == 4

    http = raw(server, api_key)
    for bad in ({"limit": 0}, {"limit": 101}, {"type": "a", "types[0]": "b"}, {"starting_after": "evt_nope"}):
        answer = http.get("/v1/events", params=bad)
        assert answer.status_code in (400, 404) and answer.json()["error"]["type"] == "invalid_request_error"
    literal = http.get("/v1/events?types[0]=customer.updated&created[gte]=0")
    encoded = http.get("/v1/events?types%5B0%5D=customer.updated&created%5Bgte%5D=0")
    assert len(literal.json()["data"]) == len(encoded.json()["data"]) == 1


# ---- idempotency, auth, errors, rate limit -----------------------------------------------------
def test_idempotency_replays_and_rejects_changed_params(
    client: stripe.StripeClient, server: SandboxServer, api_key: str
) -> None:
    key = {"idempotency_key": "order-77"}
    first = client.v1.customers.create(params={"email": "idem@example.com"}, options=key)
    second = client.v1.customers.create(params={"email": "idem@example.com"}, options=key)
    assert first.id == second.id
    assert len(client.v1.customers.list(params={"email": "idem@example.com"}).data) == 1
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "other@example.com"}, options=key)

    # An error is replayed too, with its status.
    http = raw(server, api_key)
    headers = {"Idempotency-Key": "bad-invoice"}
    failed = http.post("/v1/invoices", data={"customer": "cus_missing"}, headers=headers)
    http.post("/v1/customers", data={"email": "x@example.com"}, headers={"Idempotency-Key": "cus_missing"})
    replayed = http.post("/v1/invoices", data={"customer": "cus_missing"}, headers=headers)
    assert failed.status_code == replayed.status_code == 404
    assert replayed.json() == failed.json() and replayed.headers["Idempotent-Replayed"] == "true"

    # Parameters that fail validation save nothing: once fixed, the same key runs the request.
    headers = {"Idempotency-Key": "typo-then-fixed"}
    typo = http.post("/v1/customers", data={"emial": "fixed@example.com"}, headers=headers)
    assert (typo.status_code, typo.json()["error"]["code"]) == (400, "parameter_unknown")
    fixed = http.post("/v1/customers", data={"email": "fixed@example.com"}, headers=headers)
    assert fixed.status_code == 200 and "Idempotent-Replayed" not in fixed.headers

    # Keys are per account: another key runs the request anew.
    other_key = f"sk_test_{uuid.uuid4().hex[:16]}"
    other = sdk(server, other_key).v1.customers.create(params={"email": "idem@example.com"}, options=key)
    assert other.id != first.id
    assert len(account_state(server, other_key)["customers"]) == 1


def test_auth_isolation_and_error_shapes(server: SandboxServer, api_key: str) -> None:
    base = f"{server.url}/stripe/v1/customers"
    for headers in ({}, {"Authorization": "Bearer pk_test_123"}, {"Authorization": "Bearer sk_live_123"}):
        answer = httpx.get(base, headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.headers["Request-Id"].startswith("req_")
    with pytest.raises(stripe.AuthenticationError):
        sdk(server, "rk_test_nope").v1.customers.list()

    created = httpx.post(
        base, auth=(api_key, ""), data={"email": "basic@example.com"}
    )  # curl -u sk_test_...:
    assert created.status_code == 200 and created.headers["Request-Id"].startswith("req_")
    stranger = raw(server, f"sk_test_{uuid.uuid4().hex[:16]}")
    missing = stranger.get(f"/v1/customers/{created.json()['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"] | {"request_log_url": None, "doc_url": None} == {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "param": "id",
        "message": f"No such customer: '{created.json()['id']}'",
        "request_log_url": None,
        "doc_url": None,
    }
    unknown = raw(server, api_key).post("/v1/customers", data={"emial": "typo@example.com"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "emial"
    assert raw(server, api_key).get("/v1/nothing_here").status_code == 404


def test_rate_limit_per_account(server: SandboxServer, api_key: str) -> None:
    control = f"{server.url}/_sandbox/stripe/rate_limit"
    assert httpx.put(control, json={"per_second": 2}).json() == {"per_second": 2}
    try:
        http = raw(server, api_key)
        statuses = [http.get("/v1/customers").status_code for _ in range(4)]
        assert 429 in statuses and statuses[0] == 200
        limited = next(r for r in (http.get("/v1/customers") for _ in range(3)) if r.status_code == 429)
        assert limited.json()["error"]["code"] == "rate_limit"
        # Another account has its own budget.
        assert raw(server, f"sk_test_{uuid.uuid4().hex[:16]}").get("/v1/customers").status_code == 200
    finally:
        httpx.put(control, json={"per_second": None})
    assert raw(server, api_key).get("/v1/customers").status_code == 200


# ---- webhooks ------------------------------------------------------------------------------------
def test_webhooks_are_signed_and_recorded(
    client: stripe.StripeClient, server: SandboxServer, api_key: str, receiver: Receiver
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["invoice.paid", "charge.refunded"]}
    )
    assert endpoint.secret.startswith("whsec_") and endpoint.status == "enabled"
    assert (
        endpoint.secret
        == sdk(server, api_key)
        .v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
        .secret
    )  # deterministic from (seed, key, url)
    assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id)

    _, invoice_id = open_invoice(client)
    receiver.received.clear()
    httpx.post(f"{server.url}/_sandbox/stripe/invoices/{invoice_id}/pay").raise_for_status()

    # Delivered before the control call answered: every paid event to "*", invoice.paid to both.
    events = [
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], endpoint.secret)
        for headers, body in receiver.received
    ]
    assert sum(e.type == "invoice.paid" for e in events) == 2
    assert {"payment_intent.succeeded", "charge.succeeded"} <= {e.type for e in events}
    paid_event = next(e for e in events if e.type == "invoice.paid")
    assert paid_event.data.object.id == invoice_id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            receiver.received[0][1], receiver.received[0][0]["Stripe-Signature"], "whsec_wrong"
        )

    deliveries = account_state(server, api_key)["deliveries"]
    assert all(d["status"] == 200 for d in deliveries)
    assert {d["event_id"] for d in deliveries} >= {paid_event.id}
    assert client.v1.events.retrieve(paid_event.id).pending_webhooks == 0

    count = len(receiver.received)
    redelivered = httpx.post(f"{server.url}/_sandbox/stripe/events/{paid_event.id}/redeliver").json()
    assert [d["status"] for d in redelivered["deliveries"]] == [200, 200]
    assert len(receiver.received) == count + 2
    assert json.loads(receiver.received[-1][1])["id"] == paid_event.id


def test_receiver_can_call_the_api_while_a_delivery_is_open(
    client: stripe.StripeClient, server: SandboxServer, api_key: str
) -> None:
    # If the simulator held its lock while delivering, this callback would block until the delivery
    # timed out, and the delivery would be recorded as failed.
    lookups: list[int] = []
    http = raw(server, api_key)
    callback = Receiver(
        on_event=lambda event: lookups.append(http.get(f"/v1/events/{event['id']}").status_code)
    )
    try:
        client.v1.webhook_endpoints.create(
            params={"url": callback.url, "enabled_events": ["customer.created"]}
        )
        client.v1.customers.create(params={"name": "callback"})
    finally:
        callback.close()
    assert lookups == [200]
    assert [d["status"] for d in account_state(server, api_key)["deliveries"]] == [200]


def test_concurrent_requests_with_one_key_create_one_object(server: SandboxServer, api_key: str) -> None:
    def create() -> str:
        with raw(server, api_key) as http:
            answer = http.post("/v1/customers", data={"name": "once"}, headers={"Idempotency-Key": "same"})
            return answer.json()["id"]

    threads_ids: list[str] = []
    workers = [threading.Thread(target=lambda: threads_ids.append(create())) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(threads_ids)) == 1 and len(threads_ids) == 8
    assert len(account_state(server, api_key)["customers"]) == 1


def test_failed_delivery_is_recorded(
    client: stripe.StripeClient, server: SandboxServer, api_key: str
) -> None:
    down = Receiver(status=500)
    down.close()  # nothing listens there any more
    client.v1.webhook_endpoints.create(params={"url": down.url, "enabled_events": ["customer.created"]})
    customer = client.v1.customers.create(params={"name": "nobody listens"})
    event = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.data.object.id == customer.id and event.pending_webhooks == 1
    delivery = account_state(server, api_key)["deliveries"][-1]
    assert delivery["event_id"] == event.id and delivery["status"] is None and delivery["error"]


# ---- shapes against Stripe's own fixtures --------------------------------------------------------
# Keys Stripe adds beyond the fixture in specific cases, each a field the SDK declares.
EXTRA_KEYS = {
    ("webhook_endpoint", "secret"),  # only in the creation response
    ("event.data", "previous_attributes"),  # only on *.updated events
    ("invoice", "payments"),  # only with expand[]=payments
    ("invoice_payment.payment", "payment_intent"),  # set when payment.type is payment_intent
}
SDK_CLASSES: dict[str, type] = {
    "customer": stripe.Customer,
    "invoiceitem": stripe.InvoiceItem,
    "invoice": stripe.Invoice,
    "line_item": stripe.InvoiceLineItem,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "event": stripe.Event,
    "webhook_endpoint": stripe.WebhookEndpoint,
    "invoice_payment": stripe.InvoicePayment,
}


def _annotation(sdk_class: type | None, key: str) -> Any:
    return vars(sdk_class).get("__annotations__", {}).get(key) if sdk_class else None


def _nullable(sdk_class: type | None, key: str) -> bool:
    # The SDK's own annotations say which fields may be null (Optional[...]).
    return type(None) in typing.get_args(_annotation(sdk_class, key))


def _scalar_types(sdk_class: type | None, key: str) -> tuple[type, ...] | None:
    """For a field that is null in the fixture: the scalar type the SDK declares, if it is that simple."""
    args = set(typing.get_args(_annotation(sdk_class, key))) - {type(None)}
    return tuple(args) if args and args <= {int, str, bool} else None


def _nested_class(sdk_class: type | None, key: str) -> type | None:
    name = "".join(part.capitalize() for part in key.split("_"))
    return getattr(sdk_class, name, None) if sdk_class else None


def assert_shape(actual: Any, fixture: Any, path: str, sdk_class: type | None) -> None:
    if isinstance(fixture, dict) and fixture.get("object") == "list":
        assert set(actual) == set(fixture), path
        for item in actual["data"] if fixture["data"] else []:
            assert_shape(item, fixture["data"][0], f"{path}[]", SDK_CLASSES.get(item.get("object")))
        return
    if not isinstance(fixture, dict):
        assert type(actual) is type(fixture) or isinstance(actual, int) and isinstance(fixture, int), path
        return
    assert isinstance(actual, dict), path
    extras = {k for k in set(actual) - set(fixture) if (path, k) in EXTRA_KEYS}
    assert set(actual) - extras == set(fixture), f"{path}: {set(actual) ^ set(fixture)}"
    for key, value in actual.items():
        if key in extras or (path == "event.data" and key == "object"):
            continue
        expected = fixture[key]
        if value is None:
            assert expected is None or _nullable(sdk_class, key), f"{path}.{key} is null"
        elif expected is not None:
            assert_shape(value, expected, f"{path}.{key}", _nested_class(sdk_class, key))
        elif scalar := _scalar_types(sdk_class, key):
            assert isinstance(value, scalar), f"{path}.{key}: {value!r} is not {scalar}"


def test_every_object_keeps_the_fixture_keys_and_types(
    client: stripe.StripeClient, server: SandboxServer, api_key: str, receiver: Receiver
) -> None:
    fixtures = json.loads(ORIGINAL_FIXTURES.read_text())["resources"]
    http = raw(server, api_key)
    created_endpoint = http.post(
        "/v1/webhook_endpoints", data={"url": receiver.url, "enabled_events[0]": "*"}
    )
    customer_id, invoice_id = open_invoice(client)
    client.v1.customers.update(customer_id, params={"address": {"city": "Oslo", "country": "NO"}})
    paid = httpx.post(f"{server.url}/_sandbox/stripe/invoices/{invoice_id}/pay").json()
    httpx.post(f"{server.url}/_sandbox/stripe/refunds", json={"charge": paid["charge"]["id"], "amount": 5})
    draft = client.v1.invoices.create(params={"customer": customer_id})
    client.v1.invoice_items.create(params={"customer": customer_id, "amount": 100, "currency": "usd"})

    def body(path: str) -> dict[str, Any]:
        answer = http.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    checks: list[tuple[str, dict[str, Any]]] = [
        ("webhook_endpoint", created_endpoint.json()),
        ("webhook_endpoint", body(f"/v1/webhook_endpoints/{created_endpoint.json()['id']}")),
        ("customer", body(f"/v1/customers/{customer_id}")),
        ("invoice", body(f"/v1/invoices/{invoice_id}?expand[]=payments")),
        ("invoice", body(f"/v1/invoices/{draft.id}")),
        ("payment_intent", body(f"/v1/payment_intents/{paid['payment_intent']['id']}")),
        ("charge", body(f"/v1/charges/{paid['charge']['id']}")),
        ("invoice_payment", body(f"/v1/invoice_payments/{paid['invoice_payment']['id']}")),
        ("refund", body("/v1/refunds")["data"][0]),
        ("invoiceitem", body("/v1/invoiceitems?pending=true")["data"][0]),
        ("line_item", body(f"/v1/invoices/{invoice_id}")["lines"]["data"][0]),
    ]
    for kind, deleted_id, path in (
        ("deleted_invoice", draft.id, f"/v1/invoices/{draft.id}"),
        ("deleted_customer", customer_id, f"/v1/customers/{customer_id}"),
    ):
        checks.append((kind, http.delete(path).json()))
        assert checks[-1][1]["id"] == deleted_id
    events = body("/v1/events?limit=100")["data"]
    kinds = {event["data"]["object"]["object"] for event in events}
    assert kinds >= {"customer", "invoice", "invoiceitem", "payment_intent", "charge", "refund"}
    for event in events:
        checks.append(("event", event))
        checks.append((event["data"]["object"]["object"], event["data"]["object"]))

    for kind, obj in checks:
        fixture_kind = f"deleted_{obj['object']}" if obj.get("deleted") else kind
        assert_shape(obj, fixtures[fixture_kind], fixture_kind, SDK_CLASSES.get(fixture_kind))


def test_packaged_fixtures_are_an_unchanged_subset_of_the_original() -> None:
    original = json.loads(ORIGINAL_FIXTURES.read_text())["resources"]
    packaged = json.loads(PACKAGED_FIXTURES.read_text())["resources"]
    assert {kind: original[kind] for kind in packaged} == packaged


def test_credentials_and_state(server: SandboxServer, client: stripe.StripeClient, api_key: str) -> None:
    client.v1.customers.create(params={"name": "stateful"})
    creds = httpx.get(f"{server.url}/_sandbox/credentials").json()["stripe"]
    assert creds["secret_key_example"] == "sk_test_sandbox" and "whsec_" in creds["webhook_secret_rule"]
    state = account_state(server, api_key)
    assert [c["name"] for c in state["customers"]] == ["stateful"]
    assert state["events"][0]["type"] == "customer.created"


def test_a_due_date_not_in_the_future_is_refused_and_not_saved_for_its_key(
    server: SandboxServer, api_key: str
) -> None:
    with raw(server, api_key) as api:
        customer = api.post("/v1/customers", data={"email": "late@example.com"}).json()
        body = {
            "customer": customer["id"],
            "collection_method": "send_invoice",
            "due_date": int(time.time()) - 60,
        }
        headers = {"Idempotency-Key": "late-invoice"}
        refused = api.post("/v1/invoices", data=body, headers=headers)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "due_date"
        assert error["message"] == "Invalid timestamp: must be an integer Unix timestamp in the future."
        # A failed validation is not saved: the same key with valid terms creates the invoice.
        terms = {key: value for key, value in body.items() if key != "due_date"}
        created = api.post("/v1/invoices", data={**terms, "days_until_due": 1}, headers=headers)
        assert created.status_code == 200, created.text
        # An update cannot move a draft's due date into the past either.
        update = api.post(f"/v1/invoices/{created.json()['id']}", data={"due_date": int(time.time()) - 1})
        assert update.status_code == 400 and update.json()["error"]["param"] == "due_date"
        in_an_hour = int(time.time()) + 3600
        future = api.post(
            "/v1/invoices", data={**terms, "due_date": in_an_hour}, headers={"Idempotency-Key": "ok"}
        )
        assert future.status_code == 200 and future.json()["due_date"] == in_an_hour


def test_an_unknown_stripe_version_is_refused(server: SandboxServer, api_key: str) -> None:
    with raw(server, api_key) as api:
        for version in ("2099-01-01.future", "2019-2-19"):
            refused = api.get("/v1/customers", headers={"Stripe-Version": version})
            assert refused.status_code == 400
            error = refused.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"] == f"Invalid Stripe API version: {version}"
        assert api.get("/v1/customers", headers={"Stripe-Version": API_VERSION}).status_code == 200
        assert api.get("/v1/customers").status_code == 200  # no header: the account's default version
    # The official SDK sends its pinned version, which is the one the sandbox serves.
    assert sdk(server, api_key).v1.customers.list().data == []
