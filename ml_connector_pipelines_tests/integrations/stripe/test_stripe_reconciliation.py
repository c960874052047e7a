"""Stripe reconciliation against what Infor itself holds: every mismatch is made for real in the
sandbox (a doubled and a wrong posting in Infor, a payment never posted, a posting Stripe does not
show, a payment naming no Infor invoice), then `stripe_reconciliation` must name each one."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pandas as pd
import pytest

from ml_connector_pipelines.integrations.stripe import mapping
from ml_connector_pipelines.integrations.stripe.assets import reconcile, stripe_reconciliation
from ml_connector_pipelines.systems.infor.models import ARPayment, PostedARPayment
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant

from .conftest import (
    PUSH_ASSETS,
    busiest_day,
    infor_key,
    launch,
    open_invoices_of,
    patch_infor,
    postings,
    sandbox_post,
    stripe_account,
    stripe_post,
    tick_sensor,
    today,
)

# Unit: the status logic on plain inputs ------------------------------------------------------------


def _payment(reference: str, amount: str, currency: str = "EUR") -> ARPayment:
    return ARPayment(
        division="AAA",
        customer_id="C1",
        invoice_number="INV-1",
        invoice_year=2026,
        amount=Decimal(amount),
        currency=currency,
        payment_date=date(2026, 11, 21),
        reference=reference,
    )


def _posting(reference: str, amount: str, line: int = 1, currency: str | None = "EUR") -> PostedARPayment:
    return PostedARPayment(
        id=f"B1/{line}",
        reference=reference,
        invoice_number="INV-1",
        amount=Decimal(amount),
        currency=currency,
    )


def test_reconcile_gives_each_reference_its_status() -> None:
    stripe_side: dict[str, ARPayment | str] = {
        "in_matched": _payment("in_matched", "100.00"),
        "re_refund": _payment("re_refund", "-25.00"),
        "in_wrong_amount": _payment("in_wrong_amount", "100.00"),
        "in_wrong_currency": _payment("in_wrong_currency", "100.00", currency="USD"),
        "in_twice": _payment("in_twice", "50.00"),
        "in_missing": _payment("in_missing", "10.00"),
        "in_no_currency_read": _payment("in_no_currency_read", "10.00"),
        "in_by_hand": "unmatched",
    }
    infor = {
        "in_matched": [_posting("in_matched", "100.00")],
        "re_refund": [_posting("re_refund", "-25.00")],
        "in_wrong_amount": [_posting("in_wrong_amount", "99.99")],
        "in_wrong_currency": [_posting("in_wrong_currency", "100.00")],
        "in_twice": [_posting("in_twice", "50.00"), _posting("in_twice", "50.00", line=2)],
        "in_no_currency_read": [_posting("in_no_currency_read", "10.00", currency=None)],
        "in_not_in_stripe": [_posting("in_not_in_stripe", "30.00")],
    }
    posted = ["in_matched", "re_refund", "in_twice", "in_not_in_stripe", "in_gone_from_infor"]

    report = reconcile(stripe_side, posted, infor).set_index("reference")

    assert report["status"].to_dict() == {
        "in_by_hand": "unmatched",
        "in_gone_from_infor": "not_in_stripe",
        "in_matched": "matched",
        "in_missing": "missing_in_infor",
        "in_no_currency_read": "matched",
        "in_not_in_stripe": "not_in_stripe",
        "in_twice": "posted_twice",
        "in_wrong_amount": "amount_differs",
        "in_wrong_currency": "amount_differs",
        "re_refund": "matched",
    }
    # Infor's amount is the sum of what Infor holds, next to Stripe's.
    assert report.loc["in_twice", "infor_amount"] == Decimal("100.00")
    assert report.loc["in_twice", "stripe_amount"] == Decimal("50.00")
    assert report.loc["in_twice", "infor_postings"] == "B1/1, B1/2"
    assert report.loc["in_wrong_amount", "infor_amount"] == Decimal("99.99")
    assert report.loc["re_refund", "kind"] == "refund" and report.loc["in_matched", "kind"] == "payment"
    assert pd.isna(report.loc["in_missing", "infor_amount"]) and pd.isna(
        report.loc["in_missing", "infor_postings"]
    )
    assert report.loc["in_not_in_stripe", "invoice_number"] == "INV-1"
    assert pd.isna(report.loc["in_not_in_stripe", "stripe_amount"])


def test_reconcile_of_an_empty_day_is_an_empty_report() -> None:
    report = reconcile({}, [], {})
    assert report.empty and "status" in report.columns


# End to end over HTTP ----------------------------------------------------------------------------


def _reconciliation(tenant: TenantEnv) -> tuple[dict[str, dict[str, Any]], Any]:
    """Today's report by reference, and the asset check's evaluation."""
    result = tenant.materialize([stripe_reconciliation], today())
    assert result.success
    [check] = result.get_asset_check_evaluations()
    report = result.output_for_node(stripe_reconciliation.op.name)
    return {row["reference"]: row for row in report.to_dict("records")}, check


def _paid_event(tenant: TenantEnv, stripe_invoice_id: str) -> dict[str, Any]:
    return next(
        event
        for event in stripe_account(tenant)["events"]
        if event["type"] == "invoice.paid" and event["data"]["object"]["id"] == stripe_invoice_id
    )


def _paid_by_hand(tenant: TenantEnv, customer: str) -> str:
    """An invoice made and paid in Stripe by a person: no Infor invoice in its metadata."""
    invoice = stripe_post(tenant, "/v1/invoices", {"customer": customer})
    stripe_post(tenant, "/v1/invoiceitems", {"customer": customer, "invoice": invoice["id"], "amount": 1234})
    stripe_post(tenant, f"/v1/invoices/{invoice['id']}/finalize", {})
    sandbox_post(tenant, f"/stripe/invoices/{invoice['id']}/pay")
    return invoice["id"]


@pytest.mark.parametrize("product", ["m3", "m3 with EXPORTMI locked", "syteline"])
def test_reconciliation_names_every_mismatch_infor_holds(
    product: str, sandbox_server: Any, connector: Any
) -> None:
    locked = product == "m3 with EXPORTMI locked"
    product = "m3" if locked else product
    tenant = make_tenant(
        sandbox_server, connector, product=product, config={"m3_exportmi": False} if locked else {}
    )
    day = busiest_day(tenant)
    if locked:  # M3 refuses EXPORTMI: postings are found through ARS200MI/SearchInvoices
        url = f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/config"
        httpx.put(url, json={"exportmi": False}, timeout=30).raise_for_status()
    assert tenant.materialize(PUSH_ASSETS, day).success
    records = open_invoices_of(tenant, day)
    assert len(records) >= 5
    billed = {inv["metadata"]["infor_invoice_key"]: inv for inv in stripe_account(tenant)["invoices"]}
    matched, wrong, twice, missing, forged = (billed[infor_key(record)]["id"] for record in records[:5])

    # Two invoices paid in Stripe and posted by our flow; a third "paid" only by an event in our
    # inbox that Stripe never sent (so Infor and our ledger hold a posting Stripe does not show).
    for stripe_id in (matched, twice):
        sandbox_post(tenant, f"/stripe/invoices/{stripe_id}/pay")
    event = _paid_event(tenant, matched)
    forged_invoice = next(i for i in stripe_account(tenant)["invoices"] if i["id"] == forged)
    forged_object = {**forged_invoice, "status": "paid", "amount_paid": forged_invoice["amount_due"]}
    forged_event = {**event, "id": "evt_forged", "data": {"object": forged_object}}
    assert connector.state.inbox.put("stripe", tenant.name, "evt_forged", json.dumps(forged_event))
    [request] = tick_sensor(tenant)
    assert launch(tenant, request)
    assert [len(postings(tenant, ref)) for ref in (matched, twice, forged)] == [1, 1, 1]

    rows, check = _reconciliation(tenant)
    assert {ref: row["status"] for ref, row in rows.items()} == {
        matched: "matched",
        twice: "matched",
        forged: "not_in_stripe",
    }
    assert not check.passed
    assert check.metadata["mismatched_references"].value == [forged]

    with tenant.resources["infor"].adapter(tenant.name) as adapter:
        # The same payment posted a second time (its invoice reopened in Infor to take it).
        record = records[2]  # the invoice `twice` bills
        patch_infor(
            tenant, "ar_invoices", infor_key(record), {"status": "open", "open_amount": record["open_amount"]}
        )
        payment = mapping.payment_from_event(_paid_event(tenant, twice))
        assert payment is not None
        if product == "m3":
            # Our M3 posting is keyed by the reference (a repeat is a no-op): the second one is keyed
            # in by hand, in a batch of another number range.
            adapter.payment_batch_prefix = "8"  # type: ignore[attr-defined]
        adapter.add_ar_payment(payment)
        # Paid in Stripe, posted to Infor by someone else for a cent less.
        sandbox_post(tenant, f"/stripe/invoices/{wrong}/pay")
        wrong_payment = mapping.payment_from_event(_paid_event(tenant, wrong))
        assert wrong_payment is not None
        adapter.add_ar_payment(
            wrong_payment.model_copy(update={"amount": wrong_payment.amount - Decimal("0.01")})
        )
    # Paid in Stripe, never posted (no run has picked the event up yet).
    sandbox_post(tenant, f"/stripe/invoices/{missing}/pay")
    by_hand = _paid_by_hand(tenant, billed[infor_key(records[0])]["customer"])
    assert len(postings(tenant, twice)) == 2 and len(postings(tenant, wrong)) == 1

    rows, check = _reconciliation(tenant)
    assert {ref: row["status"] for ref, row in rows.items()} == {
        matched: "matched",
        twice: "posted_twice",
        wrong: "amount_differs",
        missing: "missing_in_infor",
        forged: "not_in_stripe",
        by_hand: "unmatched",
    }
    # The amounts are what Infor holds, not what our ledger recorded.
    assert rows[twice]["infor_amount"] == 2 * payment.amount == 2 * rows[twice]["stripe_amount"]
    assert rows[wrong]["infor_amount"] == wrong_payment.amount - Decimal("0.01")
    assert rows[wrong]["stripe_amount"] == wrong_payment.amount
    assert rows[missing]["infor_amount"] is None and rows[missing]["stripe_amount"] > 0
    assert rows[matched]["infor_amount"] == rows[matched]["stripe_amount"] > 0
    assert not check.passed
    mismatched = sorted([twice, wrong, missing, forged, by_hand])
    assert check.metadata["mismatched_references"].value == mismatched
    assert all(f"{ref} ({rows[ref]['status']})" in (check.description or "") for ref in mismatched)
    if locked:
        calls = tenant.infor_state()["m3_calls"]
        assert calls.get("EXPORTMI/Select", 0) == 0
        assert calls.get("ARS200MI/SearchInvoices", 0) and calls.get("ARS200MI/GetInvoice", 0)
