"""Invoices closing in Infor, customers changing, and the receiver refusing webhooks it cannot trust."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.core.webhooks import WebhookServer
from ml_connector_pipelines.integrations.stripe.assets import (
    CUSTOMERS_FLOW,
    INVOICES_FLOW,
    stripe_customers,
    stripe_invoices,
)
from ml_connector_pipelines.sandbox.stripe.simulator import sign
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant

from .conftest import (
    EXTRACTS,
    PUSH_ASSETS,
    busiest_day,
    infor_key,
    minor,
    open_invoices_of,
    patch_infor,
    sandbox_post,
    start_receiver,
    stripe_account,
    today,
)


@pytest.mark.parametrize(("action", "status"), [(None, "void"), ("mark_uncollectible", "uncollectible")])
def test_invoices_closed_in_infor_are_closed_in_stripe(
    sandbox_server: Any, connector: Any, action: str | None, status: str
) -> None:
    config = {"stripe_closed_invoice_action": action} if action else {}
    tenant = make_tenant(sandbox_server, connector, config=config)
    day = busiest_day(tenant)
    assert tenant.materialize(PUSH_ASSETS, day).success
    closing, staying = open_invoices_of(tenant, day)[:2]
    key = infor_key(closing)
    patch_infor(tenant, "ar_invoices", key, {"status": "cancelled", "open_amount": "0"})

    # The cancellation is an Infor change of today: today's partition carries it to Stripe.
    assert tenant.materialize([EXTRACTS["infor_ar_invoices"], stripe_invoices], today()).success
    invoices = {i["metadata"]["infor_invoice_key"]: i for i in stripe_account(tenant)["invoices"]}
    assert invoices[key]["status"] == status
    assert invoices[infor_key(staying)]["status"] == "open"
    entry = connector.state.ledger.get(tenant.name, INVOICES_FLOW, key)
    assert entry is not None and entry.status == "done" and entry.target_id == invoices[key]["id"]


def test_changed_customer_is_updated_not_duplicated(tenant: TenantEnv) -> None:
    day = busiest_day(tenant)
    assert tenant.materialize(PUSH_ASSETS, day).success
    customer_id = next(c for c in stripe_account(tenant)["customers"])["metadata"]["infor_customer_id"]
    patch_infor(tenant, "customers", customer_id, {"name": "Renamed GmbH", "email": None})

    assert tenant.materialize([EXTRACTS["infor_customers"], stripe_customers], today()).success
    customers = stripe_account(tenant)["customers"]
    held = [c for c in customers if c["metadata"]["infor_customer_id"] == customer_id]
    assert [(c["name"], c["email"]) for c in held] == [("Renamed GmbH", None)]
    history = tenant.connector.state.audit.history(tenant.name, CUSTOMERS_FLOW, customer_id)
    assert [e.action for e in history][-1] == "updated"


def _event(event_id: str) -> str:
    return json.dumps({"id": event_id, "object": "event", "type": "invoice.paid", "data": {"object": {}}})


def test_forged_tampered_or_stale_webhooks_are_rejected_and_nothing_is_stored(tenant: TenantEnv) -> None:
    receivers = start_receiver(tenant)
    server: WebhookServer = next(receivers)
    try:
        secret = tenant.connector.credentials.get(tenant.name, "stripe")["webhook_secret"]
        url = f"{server.url}/webhooks/stripe/{tenant.name}"

        def deliver(body: str, signature: str) -> httpx.Response:
            return httpx.post(url, content=body.encode(), headers={"Stripe-Signature": signature}, timeout=10)

        now = int(time.time())
        forged = deliver(_event("evt_forged"), sign("whsec_not_the_tenants", now, _event("evt_forged")))
        tampered = deliver(
            _event("evt_tampered").replace("invoice.paid", "charge.refunded"),
            sign(secret, now, _event("evt_tampered")),
        )
        stale = deliver(_event("evt_stale"), sign(secret, now - 301, _event("evt_stale")))
        unsigned = httpx.post(url, content=_event("evt_unsigned").encode(), timeout=10)
        assert [r.status_code for r in (forged, tampered, stale, unsigned)] == [400, 400, 400, 400]
        assert "tolerance" in stale.json()["error"].lower()
        assert tenant.connector.state.inbox.pending("stripe", tenant.name) == []

        # The same request, genuinely signed, is stored: the rejections above were about trust.
        genuine = deliver(_event("evt_genuine"), sign(secret, now, _event("evt_genuine")))
        assert genuine.json() == {"status": "stored", "event_id": "evt_genuine"}
        assert [e.event_id for e in tenant.connector.state.inbox.pending("stripe", tenant.name)] == [
            "evt_genuine"
        ]
    finally:
        receivers.close()


@pytest.mark.parametrize("product", ["m3", "syteline"])
def test_invoice_customers_are_read_one_by_one_when_the_ledger_lacks_them(
    sandbox_server: Any, connector: Any, product: str
) -> None:
    tenant = make_tenant(sandbox_server, connector, product=product)
    day = busiest_day(tenant)
    # Only the invoices: none of their customers is in the ledger yet.
    assert tenant.materialize([EXTRACTS["infor_ar_invoices"], stripe_invoices], day).success
    customers = {c["id"]: c for c in stripe_account(tenant)["customers"]}
    infor_customers = {c["customer_id"]: c for c in tenant.infor_state()["customers"]}
    opened = open_invoices_of(tenant, day)
    assert len(customers) == len({record["customer_id"] for record in opened})
    for invoice in stripe_account(tenant)["invoices"]:
        customer = customers[invoice["customer"]]
        infor_customer = infor_customers[customer["metadata"]["infor_customer_id"]]
        assert (customer["name"], customer["email"]) == (infor_customer["name"], infor_customer["email"])
    with tenant.resources["infor"].adapter(tenant.name) as adapter:
        assert adapter.customer("NO-SUCH-CUSTOMER") is None


def test_changed_open_amount_replaces_the_stripe_invoice_unless_it_is_paid(tenant: TenantEnv) -> None:
    day = busiest_day(tenant)
    assert tenant.materialize(PUSH_ASSETS, day).success
    changing, paid = open_invoices_of(tenant, day)[:2]
    before = {i["metadata"]["infor_invoice_key"]: i for i in stripe_account(tenant)["invoices"]}
    sandbox_post(tenant, f"/stripe/invoices/{before[infor_key(paid)]['id']}/pay")
    for record in (changing, paid):
        patch_infor(tenant, "ar_invoices", infor_key(record), {"open_amount": "1.00"})

    assert tenant.materialize([EXTRACTS["infor_ar_invoices"], stripe_invoices], today()).success
    held = invoices_of(tenant, changing)
    assert sorted((i["status"], i["amount_due"]) for i in held) == sorted(
        [("void", before[infor_key(changing)]["amount_due"]), ("open", minor("1.00", changing["currency"]))]
    )
    ledger = tenant.connector.state.ledger
    replaced = ledger.get(tenant.name, INVOICES_FLOW, infor_key(changing))
    assert replaced is not None and replaced.target_id == next(i["id"] for i in held if i["status"] == "open")
    # Paid in Stripe already: nothing is billed again, a person is asked to look.
    flagged = ledger.get(tenant.name, INVOICES_FLOW, infor_key(paid))
    assert flagged is not None and flagged.status == "flagged" and "already paid" in (flagged.reason or "")
    assert [i["status"] for i in invoices_of(tenant, paid)] == ["paid"]


def invoices_of(tenant: TenantEnv, record: dict[str, Any]) -> list[dict[str, Any]]:
    key = infor_key(record)
    return [i for i in stripe_account(tenant)["invoices"] if i["metadata"]["infor_invoice_key"] == key]
