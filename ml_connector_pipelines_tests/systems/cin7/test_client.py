"""The Cin7 client against the sandbox over HTTP; every request and answer checked against the
OpenAPI document."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ml_connector_pipelines.core.errors import AuthenticationFailed, TargetRejected
from ml_connector_pipelines.integrations.cin7.pushers import ProductCatalogue
from ml_connector_pipelines.systems.cin7.client import Cin7Client
from ml_connector_pipelines.systems.cin7.models import (
    AccountPayload,
    InvoiceLine,
    OrderLine,
    PurchaseHeader,
    PurchaseInvoicePayload,
    PurchaseOrderPayload,
    SupplierPayload,
)

from .cin7_env import Cin7Company, set_rate_limit
from .openapi_check import assert_valid


def _supplier(name: str, vendor_id: str) -> SupplierPayload:
    return SupplierPayload(
        name=name,
        currency="EUR",
        payment_term="30 days",
        account_payable="800",
        tax_rule="Tax Exempt",
        status="Active",
        attributes={"AdditionalAttribute1": vendor_id},
    )


def test_supplier_purchase_invoice_and_chart_round_trip(company: Cin7Company) -> None:
    product = company.add_products("NUT-M8")[0]
    with company.client() as cin7:
        created = cin7.create_supplier(_supplier("Acme Bolts", "V100"))
        assert created.attributes == {"AdditionalAttribute1": "V100"}
        renamed = cin7.update_supplier(SupplierPayload(id=created.id, name="Acme Bolts Ltd"))
        assert renamed.name == "Acme Bolts Ltd" and renamed.currency == "EUR"
        assert [s.id for s in cin7.suppliers(name="acme bolts")] == [created.id]
        assert cin7.supplier(created.id).name == "Acme Bolts Ltd"

        found = cin7.product_by_sku("NUT-M8")
        assert found is not None and found.id == product["ID"]
        assert cin7.product_by_sku("NO-SUCH") is None

        purchase = cin7.create_purchase(
            PurchaseHeader(supplier_id=created.id, approach="INVOICE", note="Infor PO 1")
        )
        assert purchase.status == "ORDERING" and purchase.order.status == "NOT AVAILABLE"
        line = dict(
            product_id=found.id,
            sku="NUT-M8",
            name="Hex nut",
            quantity=Decimal(3),
            price=Decimal("1.25"),
            tax=Decimal(0),
            tax_rule="Tax Exempt",
            total=Decimal("3.75"),
        )
        order = cin7.post_order(
            PurchaseOrderPayload(
                task_id=purchase.id, status="AUTHORISED", memo="m", lines=(OrderLine(**line),)
            )
        )
        assert order.status == "AUTHORISED" and order.total == Decimal("3.75")
        invoice = cin7.post_invoice(
            PurchaseInvoicePayload(
                task_id=purchase.id,
                status="AUTHORISED",
                invoice_number="INV-9",
                invoice_date="2026-11-30",
                lines=(InvoiceLine(**line, account="630"),),
            )
        )
        assert invoice.status == "AUTHORISED"
        listed = list(cin7.search_purchases("inv-9"))
        assert [p.id for p in listed] == [purchase.id] and listed[0].status == "INVOICED"
        read = cin7.purchase(purchase.id)
        assert read.note == "Infor PO 1" and read.invoice.status == "AUTHORISED"

        account = cin7.create_account(
            AccountPayload(code="6100", name="Freight", type="EXPENSE", class_="EXPENSE")
        )
        assert account.code == "6100"
        assert "6100" in {a.code for a in cin7.accounts()}
        cin7.ping()
    assert assert_valid(company.transport.exchanges) == len(company.transport.exchanges) >= 14


def test_rejections_carry_cin7s_message(company: Cin7Company) -> None:
    with company.client() as cin7:
        cin7.create_supplier(_supplier("Dup", "V1"))
        with pytest.raises(TargetRejected, match="Supplier with Name 'dup' already exists") as caught:
            cin7.create_supplier(_supplier("dup", "V2"))
        assert caught.value.status == 400
        with pytest.raises(TargetRejected, match="Account with Code '800' already exists"):
            cin7.create_account(AccountPayload(code="800", name="AP", type="CURRLIAB"))
    assert_valid(company.transport.exchanges)


def test_wrong_key_is_an_authentication_failure(company: Cin7Company) -> None:
    client = Cin7Client(company.base_url, company.account_id, "00000000-0000-0000-0000-000000000000")
    with client, pytest.raises(AuthenticationFailed) as caught:
        client.ping()
    assert caught.value.status == 403
    assert "00000000-0000" not in str(caught.value)


def test_throttling_503_is_waited_out_never_an_unknown_outcome(company: Cin7Company) -> None:
    # The sandbox at 3 calls per 1 s window; the client's own budget is far above it, so it meets 503s.
    set_rate_limit(company.sandbox, per_minute=3, window_seconds=1.0)
    with company.client(per_minute=6000) as cin7:
        for n in range(8):
            cin7.create_supplier(_supplier(f"Throttled {n}", f"T{n}"))
        assert cin7.throttled > 0
    names = sorted(s["Name"] for s in company.state()["suppliers"])
    assert names == [f"Throttled {n}" for n in range(8)]  # each exactly once
    assert_valid(company.transport.exchanges)


def test_a_runs_products_come_from_one_catalogue_page(company: Cin7Company) -> None:
    added = {p["SKU"]: p["ID"] for p in company.add_products("BOLT-1", "BOLT-2", "BOLT-3")}
    with company.client() as cin7:
        catalogue = ProductCatalogue(cin7)
        first = catalogue.resolve(["BOLT-1", "bolt-2"])  # Cin7 matches a SKU in any case
        again = catalogue.resolve(["BOLT-3", "NO-SUCH", "BOLT-1"])
        # One page held the whole catalogue: no lookup per SKU, and a missing one is known missing.
        assert cin7.requests_made == 1
    assert first["BOLT-1"].id == added["BOLT-1"] and first["bolt-2"].id == added["BOLT-2"]
    assert again["BOLT-3"].id == added["BOLT-3"] and again["NO-SUCH"] is None
