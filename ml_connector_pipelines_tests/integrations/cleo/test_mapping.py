"""Pure Cleo mappings: Infor PO -> 850, AR invoice -> 810, 810 -> AP invoice, supplier -> connection."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ml_connector_pipelines.core.errors import ValidationFailed
from ml_connector_pipelines.integrations.cleo.mapping import (
    OrderedPO,
    ap_invoice_from_810,
    ar_invoice_810,
    connection_differences,
    connection_for,
    control_number_of,
    file_name,
    local_party,
    purchase_order_850,
    trading_partners,
)
from ml_connector_pipelines.systems.cleo.models import Connection, TradingPartner
from ml_connector_pipelines.systems.cleo.x12 import Charge, Invoice810, Line
from ml_connector_pipelines.systems.infor.models import ARInvoice, PurchaseOrder, PurchaseOrderLine, Supplier

PARTNER = TradingPartner(
    alias="ACME", isa_id="ACMEEDI", supplier_id="S1", gl_account="4000", cost_centre="CC1"
)
ORDER = PurchaseOrder(
    po_number="4000001",
    supplier_id="S1",
    order_date=date(2026, 11, 1),
    currency="EUR",
    status="open",
    warehouse="100",
    lines=(
        PurchaseOrderLine(
            line_number=1,
            item_number="BRG-6204",
            description="Bearing",
            quantity=Decimal(3),
            unit_price=Decimal("2.50"),
        ),
        PurchaseOrderLine(
            line_number=2, item_number="NUT-M8", quantity=Decimal(10), unit_price=Decimal("0.333")
        ),
    ),
    modified_date=date(2026, 11, 1),
)


def test_purchase_order_maps_lines_item_numbers_and_warehouse() -> None:
    document = purchase_order_850(ORDER, PARTNER)
    assert (document.po_number, document.po_date, document.currency, document.vendor_number) == (
        "4000001", date(2026, 11, 1), "EUR", "S1"
    )  # fmt: skip
    assert [(li.line_id, li.quantity, li.unit, li.unit_price, li.buyer_part) for li in document.lines] == [
        ("1", Decimal(3), "EA", Decimal("2.50"), "BRG-6204"),
        ("2", Decimal(10), "EA", Decimal("0.333"), "NUT-M8"),
    ]
    assert document.parties[0].entity == "ST" and document.parties[0].id == "100"
    assert purchase_order_850(ORDER, PARTNER, purpose="05").purpose == "05"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": ()}, "lines"),
        ({"po_number": "P" * 23}, "po_number"),
        (
            {
                "lines": (
                    PurchaseOrderLine(
                        line_number=7, item_number="X", quantity=Decimal(0), unit_price=Decimal(1)
                    ),
                )
            },
            "lines[7].quantity",
        ),
    ],
)
def test_a_bad_purchase_order_names_its_field(change: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        purchase_order_850(ORDER.model_copy(update=change), PARTNER)
    assert info.value.record_id == ORDER.po_number or info.value.field == field
    assert info.value.field == field


def test_ar_invoice_is_one_line_for_its_amount() -> None:
    invoice = ARInvoice(
        division="AAA",
        customer_id="C1",
        invoice_number="5000001",
        invoice_year=2026,
        invoice_date=date(2026, 11, 2),
        due_date=date(2026, 12, 2),
        currency="USD",
        amount=Decimal("120.40"),
        open_amount=Decimal("120.40"),
        status="open",
        modified_date=date(2026, 11, 2),
    )
    document = ar_invoice_810(invoice, PARTNER, "Customer One")
    assert document.total == Decimal("120.40") and document.lines[0].amount == Decimal("120.40")
    assert document.net_due_date == date(2026, 12, 2) and document.parties[0].id == "C1"
    with pytest.raises(ValidationFailed, match="more than 2 decimals"):
        ar_invoice_810(invoice.model_copy(update={"amount": Decimal("1.005")}), PARTNER)


def test_810_becomes_an_ap_invoice_on_the_partners_accounts_with_po_lines() -> None:
    lines = (
        Line("1", Decimal(3), "EA", Decimal("2.50"), buyer_part="BRG-6204"),
        Line("9", Decimal(10), "EA", Decimal("0.333"), buyer_part="NUT-M8"),
        Line("2", Decimal(1), "EA", Decimal("1.00")),  # no item: matched by line id
    )
    total = Decimal("7.50") + Decimal("3.33") + Decimal("1.00") + Decimal("5.00")
    invoice = Invoice810("INV-1", date(2026, 11, 5), lines, total, po_number="4000001", net_days=30,
                         charges=(Charge("C", "D240", Decimal("5.00"), "FREIGHT"),))  # fmt: skip
    new = ap_invoice_from_810(invoice, PARTNER, "AAA", OrderedPO.of(ORDER))
    assert (new.supplier_id, new.currency, new.amount, new.due_date) == (
        "S1",
        "EUR",
        total,
        date(2026, 12, 5),
    )
    assert [(li.po_line, li.gl_account, li.cost_centre) for li in new.lines] == [
        (1, "4000", "CC1"), (2, "4000", "CC1"), (2, "4000", "CC1"), (None, "4000", "CC1")
    ]  # fmt: skip
    assert sum(li.amount for li in new.lines) == new.amount  # the 0.333 x 10 rounding is absorbed
    ledger_round_trip = OrderedPO.from_ledger("4000001", OrderedPO.of(ORDER).ledger_extra())
    assert ledger_round_trip == OrderedPO.of(ORDER)


def test_an_810_without_currency_or_po_cannot_become_an_ap_invoice() -> None:
    invoice = Invoice810("INV-2", date(2026, 11, 5), (Line("1", Decimal(1), "EA", Decimal(1)),), Decimal(1))
    with pytest.raises(ValidationFailed) as info:
        ap_invoice_from_810(invoice, PARTNER, "AAA", None)
    assert info.value.field == "CUR02"


def test_supplier_and_connection_differences() -> None:
    supplier = Supplier(
        supplier_id="S1", name="Acme Ltd", currency="EUR", status="active", modified_date=date(2026, 1, 1)
    )
    wanted = connection_for(PARTNER, supplier, "BUYER")
    assert wanted.body() == {"alias": "ACME", "type": "sftp", "localName": "BUYER", "partnerName": "Acme Ltd"}
    current = Connection(alias="ACME", type="as2", localName="BUYER", partnerName="ACME LIMITED")
    assert connection_differences(current, wanted) == {
        "type": ("as2", "sftp"),
        "partnerName": ("ACME LIMITED", "Acme Ltd"),
    }


def test_config_and_file_names() -> None:
    assert local_party({}, "t-acme_01").id == "TACME01"
    assert local_party({"cleo_isa_id": "MYID", "cleo_isa_qualifier": "01"}, "x").key() == "01:MYID"
    with pytest.raises(ValueError, match=r"cleo_trading_partners\[0\]\.isa_id"):
        trading_partners({"cleo_trading_partners": [{"alias": "A"}]})
    name = file_name("850", "PO/1 2", 42)
    assert name == "850_PO_1_2_000000042.x12" and control_number_of(name) == 42
