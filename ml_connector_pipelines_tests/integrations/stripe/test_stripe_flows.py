"""Infor <-> Stripe end to end over HTTP: the sandbox's Infor and Stripe, a real webhook receiver,
the real state store; every assertion reads what the target system holds afterwards."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import sqlalchemy as sa

from ml_connector_pipelines.core.tables import inbox
from ml_connector_pipelines.core.webhooks import WebhookServer
from ml_connector_pipelines.integrations.stripe.assets import stripe_reconciliation
from ml_connector_pipelines.integrations.stripe.payments import PAYMENTS_FLOW
from ml_connector_pipelines.integrations.stripe.sensors import EVENTS_CURSOR
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant

from .conftest import (
    PUSH_ASSETS,
    busiest_day,
    infor_key,
    launch,
    minor,
    open_invoices_of,
    postings,
    sandbox_post,
    stripe_account,
    tick_sensor,
    today,
)


def reconciliation_check(tenant: TenantEnv) -> tuple[bool, str]:
    result = tenant.materialize([stripe_reconciliation], today())
    assert result.success
    [check] = result.get_asset_check_evaluations()
    [materialization] = result.get_asset_materialization_events()
    return check.passed, materialization.materialization.metadata["report"].value


def test_invoices_out_payments_and_refunds_back_each_posted_once(
    tenant: TenantEnv, receiver: WebhookServer
) -> None:
    day = busiest_day(tenant)
    assert tenant.materialize(PUSH_ASSETS, day).success

    # Every open Infor invoice of the day is one open Stripe invoice for its open amount, billed to
    # the Stripe customer that carries the Infor customer number (synced on the spot when that
    # customer changed on another day). Closed invoices are not billed.
    opened = open_invoices_of(tenant, day)
    account = stripe_account(tenant)
    customers = {c["id"]: c["metadata"]["infor_customer_id"] for c in account["customers"]}
    assert sorted(Counter(customers.values()).values()) == [1] * len(customers)  # no duplicates
    day_customers = {
        c["customer_id"] for c in tenant.infor_state()["customers"] if c["modified_date"] == day.isoformat()
    }
    assert day_customers <= set(customers.values())
    billed = {inv["metadata"]["infor_invoice_key"]: inv for inv in account["invoices"]}
    assert len(account["invoices"]) == len(billed) == len(opened) > 0
    for record in opened:
        held = billed[infor_key(record)]
        assert held["status"] == "open"
        assert held["amount_due"] == minor(record["open_amount"], record["currency"])
        assert customers[held["customer"]] == record["customer_id"]

    # Rerunning the partition sends nothing new.
    assert tenant.materialize(PUSH_ASSETS, day).success
    assert len(stripe_account(tenant)["invoices"]) == len(opened)

    # The customer pays one invoice in Stripe, then gets part of it refunded.
    record = opened[0]
    invoice = billed[infor_key(record)]
    paid = sandbox_post(tenant, f"/stripe/invoices/{invoice['id']}/pay")
    refund_amount = invoice["amount_due"] // 4
    refund = sandbox_post(
        tenant, "/stripe/refunds", {"payment_intent": paid["payment_intent"]["id"], "amount": refund_amount}
    )
    inbox = tenant.connector.state.inbox
    delivered = inbox.pending("stripe", tenant.name)
    assert {e.event_id for e in delivered} >= {
        e["id"] for e in stripe_account(tenant)["events"] if e["type"] == "invoice.paid"
    }

    # Not posted yet: the reconciliation sees the Stripe payment missing in Infor.
    clean, report = reconciliation_check(tenant)
    assert not clean and "missing_in_infor" in report

    [run_request] = tick_sensor(tenant)
    assert run_request.partition_key == tenant.name
    assert tick_sensor(tenant)[0].run_key == run_request.run_key  # same batch, same run key
    assert launch(tenant, run_request)

    [payment] = postings(tenant, invoice["id"])
    assert payment["amount"] == record["open_amount"]
    assert payment["dimensions"] == ["1000"]  # no ar_dimensions configured: the default account
    assert (payment["invoice_number"], payment["customer_id"]) == (
        record["invoice_number"],
        record["customer_id"],
    )
    [reversal] = postings(tenant, refund["id"])
    assert minor(reversal["amount"], record["currency"]) == -refund_amount
    assert len(tenant.infor_state()["ar_payments"]) == 2
    assert inbox.pending("stripe", tenant.name) == []

    # Replays: every webhook again, a poll from the start of time, and the payment event again
    # under a new event id. Nothing is posted twice.
    for event in stripe_account(tenant)["events"]:
        sandbox_post(tenant, f"/stripe/events/{event['id']}/redeliver")
    tenant.connector.state.cursors.set(tenant.name, EVENTS_CURSOR, "0")
    assert tick_sensor(tenant) == []  # every event is already in the inbox, processed
    paid_event = next(e for e in stripe_account(tenant)["events"] if e["type"] == "invoice.paid")
    assert inbox.put("stripe", tenant.name, "evt_replayed", json.dumps(paid_event))
    [replay_request] = tick_sensor(tenant)
    assert launch(tenant, replay_request)
    assert len(postings(tenant, invoice["id"])) == len(postings(tenant, refund["id"])) == 1
    assert len(tenant.infor_state()["ar_payments"]) == 2
    ledger = tenant.connector.state.ledger
    assert {e.source_id for e in ledger.entries(tenant.name, PAYMENTS_FLOW, "done")} == {
        invoice["id"],
        refund["id"],
    }

    clean, report = reconciliation_check(tenant)
    assert clean, report
    assert invoice["id"] in report and refund["id"] in report


def test_configured_dimensions_and_unmatched_payments(sandbox_server: Any, connector: Any) -> None:
    tenant = make_tenant(sandbox_server, connector, config={"ar_dimensions": ["1010", "CC100"]})
    day = busiest_day(tenant)
    assert tenant.materialize(PUSH_ASSETS, day).success
    invoice = stripe_account(tenant)["invoices"][0]
    sandbox_post(tenant, f"/stripe/invoices/{invoice['id']}/pay")
    paid_event = next(e for e in stripe_account(tenant)["events"] if e["type"] == "invoice.paid")
    # A payment of an invoice made by hand in Stripe names no Infor invoice: flagged, alerted.
    stray = {**paid_event, "id": "evt_stray"}
    stray["data"] = {"object": {**paid_event["data"]["object"], "id": "in_by_hand", "metadata": {}}}
    connector.state.inbox.put("stripe", tenant.name, "evt_stray", json.dumps(stray))

    [request] = tick_sensor(tenant)  # polling finds the paid invoice's event (no receiver here)
    assert launch(tenant, request)

    [payment] = postings(tenant, invoice["id"])
    assert payment["dimensions"] == ["1010", "CC100"]
    assert postings(tenant, "in_by_hand") == []
    flagged = connector.state.ledger.get(tenant.name, PAYMENTS_FLOW, "in_by_hand")
    assert flagged is not None and flagged.status == "flagged" and "unmatched" in (flagged.reason or "")
    alerts = [e for e in connector.state.audit.history(tenant.name, PAYMENTS_FLOW) if e.action == "alert"]
    assert [a.source_id for a in alerts] == ["in_by_hand"]
    dead = connector.state.inbox.get(_inbox_id(connector, "evt_stray"))
    assert dead is not None and dead.processed_at is not None and "unmatched" in (dead.error or "")


def _inbox_id(connector: Any, event_id: str) -> int:
    with connector.state.store.session() as conn:
        return conn.execute(sa.select(inbox.c.id).where(inbox.c.event_id == event_id)).scalar_one()
