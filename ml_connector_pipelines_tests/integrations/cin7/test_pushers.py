"""Infor -> Cin7 pushers end to end: Infor records from the sandbox seed, Cin7 over HTTP, a real
state store; assertions on what the Cin7 simulator holds afterwards."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ml_connector_pipelines.core.audit import AuditWriter
from ml_connector_pipelines.core.http import RetryPolicy
from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.sync import SyncSession
from ml_connector_pipelines.integrations.cin7.mapping import Cin7Settings, po_marker
from ml_connector_pipelines.integrations.cin7.pushers import (
    CHART,
    INVOICES,
    PURCHASES,
    SUPPLIERS,
    ChartAlignment,
    InvoiceSync,
    ProductCatalogue,
    PurchaseSync,
    SupplierSync,
)
from ml_connector_pipelines.integrations.kit.dependencies import Dependencies
from ml_connector_pipelines.integrations.kit.pushers import push_one
from ml_connector_pipelines.sandbox.infor.seed import ITEMS, generate
from ml_connector_pipelines.systems.cin7.models import SupplierPayload
from ml_connector_pipelines.systems.infor.models import APInvoice, GLAccount, PurchaseOrder, Supplier
from ml_connector_pipelines_tests.systems.cin7.cin7_env import Cin7Company
from ml_connector_pipelines_tests.systems.cin7.openapi_check import assert_valid

TENANT = "acme"
DAY = date(2026, 11, 30)
FAST_RETRY = RetryPolicy(max_attempts=30, base_delay=0.05, max_delay=0.5, max_total=30)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    return store


@dataclass
class InforData:
    suppliers: list[Supplier]
    orders: list[PurchaseOrder]
    gl: list[GLAccount]
    by_id: dict[str, Supplier] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {s.supplier_id: s for s in self.suppliers}

    def invoices_for(self, orders: list[PurchaseOrder], extra: int = 0) -> list[APInvoice]:
        """One AP invoice per order for its exact total, plus ``extra`` that fit no purchase."""
        invoices = []
        for n, order in enumerate(orders):
            total = sum((line.quantity * line.unit_price).quantize(Decimal("0.01")) for line in order.lines)
            invoices.append(_invoice(order.supplier_id, f"AP{n}", total, order.currency))
        for n in range(extra):  # for the supplier of the last PO, which no invoice here is for
            last = self.orders[-1]
            invoices.append(_invoice(last.supplier_id, f"AP-X{n}", Decimal("0.42"), last.currency))
        return invoices


def _invoice(supplier_id: str, number: str, amount: Decimal, currency: str) -> APInvoice:
    return APInvoice(
        division="AAA",
        supplier_id=supplier_id,
        invoice_number=number,
        invoice_year=2026,
        invoice_date=DAY,
        due_date=date(2026, 12, 30),
        currency=currency,
        amount=amount,
        status="open",
        modified_date=DAY,
    )


def infor(name: str, suppliers: int = 12, orders: int = 6) -> InforData:
    data = generate(7, name, DAY, {"suppliers": suppliers, "purchase_orders": orders})
    return InforData(
        suppliers=[Supplier.model_validate(s) for s in data.suppliers],
        orders=[PurchaseOrder.model_validate({**o, "status": "open"}) for o in data.purchase_orders],
        gl=[GLAccount.model_validate(g) for g in data.gl_accounts],
    )


class Run:
    """One run of the Cin7 pushers, as the assets will drive them."""

    def __init__(self, store: StateStore, company: Cin7Company, run_id: str, settings: Cin7Settings) -> None:
        self.client = company.client(retry=FAST_RETRY)
        self.settings = settings

        def session(flow: str) -> SyncSession:
            return SyncSession(store, tenant=TENANT, flow=flow, run_id=run_id, partition=None)

        self.sessions = {flow: session(flow) for flow in (SUPPLIERS, PURCHASES, INVOICES, CHART)}
        products = ProductCatalogue(self.client)
        self.suppliers = SupplierSync(self.sessions[SUPPLIERS], self.client, settings)
        self.data: InforData | None = None
        self.purchases = PurchaseSync(
            self.sessions[PURCHASES],
            self.client,
            settings,
            self.suppliers,
            self._infor_supplier,
            Dependencies(Ledger(store), TENANT),
            products,
        )
        self.invoices = InvoiceSync(self.sessions[INVOICES], self.client, settings, products)
        self.chart = ChartAlignment(self.sessions[CHART], self.client, settings)

    def _infor_supplier(self, supplier_id: str) -> Supplier | None:
        return self.data.by_id.get(supplier_id) if self.data else None

    def push(self, data: InforData, invoices: list[APInvoice]) -> dict[str, Counter]:
        self.data = data
        # Through the kit's per-record error policy, as the push assets run them.
        for supplier in data.suppliers:
            push_one(self.suppliers, self.sessions[SUPPLIERS], supplier, supplier.supplier_id)
        for order in data.orders:
            push_one(self.purchases, self.sessions[PURCHASES], order, order.po_number)
        for invoice in invoices:
            push_one(self.invoices, self.sessions[INVOICES], invoice, invoice.invoice_key)
        self.client.close()
        return {flow: Counter(r.action for r in s.results) for flow, s in self.sessions.items()}


def test_suppliers_matched_by_vendor_id_else_name_linked_else_created(
    store: StateStore, company: Cin7Company
) -> None:
    data = infor("suppliers")
    first, second = data.suppliers[0], data.suppliers[1]
    with company.client() as cin7:  # what a person set up in Cin7 before the connector
        by_id = cin7.create_supplier(
            SupplierPayload(
                name="Renamed in Cin7",
                currency=first.currency,
                payment_term="COD",
                account_payable="800",
                tax_rule="Tax Exempt",
                status="Active",
                attributes={"AdditionalAttribute1": first.supplier_id},
            )
        )
        by_name = cin7.create_supplier(
            SupplierPayload(
                name=second.name.upper(),
                currency=second.currency,
                payment_term="COD",
                account_payable="800",
                tax_rule="Tax Exempt",
                status="Active",
            )
        )
    counts = Run(store, company, "run-1", Cin7Settings()).push(data, [])[SUPPLIERS]

    held = company.state()["suppliers"]
    assert len(held) == len(data.suppliers)  # two linked, the rest created: no duplicates
    vendor_ids = Counter(s["AdditionalAttribute1"] for s in held)
    assert set(vendor_ids) == {s.supplier_id for s in data.suppliers} and set(vendor_ids.values()) == {1}
    ledger = {e.source_id: e for e in store_ledger(store, SUPPLIERS)}
    assert ledger[first.supplier_id].target_id == by_id.id
    assert ledger[first.supplier_id].extra["matched_by"] == "vendor_id"
    assert ledger[second.supplier_id].target_id == by_name.id
    assert ledger[second.supplier_id].extra["matched_by"] == "name"
    assert {e.extra["matched_by"] for e in ledger.values()} == {"vendor_id", "name", "none"}
    assert counts["linked"] == 2 and counts["created"] == len(data.suppliers) - 2
    # The person's own data in Cin7 was not overwritten by the link, only the vendor id added.
    linked = next(s for s in held if s["ID"] == by_name.id)
    assert linked["PaymentTerm"] == "COD" and linked["AdditionalAttribute1"] == second.supplier_id

    again = Run(store, company, "run-2", Cin7Settings()).push(data, [])[SUPPLIERS]
    assert again == Counter({"skipped": len(data.suppliers)})
    assert_valid(company.transport.exchanges)


def _flags(store: StateStore, flow: str, source_id: str) -> list:
    return [e for e in AuditWriter(store).history(TENANT, flow, source_id) if e.action == "flagged"]


def store_ledger(store: StateStore, flow: str):
    from ml_connector_pipelines.core.ledger import Ledger

    return Ledger(store).entries(TENANT, flow)


def test_ambiguous_supplier_is_flagged_with_the_reason(store: StateStore, company: Cin7Company) -> None:
    data = infor("ambiguous", suppliers=2, orders=0)
    target = data.suppliers[0]
    with company.client() as cin7:
        cin7.create_supplier(
            SupplierPayload(
                name=target.name,
                currency="EUR",
                payment_term="COD",
                account_payable="800",
                tax_rule="Tax Exempt",
                status="Active",
                attributes={"AdditionalAttribute1": "OTHER-9"},
            )
        )
    counts = Run(store, company, "run-1", Cin7Settings()).push(data, [])[SUPPLIERS]
    assert counts["flagged"] == 1
    event = [
        e for e in AuditWriter(store).history(TENANT, SUPPLIERS, target.supplier_id) if e.action == "flagged"
    ]
    assert "OTHER-9" in event[0].reason


def test_purchases_with_order_lines_then_invoices_on_them(store: StateStore, company: Cin7Company) -> None:
    data = infor("purchases", suppliers=8, orders=6)
    company.add_products(*(sku for sku, _ in ITEMS))
    invoices = data.invoices_for(data.orders[:4], extra=1)
    counts = Run(store, company, "run-1", Cin7Settings()).push(data, invoices)

    assert counts[PURCHASES]["created"] == 6
    purchases = company.state()["purchases"]
    by_note = {p["Note"]: p for p in purchases}
    assert sorted(by_note) == sorted(po_marker(o.po_number) for o in data.orders)
    for order in data.orders:
        held = by_note[po_marker(order.po_number)]
        assert held["Order"]["Status"] == "AUTHORISED"
        assert [(line["SKU"], Decimal(str(line["Quantity"]))) for line in held["Order"]["Lines"]] == [
            (line.item_number, line.quantity) for line in order.lines
        ]
    assert counts[INVOICES]["created"] == 4 and counts[INVOICES]["flagged"] == 1
    invoiced = {p["Note"]: p["Invoice"] for p in purchases if p["Invoice"]["Status"] == "AUTHORISED"}
    assert sorted(invoiced) == sorted(po_marker(o.po_number) for o in data.orders[:4])
    assert {i["InvoiceNumber"] for i in invoiced.values()} == {"AP0", "AP1", "AP2", "AP3"}
    assert all(line["Account"] == "630" for i in invoiced.values() for line in i["Lines"])
    flagged = _flags(store, INVOICES, invoices[-1].invoice_key)
    assert len(flagged) == 1 and "fits no Cin7 purchase" in flagged[0].reason

    again = Run(store, company, "run-2", Cin7Settings()).push(data, invoices)
    assert again[PURCHASES] == Counter({"skipped": 6})
    assert again[INVOICES]["skipped"] == 4
    assert len(company.state()["purchases"]) == 6
    assert_valid(company.transport.exchanges)


def test_po_with_an_item_unknown_to_cin7_is_flagged_naming_the_line(
    store: StateStore, company: Cin7Company
) -> None:
    data = infor("unknown-item", suppliers=4, orders=2)
    counts = Run(store, company, "run-1", Cin7Settings()).push(data, [])  # no products in Cin7
    assert counts[PURCHASES]["flagged"] == 2 and company.state()["purchases"] == []
    event = _flags(store, PURCHASES, data.orders[0].po_number)[0]
    assert "lines[1].item_number" in event.reason and "not a product SKU" in event.reason


@pytest.mark.parametrize("policy", ["create", "flag"])
def test_chart_alignment(store: StateStore, company: Cin7Company, policy: str) -> None:
    gl = [
        GLAccount(dimension=1, account_id="800", description="Accounts Payable", modified_date=DAY),
        GLAccount(dimension=1, account_id="630", description="Stock", modified_date=DAY),
        GLAccount(dimension=1, account_id="7010", description="Freight in", modified_date=DAY),
        GLAccount(dimension=2, account_id="CC100", description="Cost centre", modified_date=DAY),
    ]
    run = Run(store, company, "run-1", Cin7Settings(chart_policy=policy))
    rows = {row.code: row for row in run.chart.run(gl)}
    assert rows["800"].outcome == "matching"
    assert rows["630"].outcome == "differing" and rows["630"].cin7_name == "Inventory"
    chart = {a["Code"]: a for a in company.state()["chart"]}
    if policy == "create":
        assert rows["7010"].outcome == "created"
        assert chart["7010"]["Name"] == "Freight in" and chart["7010"]["Type"] == "EXPENSE"
    else:
        assert rows["7010"].outcome == "flagged" and "7010" not in chart
    assert "CC100" not in rows
    assert_valid(company.transport.exchanges)
