"""checks.py on DataFrames built by `to_frame`, so the checks see the dtypes the extracts produce."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd

from ml_connector_pipelines.integrations.frames import from_frame, to_frame
from ml_connector_pipelines.integrations.kit import checks
from ml_connector_pipelines.systems.infor.models import (
    APInvoice,
    ARInvoice,
    BankAccount,
    PurchaseOrder,
    PurchaseOrderLine,
    Supplier,
)

DAY = date(2026, 3, 2)
AP_KEY = ["division", "supplier_id", "invoice_number", "invoice_year"]
AR_KEY = ["division", "customer_id", "invoice_number", "invoice_year"]


def supplier(supplier_id: str, **changes: Any) -> Supplier:
    account = BankAccount(
        kind="iban", currency="EUR", account_holder="Acme GmbH", iban="DE89370400440532013000"
    )
    fields = {
        "supplier_id": supplier_id,
        "name": "Acme GmbH",
        "currency": "EUR",
        "status": "active",
        "country": "DE",
        "bank_account": account,
        "modified_date": DAY,
    }
    return Supplier.model_validate({**fields, **changes})


def ap_invoice(number: str, **changes: Any) -> APInvoice:
    fields = {
        "division": "AAA",
        "supplier_id": "S00001",
        "invoice_number": number,
        "invoice_year": 2026,
        "invoice_date": DAY,
        "currency": "EUR",
        "amount": Decimal("100.00"),
        "status": "open",
        "modified_date": DAY,
    }
    return APInvoice.model_validate({**fields, **changes})


def ar_invoice(number: str, **changes: Any) -> ARInvoice:
    fields = {
        "division": "AAA",
        "customer_id": "C00001",
        "invoice_number": number,
        "invoice_year": 2026,
        "invoice_date": DAY,
        "currency": "USD",
        "amount": Decimal("50.00"),
        "open_amount": Decimal("50.00"),
        "status": "open",
        "modified_date": DAY,
    }
    return ARInvoice.model_validate({**fields, **changes})


def test_required_fields_names_records_with_empty_blank_or_missing_values() -> None:
    frame = to_frame(
        [supplier("S1"), supplier("S2", name=""), supplier("S3", currency="  "), supplier("S4")],
        Supplier,
    )
    frame.loc[3, "name"] = pd.NA  # a value the source did not send at all
    outcome = checks.required_fields(frame, ["supplier_id"], ["supplier_id", "name", "currency"])
    # One record's problem is quarantined, not a broken extract (issue 16 item 4): not blocking.
    assert (outcome.passed, outcome.blocking) == (False, False)
    assert outcome.failing_records == ["S2", "S3", "S4"]
    missing = checks.missing_required(frame, ["supplier_id"], ["supplier_id", "name", "currency"])
    assert [(record, field) for _, record, field in missing] == [
        ("S2", "name"),
        ("S3", "currency"),
        ("S4", "name"),
    ]

    clean = checks.required_fields(to_frame([supplier("S1")], Supplier), ["supplier_id"], ["name"])
    assert clean.passed and clean.failing_records == []


def test_required_fields_covers_numbers_too() -> None:
    frame = to_frame([ap_invoice("1"), ap_invoice("2")], APInvoice)
    frame.loc[1, "amount"] = None
    outcome = checks.required_fields(frame, AP_KEY, ["amount", "invoice_year"])
    assert outcome.failing_records == ["AAA/S00001/2/2026"]


def test_unique_keys_names_every_copy_of_a_duplicated_composite_key() -> None:
    frame = to_frame(
        [ap_invoice("1"), ap_invoice("2"), ap_invoice("1"), ap_invoice("1", invoice_year=2025)], APInvoice
    )
    outcome = checks.unique_keys(frame, AP_KEY)
    assert (outcome.passed, outcome.blocking) == (False, True)
    # The same number in another year is another invoice; only the true duplicates are named.
    assert outcome.failing_records == ["AAA/S00001/1/2026", "AAA/S00001/1/2026"]
    assert checks.unique_keys(frame.iloc[[0, 1, 3]], AP_KEY).passed


def test_valid_currencies_checks_every_currency_column_and_skips_absent_ones() -> None:
    no_account = supplier("S3", bank_account=None)
    bad_account = supplier(
        "S4",
        bank_account=BankAccount(kind="email", currency="EURO", account_holder="X", email="a@b.example"),
    )
    records = [
        supplier("S1"),
        supplier("S2", currency="eur"),
        no_account,
        bad_account,
        supplier("S5", currency="JPY"),
    ]
    frame = to_frame(records, Supplier)
    outcome = checks.valid_currencies(frame, ["supplier_id"], ["currency", "bank_account.currency"])
    assert (outcome.passed, outcome.blocking) == (False, False)
    # Lower case is not an ISO 4217 code; a supplier without a bank account has nothing to check.
    assert outcome.failing_records == ["S2", "S4"]


def test_non_negative_names_negative_amounts_in_any_listed_column() -> None:
    frame = to_frame(
        [
            ar_invoice("1"),
            ar_invoice("2", amount=Decimal("-0.01")),
            ar_invoice("3", open_amount=Decimal("-5")),
            ar_invoice("4", open_amount=Decimal("0")),
        ],
        ARInvoice,
    )
    outcome = checks.non_negative(frame, AR_KEY, ["amount", "open_amount"])
    assert (outcome.passed, outcome.blocking) == (False, False)
    assert outcome.failing_records == ["AAA/C00001/2/2026", "AAA/C00001/3/2026"]
    assert checks.non_negative(frame, AR_KEY, ["amount"]).failing_records == ["AAA/C00001/2/2026"]


def test_every_check_passes_an_empty_extract() -> None:
    frame = to_frame([], APInvoice)
    outcomes = [
        checks.required_fields(frame, AP_KEY, ["currency", "amount"]),
        checks.unique_keys(frame, AP_KEY),
        checks.valid_currencies(frame, AP_KEY, ["currency"]),
        checks.non_negative(frame, AP_KEY, ["amount"]),
    ]
    assert all(o.passed and o.failing_records == [] for o in outcomes)


def test_failing_records_are_capped_so_metadata_stays_small() -> None:
    frame = to_frame([ap_invoice(str(n), currency="XXQ") for n in range(80)], APInvoice)
    outcome = checks.valid_currencies(frame, AP_KEY, ["currency"])
    assert not outcome.passed
    assert len(outcome.failing_records) == 50


def test_frames_round_trip_nested_models_and_exact_decimals() -> None:
    order = PurchaseOrder(
        po_number="4000001",
        supplier_id="S1",
        order_date=DAY,
        currency="GBP",
        status="open",
        lines=(
            PurchaseOrderLine(
                line_number=1, item_number="A", quantity=Decimal("3"), unit_price=Decimal("0.10")
            ),
        ),
        modified_date=DAY,
    )
    suppliers = [supplier("S1"), supplier("S2", bank_account=None, country=None)]
    invoices = [ap_invoice("1", amount=Decimal("12345678901234.57"), due_date=None)]
    for records, model in ((suppliers, Supplier), ([order], PurchaseOrder), (invoices, APInvoice)):
        assert from_frame(to_frame(records, model), model) == records
    assert from_frame(to_frame([], Supplier), Supplier) == []
