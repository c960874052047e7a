"""Done-when check of issue 9 (M3): every call the M3 adapter makes, in every read and write it
offers, on a tenant with EXPORTMI open and one with it locked, is one the MI metadata allows: zero
unknown transactions or fields, zero missing required inputs (the simulator logs and refuses them)."""

from __future__ import annotations

import json
from decimal import Decimal

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.mi_metadata import METADATA_FILE, lookup
from ml_connector_pipelines.systems.infor.m3 import SAFE_TO_RETRY
from ml_connector_pipelines.systems.infor.models import (
    ARPayment,
    InvoiceExtension,
    NewAPInvoice,
    NewAPInvoiceLine,
    NewPurchaseOrder,
    PurchaseOrderLine,
)
from ml_connector_pipelines_tests.sandbox.m3_conformance import m3_calls, m3_violations

from .conftest import control, open_for, tenant_state, today, window

SHARED_METADATA = METADATA_FILE.parents[4] / "shared" / "contracts" / "m3-mi-metadata.json"


def test_every_retry_safe_transaction_exists() -> None:
    assert [call for call in sorted(SAFE_TO_RETRY) if lookup(*call) is None] == []


def test_the_packaged_metadata_is_the_shared_one() -> None:
    """The package carries a subset (the programs we use), copied unchanged; checked where the
    shared contracts sit beside the repository, as in CI."""
    packaged = json.loads(METADATA_FILE.read_text())["programs"]
    assert 10 <= len(packaged) < 50 and METADATA_FILE.stat().st_size < 1_000_000
    if SHARED_METADATA.exists():
        shared = json.loads(SHARED_METADATA.read_text())["programs"]
        assert {name: shared[name] for name in packaged} == packaged


def test_every_m3_flow_sends_only_calls_the_metadata_allows(server: SandboxServer, one_tenant: str) -> None:
    locked = f"LOCKED_{one_tenant}"
    control(server, "PUT", f"tenants/{locked}/config", exportmi=False)
    with open_for(server, locked, "m3") as adapter:
        adapter.ping()
        for day in window()[:3]:
            list(adapter.suppliers(day))
            list(adapter.customers(day))
            list(adapter.gl_accounts(day))

    with open_for(server, one_tenant, "m3", m3_ap_line_accounting="derive") as adapter:
        adapter.ping()
        for day in window()[:3]:
            for read in (
                "suppliers",
                "customers",
                "ap_invoices",
                "ar_invoices",
                "purchase_orders",
                "gl_accounts",
            ):
                list(getattr(adapter, read)(day))
        state = tenant_state(server, one_tenant)
        supplier, customer = state["suppliers"][0], state["customers"][0]
        assert adapter.supplier(supplier["supplier_id"]) is not None
        assert adapter.customer(customer["customer_id"]) is not None
        order = NewPurchaseOrder(
            supplier_id=supplier["supplier_id"],
            order_date=today(),
            currency=supplier["currency"],
            facility="A01",
            warehouse="100",
            external_ref=f"PO-{one_tenant}",
            lines=(
                PurchaseOrderLine(
                    line_number=1, item_number="ITEM-1", quantity=Decimal(2), unit_price=Decimal(5)
                ),
            ),
        )
        assert adapter.create_purchase_order(order) == adapter.find_purchase_order(order.external_ref)
        invoice = NewAPInvoice(
            division=state["ap_invoices"][0]["division"],
            supplier_id=supplier["supplier_id"],
            invoice_number=f"AP-{one_tenant}",
            invoice_date=today(),
            currency=supplier["currency"],
            amount=Decimal(10),
            lines=(NewAPInvoiceLine(amount=Decimal(10), gl_account="4000", po_number=None),),
        )
        assert adapter.create_ap_invoice(invoice) == adapter.find_ap_invoice(invoice)
        ar = next(i for i in state["ar_invoices"] if i["status"] == "open" and Decimal(i["open_amount"]) > 2)
        payment = ARPayment(
            division=ar["division"],
            customer_id=ar["customer_id"],
            invoice_number=ar["invoice_number"],
            invoice_year=ar["invoice_year"],
            amount=Decimal(1),
            currency=ar["currency"],
            payment_date=today(),
            reference=f"in_{one_tenant}_with_a_long_stripe_id",
            dimensions=("1910",),
        )
        posted = adapter.add_ar_payment(payment)
        assert adapter.add_ar_payment(payment) == posted  # a replay posts nothing
        assert [p.amount for p in adapter.ar_payments(payment.reference)] == [Decimal(1)]
        key = f"{ar['division']}/{ar['customer_id']}/{ar['invoice_number']}/{ar['invoice_year']}"
        stamp = InvoiceExtension(
            invoice_key=key, status="paid", external_id="in_1", updated_at=today().isoformat()
        )
        assert adapter.write_invoice_extension("ar", key, stamp)
        assert adapter.read_invoice_extension("ar", key) == stamp

    calls = m3_calls(server)
    assert {"EXPORTMI/Select", "CRS692MI/LstByType", "ARS040MI/AddBatchLine", "CRS620MI/LstSuppliers"} <= set(
        calls
    )
    assert [v for v in m3_violations(server) if v["tenant"] in (one_tenant, locked)] == []
    print(f"{sum(calls.values())} M3 calls over {len(calls)} transactions, 0 refused by the metadata")


# The demo's own M3 calls are checked against the metadata by platform/test_demo.py (one demo run).
