"""Unit tests of the Infor <-> Stripe mapping: pure functions, no sandbox needed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from ml_connector_pipelines.core.errors import ValidationFailed
from ml_connector_pipelines.integrations.stripe.mapping import (
    OVERDUE_DAYS_UNTIL_DUE,
    customer_params,
    idempotency_key,
    invoice_digest,
    invoice_item_params,
    invoice_params,
    payment_from_event,
    refund_from_event,
    refunded_payment_intent,
    to_minor_units,
)
from ml_connector_pipelines.systems.infor.models import ARInvoice, Customer


def make_customer(**changes: object) -> Customer:
    fields: dict[str, object] = {
        "customer_id": "C1001",
        "name": "Acme GmbH",
        "currency": "EUR",
        "email": "ap@acme.example",
        "country": "de",
        "address_line": "Hauptstr. 1",
        "city": "Berlin",
        "post_code": "10115",
        "modified_date": date(2026, 11, 2),
    }
    return Customer(**{**fields, **changes})


def make_invoice(**changes: object) -> ARInvoice:
    fields: dict[str, object] = {
        "division": "100",
        "customer_id": "C1001",
        "invoice_number": "INV-77",
        "invoice_year": 2026,
        "invoice_date": date(2026, 11, 1),
        "due_date": date(2026, 12, 1),
        "currency": "EUR",
        "amount": Decimal("150.00"),
        "open_amount": Decimal("120.50"),
        "status": "open",
        "modified_date": date(2026, 11, 2),
    }
    return ARInvoice(**{**fields, **changes})


def stripe_invoice(invoice: ARInvoice, **changes: object) -> dict:
    """The Stripe invoice the connector would have created for `invoice`."""
    params = invoice_params(invoice, "cus_1")
    return {"id": "in_1", "object": "invoice", "metadata": params["metadata"], **changes}


# Amounts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("120.50", "EUR", 12050),
        ("120.5", "usd", 12050),
        ("1500", "JPY", 1500),
        ("1500", "KRW", 1500),
        ("1.230", "KWD", 1230),
        ("0.01", "GBP", 1),
    ],
)
def test_amounts_use_the_currency_exponent(amount: str, currency: str, minor: int) -> None:
    assert to_minor_units(Decimal(amount), currency, "r1", "amount") == minor


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [
        ("10.50", "JPY", "more than 0 decimals"),
        ("1.005", "USD", "more than 2 decimals"),
        ("1.235", "KWD", "multiple of 0.010"),
        ("10", "EURO", "unknown currency"),
        ("10", "ZZZ", "unknown currency"),
    ],
)
def test_amounts_that_would_need_rounding_or_an_unknown_currency_fail(
    amount: str, currency: str, reason: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        to_minor_units(Decimal(amount), currency, "r1", "amount")
    assert reason in caught.value.reason
    assert caught.value.record_id == "r1"


# Customers -------------------------------------------------------------------------------------


def test_customer_params_carry_the_infor_identity_in_metadata() -> None:
    params = customer_params(make_customer(), "acme-prod")
    assert params == {
        "name": "Acme GmbH",
        "email": "ap@acme.example",
        "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "metadata": {"infor_customer_id": "C1001", "infor_tenant": "acme-prod"},
    }


def test_missing_fields_are_left_out_on_create_and_cleared_on_update() -> None:
    bare = make_customer(email=None, country=None, address_line=None, city=None, post_code=None)
    assert "email" not in customer_params(bare, "t") and "address" not in customer_params(bare, "t")
    cleared = customer_params(bare, "t", clear_missing=True)
    assert cleared["email"] == "" and cleared["address"] == ""


def test_unknown_country_is_a_validation_failure() -> None:
    with pytest.raises(ValidationFailed) as caught:
        customer_params(make_customer(country="XX"), "t")
    assert (caught.value.record_id, caught.value.field) == ("C1001", "country")


# Invoices --------------------------------------------------------------------------------------


# A moment well before the sample invoice's due date (2026-12-01).
BEFORE_DUE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_invoice_params_exclude_pending_items_and_carry_the_invoice_key() -> None:
    params = invoice_params(make_invoice(), "cus_1", now=BEFORE_DUE)
    assert params["pending_invoice_items_behavior"] == "exclude"
    assert params["auto_advance"] is False
    assert params["currency"] == "eur"
    assert params["collection_method"] == "send_invoice"
    assert params["metadata"]["infor_invoice_key"] == "100/C1001/INV-77/2026"
    assert params["metadata"]["infor_invoice_number"] == "INV-77"
    assert datetime.fromtimestamp(params["due_date"], UTC).date() == date(2026, 12, 1)
    assert "days_until_due" not in params


def test_an_overdue_invoice_is_due_in_stripe_the_next_day_and_keeps_its_infor_due_date() -> None:
    invoice = make_invoice()
    on_time = invoice_params(invoice, "cus_1", now=BEFORE_DUE)
    late = invoice_params(invoice, "cus_1", now=datetime(2026, 12, 5, 8, 0, tzinfo=UTC))
    # Stripe refuses a due_date in the past: the overdue invoice gets terms instead.
    assert "due_date" not in late and late["days_until_due"] == OVERDUE_DAYS_UNTIL_DUE == 1
    assert late["collection_method"] == "send_invoice"
    assert late["metadata"]["infor_due_date"] == on_time["metadata"]["infor_due_date"] == "2026-12-01"
    # Due within the hour counts as passed: the request and the finalize take time.
    last_hour = invoice_params(invoice, "cus_1", now=datetime(2026, 12, 1, 23, 0, 1, tzinfo=UTC))
    assert "due_date" not in last_hour
    assert "due_date" in invoice_params(invoice, "cus_1", now=datetime(2026, 12, 1, 22, 59, tzinfo=UTC))
    # Which terms are sent depends on the day, so the digest leaves them out: the same Infor invoice
    # has one digest before and after its due date, and a moved due date changes it.
    assert invoice_digest(late) == invoice_digest(on_time)
    moved = invoice_params(make_invoice(due_date=date(2026, 12, 2)), "cus_1", now=BEFORE_DUE)
    assert invoice_digest(moved) != invoice_digest(on_time)
    # ...and it is the invoice's digest from before overdue terms existed: no churn on upgrade.
    legacy = {**on_time, "metadata": {k: v for k, v in on_time["metadata"].items() if k != "infor_due_date"}}
    assert invoice_digest(on_time) == legacy
    assert invoice_digest(invoice_params(make_invoice(due_date=None), "cus_1")) == invoice_params(
        make_invoice(due_date=None), "cus_1"
    )


def test_invoice_without_due_date_gets_default_terms() -> None:
    params = invoice_params(make_invoice(due_date=None), "cus_1")
    assert params["days_until_due"] == 30 and "due_date" not in params


def test_invoice_item_bills_the_open_amount_in_minor_units() -> None:
    params = invoice_item_params(make_invoice(currency="JPY", open_amount=Decimal("4200")), "cus_1", "in_9")
    assert (params["amount"], params["currency"], params["invoice"]) == (4200, "jpy", "in_9")
    assert params["customer"] == "cus_1"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"open_amount": Decimal("-5.00")}, "open_amount"),
        ({"open_amount": Decimal("0")}, "open_amount"),
        ({"status": "paid"}, "status"),
        ({"currency": "XYZ"}, "currency"),
    ],
)
def test_invoices_that_cannot_be_billed_fail_validation(changes: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        invoice_params(make_invoice(**changes), "cus_1")
    assert caught.value.field == field
    assert caught.value.record_id == "100/C1001/INV-77/2026"


# Idempotency keys ------------------------------------------------------------------------------


def test_idempotency_key_is_stable_and_changes_with_any_input() -> None:
    key = idempotency_key("acme", "stripe_invoices", "100/C1001/INV-77/2026", "h1", "create_invoice")
    assert key == idempotency_key("acme", "stripe_invoices", "100/C1001/INV-77/2026", "h1", "create_invoice")
    others = {
        idempotency_key("other", "stripe_invoices", "100/C1001/INV-77/2026", "h1", "create_invoice"),
        idempotency_key("acme", "stripe_customers", "100/C1001/INV-77/2026", "h1", "create_invoice"),
        idempotency_key("acme", "stripe_invoices", "100/C1001/INV-78/2026", "h1", "create_invoice"),
        idempotency_key("acme", "stripe_invoices", "100/C1001/INV-77/2026", "h2", "create_invoice"),
        idempotency_key("acme", "stripe_invoices", "100/C1001/INV-77/2026", "h1", "finalize"),
    }
    assert key not in others and len(others) == 5
    assert len(key) <= 255 and "C1001" not in key


# Payments and refunds --------------------------------------------------------------------------


def paid_event(invoice: dict, amount_paid: int, currency: str = "eur") -> dict:
    paid_at = int(datetime(2026, 11, 20, 23, 30, tzinfo=UTC).timestamp())
    obj = {
        **invoice,
        "currency": currency,
        "status": "paid",
        "amount_paid": amount_paid,
        "status_transitions": {"paid_at": paid_at},
    }
    return {
        "id": "evt_1",
        "object": "event",
        "type": "invoice.paid",
        "created": paid_at + 5,
        "data": {"object": obj},
    }


def test_invoice_paid_becomes_a_positive_ar_payment() -> None:
    payment = payment_from_event(
        paid_event(stripe_invoice(make_invoice()), 12050), dimensions=("1020", "CC1")
    )
    assert payment is not None
    assert (payment.division, payment.customer_id, payment.invoice_number, payment.invoice_year) == (
        "100",
        "C1001",
        "INV-77",
        2026,
    )
    assert payment.amount == Decimal("120.50") and payment.currency == "EUR"
    assert payment.payment_date == date(2026, 11, 20)
    assert payment.reference == "in_1"
    assert payment.dimensions == ("1020", "CC1")


def test_zero_decimal_payment_amounts_are_whole_units() -> None:
    payment = payment_from_event(paid_event(stripe_invoice(make_invoice()), 4200, "jpy"))
    assert payment is not None
    assert (payment.amount, payment.currency) == (Decimal("4200"), "JPY")


def test_other_events_and_foreign_invoices_map_to_nothing() -> None:
    invoice = stripe_invoice(make_invoice())
    assert payment_from_event({**paid_event(invoice, 100), "type": "invoice.finalized"}) is None
    assert payment_from_event(paid_event({"id": "in_2", "metadata": {}}, 100)) is None


@pytest.mark.parametrize("off_stripe", [0, 12050])
def test_invoice_paid_with_nothing_paid_through_stripe_is_flagged(off_stripe: int) -> None:
    invoice = stripe_invoice(make_invoice(), amount_paid_off_stripe=off_stripe)
    event = paid_event(invoice, 0 if not off_stripe else off_stripe)
    with pytest.raises(ValidationFailed) as caught:
        payment_from_event(event)
    assert caught.value.field == "amount_paid"


def refund_event(event_type: str, refund: dict) -> dict:
    if event_type == "charge.refunded":
        obj = {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "refunds": {"data": [refund]}}
    else:
        obj = refund
    return {
        "id": "evt_2",
        "object": "event",
        "type": event_type,
        "created": refund["created"],
        "data": {"object": obj},
    }


REFUND = {
    "id": "re_1",
    "object": "refund",
    "amount": 2050,
    "currency": "eur",
    "status": "succeeded",
    "payment_intent": "pi_1",
    "charge": "ch_1",
    "created": int(datetime(2026, 11, 21, 8, 0, tzinfo=UTC).timestamp()),
}


@pytest.mark.parametrize("event_type", ["refund.created", "charge.refunded", "charge.refund.updated"])
def test_refund_becomes_a_negative_ar_payment(event_type: str) -> None:
    event = refund_event(event_type, REFUND)
    assert refunded_payment_intent(event) == "pi_1"
    payment = refund_from_event(event, stripe_invoice(make_invoice()))
    assert payment is not None
    assert payment.amount == Decimal("-20.50") and payment.currency == "EUR"
    assert payment.reference == "re_1"
    assert payment.payment_date == date(2026, 11, 21)
    assert payment.invoice_number == "INV-77"


def test_charge_refunded_reports_its_newest_refund() -> None:
    older = {**REFUND, "id": "re_0", "amount": 100, "created": REFUND["created"] - 60}
    event = refund_event("charge.refunded", REFUND)
    event["data"]["object"]["refunds"]["data"] = [older, REFUND]
    payment = refund_from_event(event, stripe_invoice(make_invoice()))
    assert payment is not None and payment.reference == "re_1"


def test_pending_refunds_and_foreign_invoices_map_to_nothing() -> None:
    invoice = stripe_invoice(make_invoice())
    assert refund_from_event(refund_event("refund.created", {**REFUND, "status": "pending"}), invoice) is None
    assert refund_from_event(refund_event("refund.created", REFUND), {"id": "in_2", "metadata": {}}) is None
    assert (
        refund_from_event({**refund_event("refund.created", REFUND), "type": "invoice.paid"}, invoice) is None
    )


def test_invoice_metadata_without_the_infor_identity_is_flagged() -> None:
    invoice = {"id": "in_3", "metadata": {"infor_invoice_key": "100/C1001/INV-77/2026"}}
    with pytest.raises(ValidationFailed) as caught:
        refund_from_event(refund_event("refund.created", REFUND), invoice)
    assert "infor_division" in caught.value.reason
