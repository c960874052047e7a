"""Pure Infor -> Cin7 mappings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ml_connector_pipelines.core.errors import ValidationFailed
from ml_connector_pipelines.integrations.cin7.mapping import (
    Cin7Settings,
    PurchaseCandidate,
    align_chart,
    invoice_payload,
    match_supplier,
    order_lines,
    order_total,
    pick_purchase,
    purchase_header,
    supplier_payload,
)
from ml_connector_pipelines.systems.cin7.models import Product, Supplier
from ml_connector_pipelines.systems.infor.models import (
    APInvoice,
    GLAccount,
    PurchaseOrder,
    PurchaseOrderLine,
)
from ml_connector_pipelines.systems.infor.models import Supplier as InforSupplier

DAY = date(2026, 11, 30)
SETTINGS = Cin7Settings()


def _supplier(supplier_id: str = "V100", name: str = "Acme Bolts", status: str = "active") -> InforSupplier:
    return InforSupplier(supplier_id=supplier_id, name=name, currency="eur", status=status, modified_date=DAY)


def _cin7(id_: str, name: str, vendor_id: str | None = None) -> Supplier:
    data = {"ID": id_, "Name": name}
    if vendor_id:
        data["AdditionalAttribute1"] = vendor_id
    return Supplier.model_validate(data)


def _po(*lines: tuple[str, str, str], number: str = "4000001") -> PurchaseOrder:
    return PurchaseOrder(
        po_number=number,
        supplier_id="V100",
        order_date=DAY,
        currency="EUR",
        status="open",
        lines=tuple(
            PurchaseOrderLine(line_number=n, item_number=sku, quantity=Decimal(q), unit_price=Decimal(p))
            for n, (sku, q, p) in enumerate(lines, start=1)
        ),
        modified_date=DAY,
    )


def _invoice(amount: str, supplier_id: str = "V100", status: str = "open") -> APInvoice:
    return APInvoice(
        division="AAA",
        supplier_id=supplier_id,
        invoice_number="INV-7",
        invoice_year=2026,
        invoice_date=DAY,
        due_date=date(2026, 12, 30),
        currency="EUR",
        amount=Decimal(amount),
        status=status,
        modified_date=DAY,
    )


PRODUCTS = {
    "NUT-M8": Product.model_validate({"ID": "p1", "SKU": "NUT-M8", "Name": "Nut", "InventoryAccount": "630"}),
    "BOLT": Product.model_validate({"ID": "p2", "SKU": "BOLT", "Name": "Bolt"}),
}


def test_supplier_payload_carries_the_vendor_id_and_tenant_defaults() -> None:
    wire = supplier_payload(_supplier(status="inactive"), SETTINGS).to_wire()
    assert wire == {
        "Name": "Acme Bolts",
        "Currency": "EUR",
        "PaymentTerm": "30 days",
        "AccountPayable": "800",
        "TaxRule": "Tax Exempt",
        "Status": "Deprecated",
        "AdditionalAttribute1": "V100",
    }
    other = Cin7Settings.from_config({"cin7_vendor_id_attribute": "AdditionalAttribute4"})
    assert supplier_payload(_supplier(), other).to_wire()["AdditionalAttribute4"] == "V100"


@pytest.mark.parametrize(("name", "field"), [("  ", "name"), ("x" * 257, "name")])
def test_bad_supplier_names_are_named(name: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        supplier_payload(_supplier(name=name), SETTINGS)
    assert (caught.value.record_id, caught.value.field) == ("V100", field)


def test_settings_reject_unknown_choices() -> None:
    with pytest.raises(ValueError, match="cin7_approach"):
        Cin7Settings.from_config({"cin7_approach": "ORDER"})
    with pytest.raises(ValueError, match="cin7_vendor_id_attribute"):
        Cin7Settings.from_config({"cin7_vendor_id_attribute": "Comments"})


def test_match_by_vendor_id_first_then_by_name() -> None:
    pool = [_cin7("a", "Acme Bolts"), _cin7("b", "Renamed Acme", vendor_id="V100")]
    assert match_supplier(_supplier(), pool, "AdditionalAttribute1").target_id == "b"
    by_name = match_supplier(_supplier(), [_cin7("a", " acme  bolts ".strip())], "AdditionalAttribute1")
    assert (by_name.target_id, by_name.how) == ("a", "name")
    assert match_supplier(_supplier(), [_cin7("c", "Other")], "AdditionalAttribute1").how == "none"


def test_ambiguous_matches_are_not_linked() -> None:
    twice = [_cin7("a", "X", vendor_id="V100"), _cin7("b", "Y", vendor_id="V100")]
    assert match_supplier(_supplier(), twice, "AdditionalAttribute1").how == "ambiguous"
    taken = match_supplier(_supplier(), [_cin7("a", "Acme Bolts", vendor_id="V999")], "AdditionalAttribute1")
    assert (taken.target_id, taken.how) == (None, "ambiguous")
    assert "V999" in taken.reason


def test_order_lines_need_cin7_products_and_total_to_the_cent() -> None:
    lines = order_lines(_po(("NUT-M8", "3", "1.335"), ("BOLT", "1", "2")), PRODUCTS, SETTINGS)
    assert [line.to_wire()["Total"] for line in lines] == [4.01, 2.0]
    assert lines[0].to_wire()["ProductID"] == "p1" and lines[0].tax_rule == "Tax Exempt"
    assert order_total(lines) == Decimal("6.01")
    header = purchase_header(_po(("NUT-M8", "1", "1")), "cin7-supplier", SETTINGS).to_wire()
    assert header == {
        "SupplierID": "cin7-supplier",
        "Approach": "INVOICE",
        "TaxRule": "Tax Exempt",
        "Note": "Infor PO 4000001",
    }
    with pytest.raises(ValidationFailed) as caught:
        order_lines(_po(("NUT-M8", "1", "1"), ("GHOST", "1", "1")), PRODUCTS, SETTINGS)
    assert caught.value.field == "lines[2].item_number" and "GHOST" in caught.value.reason
    with pytest.raises(ValidationFailed, match="quantity"):
        order_lines(_po(("NUT-M8", "0.5", "1")), PRODUCTS, SETTINGS)


def _candidate(po: str, total: str, supplier: str = "V100") -> PurchaseCandidate:
    line = {
        "ProductID": "p1",
        "SKU": "NUT-M8",
        "Name": "Nut",
        "Quantity": 2,
        "Price": 5.0,
        "Discount": 0,
        "Tax": 0,
        "TaxRule": "Tax Exempt",
        "Total": float(total),
    }
    return PurchaseCandidate(po, f"task-{po}", supplier, "EUR", Decimal(total), (line,))


def test_invoice_goes_to_the_purchase_with_the_same_total() -> None:
    pool = [_candidate("2", "10.00"), _candidate("1", "99.00"), _candidate("3", "10.00", supplier="V2")]
    assert pick_purchase(_invoice("10"), pool, SETTINGS).po_number == "2"
    with pytest.raises(ValidationFailed) as caught:
        pick_purchase(_invoice("11"), pool, SETTINGS)
    assert caught.value.field == "amount" and "PO 1: 99.00" in caught.value.reason
    by_supplier = Cin7Settings(invoice_match="supplier")
    assert pick_purchase(_invoice("11"), pool, by_supplier).po_number == "1"  # the oldest
    assert pick_purchase(_invoice("10", supplier_id="V9"), pool, SETTINGS) is None  # not a PO invoice


def test_invoice_lines_copy_the_order_and_book_to_the_inventory_account() -> None:
    payload = invoice_payload(_invoice("10"), _candidate("2", "10.00"), {"p1": "630"}, SETTINGS).to_wire()
    assert payload["TaskID"] == "task-2" and payload["InvoiceNumber"] == "INV-7"
    assert payload["InvoiceDate"] == "2026-11-30" and payload["Status"] == "AUTHORISED"
    assert payload["Lines"][0]["Account"] == "630" and payload["Lines"][0]["Total"] == 10.0
    fixed = Cin7Settings(invoice_account="429")
    assert (
        invoice_payload(_invoice("10"), _candidate("2", "10"), {}, fixed).to_wire()["Lines"][0]["Account"]
        == "429"
    )
    with pytest.raises(ValidationFailed, match="cin7_invoice_account"):
        invoice_payload(_invoice("10"), _candidate("2", "10"), {}, SETTINGS)


def test_chart_alignment_rows() -> None:
    gl = [
        GLAccount(dimension=1, account_id="800", description="Accounts  payable", modified_date=DAY),
        GLAccount(dimension=1, account_id="630", description="Stock on hand", modified_date=DAY),
        GLAccount(dimension=1, account_id="7010", description="Freight", modified_date=DAY),
        GLAccount(dimension=1, account_id="X" * 51, description="Too long", modified_date=DAY),
        GLAccount(dimension=2, account_id="CC100", description="Cost centre", modified_date=DAY),
    ]
    rows = align_chart(gl, {"800": "Accounts Payable", "630": "Inventory"}, SETTINGS)
    assert [(r.code, r.status) for r in rows] == [
        ("630", "differing"),
        ("7010", "missing"),
        ("800", "matching"),
        ("X" * 51, "invalid"),
    ]
    assert "Stock on hand" in rows[0].reason and "Inventory" in rows[0].reason
