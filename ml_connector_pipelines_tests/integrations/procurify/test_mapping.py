"""Pure Procurify -> Infor mappings: reference matching and the PO / bill write models."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ml_connector_pipelines.core.errors import ValidationFailed
from ml_connector_pipelines.integrations.procurify import mapping
from ml_connector_pipelines.systems.infor.models import GLAccount, Supplier
from ml_connector_pipelines.systems.procurify.models import (
    AccountCode,
    Bill,
    Department,
    PurchaseOrder,
    Vendor,
)

DAY = date(2026, 11, 20)
UTC_ZONE = ZoneInfo("UTC")


def supplier(number: str, name: str, status: str = "active") -> Supplier:
    return Supplier(supplier_id=number, name=name, currency="EUR", status=status, modified_date=DAY)


def gl(dimension: int, account: str, text: str) -> GLAccount:
    return GLAccount(dimension=dimension, account_id=account, description=text, modified_date=DAY)


SUPPLIERS = [
    supplier("S001", "Acme GmbH"),
    supplier("S002", "Beta Ltd"),
    supplier("S003", "Twin Co"),
    supplier("S004", "Twin Co"),
    supplier("S005", "Gamma SA"),
    supplier("S006", "Dormant BV", status="inactive"),
]
ACCOUNTS = [gl(1, "4000", "Purchases"), gl(1, "5500", "Office supplies"), gl(2, "CC100", "Finance")]


def by_id(rows: list[mapping.ReferenceRow]) -> dict[str | None, mapping.ReferenceRow]:
    return {row.procurify_id: row for row in rows if row.procurify_id is not None}


def test_vendors_match_by_external_id_then_code_then_unique_name() -> None:
    vendors = [
        Vendor(id=1, name="Acme GmbH", external_id="S001"),
        Vendor(id=2, name="Beta Limited", external_id=" s002 "),
        Vendor(id=3, name="twin  co"),
        Vendor(id=4, name="GAMMA sa"),
        Vendor(id=5, name="Nobody Inc", external_id="S999"),
    ]
    rows = mapping.match_vendors(vendors, SUPPLIERS)
    found = by_id(rows)
    assert (found["1"].outcome, found["1"].matched_by, found["1"].infor_id) == (
        "match",
        "external_id",
        "S001",
    )
    assert (found["2"].outcome, found["2"].matched_by, found["2"].infor_id) == ("differs", "code", "S002")
    assert "Beta Limited" in (found["2"].detail or "")
    assert found["3"].outcome == "ambiguous" and "S003, S004" in (found["3"].detail or "")
    assert (found["4"].outcome, found["4"].matched_by, found["4"].infor_id) == ("match", "name", "S005")
    assert found["5"].outcome == "missing_in_infor"
    # The other way round: active Infor suppliers nobody in Procurify points at.
    missing = {row.infor_id for row in rows if row.outcome == "missing_in_procurify"}
    assert missing == {"S003", "S004"}


def test_account_codes_and_departments() -> None:
    codes = [
        AccountCode(id=1, code="4000", description="Purchases"),
        AccountCode(id=2, code="5500", description="Stationery"),
        AccountCode(id=3, code="6999", description="Conference fees"),
    ]
    departments = [
        Department(id=1, name="Finance team", external_id="CC100"),
        Department(id=2, name="Finance"),
        Department(id=3, name="Lab", external_id="CC999"),
    ]
    code_rows = by_id(mapping.match_account_codes(codes, ACCOUNTS))
    assert [code_rows[c].outcome for c in ("4000", "5500", "6999")] == [
        "match",
        "differs",
        "missing_in_infor",
    ]
    department_rows = by_id(mapping.match_departments(departments, ACCOUNTS, dimension=2))
    assert (department_rows["1"].outcome, department_rows["1"].matched_by) == ("differs", "external_id")
    assert (department_rows["2"].outcome, department_rows["2"].matched_by) == ("match", "name")
    assert department_rows["3"].outcome == "missing_in_infor"
    unchecked = mapping.match_departments(departments, ACCOUNTS, dimension=None)
    assert {row.outcome for row in unchecked} == {"not_checked"}


def refs(cost_centres: bool = True) -> mapping.ReferenceMap:
    return mapping.align(
        [Vendor(id=1, name="Acme GmbH", external_id="S001"), Vendor(id=9, name="Nobody", external_id="X")],
        [
            AccountCode(id=1, code="4000", description="Purchases"),
            AccountCode(id=3, code="6999", description="Fees"),
        ],
        [Department(id=1, name="Finance", external_id="CC100"), Department(id=7, name="Lab")],
        SUPPLIERS,
        ACCOUNTS,
        cost_centre_dimension=2 if cost_centres else None,
    )


def account(code_id: int = 1, code: str = "4000", department_id: int = 1) -> dict:
    return {
        "account_code": {"id": code_id, "code": code, "description": "x"},
        "department": {"id": department_id, "name": "x"},
    }


def order(
    vendor: int = 1, code: tuple[int, str] = (1, "4000"), department: int = 1, **line: object
) -> PurchaseOrder:
    return PurchaseOrder.model_validate(
        {
            "uuid": "0f0e",
            "procurify_PO": 42,
            "number": "PO-00042",
            "date": "2026-11-20T23:30:00Z",
            "state": 0,
            "pref_vendor": {"id": vendor, "name": "v"},
            "purchased_currency": {"id": 1, "name": "eur", "rate": "1"},
            "total": "30.00",
            "last_modified": "2026-11-21T08:00:00Z",
            "order_items": [
                {
                    "id": 1,
                    "PO_line_num": 1,
                    "name": "Paper",
                    "sku": "",
                    "quantity": 3.0,
                    "price": "10.00",
                    "account": account(*code, department),
                    **line,
                }
            ],
        }
    )


def test_a_po_becomes_an_infor_po_with_the_mapped_supplier_and_gl_coding() -> None:
    new, codings = mapping.purchase_order(
        order(),
        refs(),
        facility="A01",
        warehouse="100",
        default_item="NONSTOCK",
        zone=ZoneInfo("Europe/Berlin"),
    )
    assert new.supplier_id == "S001" and new.currency == "EUR" and new.external_ref == "PFY-42"
    assert new.order_date == date(2026, 11, 21)  # 23:30 UTC is already the 21st in Berlin
    assert (new.lines[0].item_number, new.lines[0].quantity, new.lines[0].unit_price) == (
        "NONSTOCK",
        Decimal("3.0"),
        Decimal("10.00"),
    )
    assert codings == (mapping.Coding("4000", "CC100"),)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"code": (3, "6999")}, "order_items[0].account_code", "missing_in_infor"),
        ({"vendor": 9}, "vendor", "missing_in_infor"),
        ({"department": 7}, "order_items[0].department", "missing_in_infor"),
        ({"quantity": 0}, "order_items[0].quantity", "not positive"),
    ],
)
def test_a_po_with_a_gap_is_refused_naming_the_field(kwargs: dict, field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        mapping.purchase_order(
            order(**kwargs), refs(), facility="A01", warehouse="100", default_item="X", zone=UTC_ZONE
        )
    assert raised.value.record_id == "PO-00042" and raised.value.field == field
    assert words in raised.value.reason


def bill(**changes: object) -> Bill:
    data = {
        "id": 7,
        "uuid": "ab-cd",
        "status": 2,
        "vendor": {"id": 1, "name": "Acme GmbH"},
        "currency": {"id": 1, "name": "EUR"},
        "invoice_number": "INV-7",
        "invoice_date": "2026-11-19T00:00:00Z",
        "due_date": "2026-12-19T00:00:00Z",
        "total_cost_with_tax": 0.1 + 0.2,
        "last_modified_datetime": datetime(2026, 11, 20, tzinfo=UTC).isoformat(),
        "items": [
            {
                "id": 1,
                "description": "Paper",
                "quantity": "3",
                "cost_allocations": [
                    {"amount": "0.10", "budget": account()},
                    {"amount": "0.20", "budget": account(department_id=7)},
                ],
            }
        ],
        **changes,
    }
    return Bill.model_validate(data)


def test_a_bill_becomes_an_ap_invoice_summed_from_its_allocations() -> None:
    invoice = mapping.ap_invoice(bill(), refs(cost_centres=False), division="AAA", zone=UTC_ZONE)
    assert invoice.amount == Decimal("0.30")  # exact, unlike the bill's float total
    assert [(line.amount, line.gl_account, line.cost_centre) for line in invoice.lines] == [
        (Decimal("0.10"), "4000", None),
        (Decimal("0.20"), "4000", None),
    ]
    assert (invoice.supplier_id, invoice.invoice_date, invoice.due_date) == (
        "S001",
        date(2026, 11, 19),
        date(2026, 12, 19),
    )


@pytest.mark.parametrize(
    ("changes", "division", "field"),
    [
        ({}, None, "division"),
        ({"invoice_number": " "}, "AAA", "invoice_number"),
        ({"invoice_date": None}, "AAA", "invoice_date"),
        ({}, "AAA", "items[0].cost_allocations[1].department"),  # department 7 has no cost centre
    ],
)
def test_a_bill_that_cannot_be_sent_names_the_field(changes: dict, division: str | None, field: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        mapping.ap_invoice(bill(**changes), refs(), division=division, zone=UTC_ZONE)
    assert raised.value.record_id == "bill/7" and raised.value.field == field
