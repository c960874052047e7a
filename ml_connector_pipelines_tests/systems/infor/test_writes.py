"""Writes over real HTTP: each must land in the simulator's state, business errors come back typed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.core.errors import OutcomeUnknown, TargetRejected, ValidationFailed
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.infor.adapter import InforAdapter
from ml_connector_pipelines.systems.infor.m3 import M3TransactionError
from ml_connector_pipelines.systems.infor.m3_adapter import payment_key
from ml_connector_pipelines.systems.infor.models import (
    ARPayment,
    InvoiceExtension,
    NewAPInvoice,
    NewAPInvoiceLine,
    NewPurchaseOrder,
    PurchaseOrderLine,
)
from ml_connector_pipelines.systems.infor.syteline import INSERT, ido_change

from .conftest import ON_PURPOSE, control, open_for, tenant_state, today, window


def seeded(server: SandboxServer, adapter: InforAdapter, tenant: str) -> dict[str, Any]:
    list(adapter.gl_accounts(window()[0]))  # the first call creates and seeds the tenant
    return tenant_state(server, tenant)


def test_purchase_order_is_created_once(server: SandboxServer, product: str, tenant: str) -> None:
    with open_for(server, tenant, product) as adapter:
        supplier = seeded(server, adapter, tenant)["suppliers"][0]
        order = NewPurchaseOrder(
            supplier_id=supplier["supplier_id"],
            order_date=today(),
            currency=supplier["currency"],
            facility="F01",
            warehouse="W01",
            external_ref=f"PRC-{tenant}-1",
            lines=(
                PurchaseOrderLine(
                    line_number=1, item_number="ITEM-1", description="Widget", quantity=3, unit_price=9.5
                ),
                PurchaseOrderLine(
                    line_number=2, item_number="ITEM-2", quantity=Decimal("1.5"), unit_price=100
                ),
            ),
        )
        po_number = adapter.create_purchase_order(order)
        # A rerun (e.g. after a timeout) finds the order by its external ref instead of adding another.
        assert adapter.create_purchase_order(order) == po_number
        assert adapter.find_purchase_order(order.external_ref) == po_number
        assert adapter.find_purchase_order(f"PRC-{tenant}-unknown") is None
        extracted = {po.po_number: po for po in adapter.purchase_orders(today())}
    held = [po for po in tenant_state(server, tenant)["purchase_orders"] if po["po_number"] == po_number]
    assert len(held) == 1
    assert held[0]["supplier_id"] == supplier["supplier_id"]
    assert [(line["item_number"], Decimal(str(line["quantity"]))) for line in held[0]["lines"]] == [
        ("ITEM-1", Decimal(3)),
        ("ITEM-2", Decimal("1.5")),
    ]
    assert extracted[po_number].lines == order.lines


def test_ap_invoice_lands_open_once_however_often_it_is_sent(
    server: SandboxServer, product: str, tenant: str
) -> None:
    # APS450MI/AddLine has no accounting inputs: M3 codes such lines by its own rules ("derive").
    with open_for(server, tenant, product, m3_ap_line_accounting="derive") as adapter:
        state = seeded(server, adapter, tenant)
        supplier = state["suppliers"][0]
        division = state["ap_invoices"][0]["division"]
        account, cost_centre = (
            next(raw["account_id"] for raw in state["gl_accounts"] if raw["dimension"] == dimension)
            for dimension in (1, 2)
        )
        invoice = NewAPInvoice(
            division=division,
            supplier_id=supplier["supplier_id"],
            invoice_number=f"INV-{tenant}",
            invoice_date=today(),
            currency=supplier["currency"],
            amount=Decimal("150.25"),
            lines=(
                NewAPInvoiceLine(amount=Decimal("100.00"), gl_account=account, cost_centre=cost_centre),
                NewAPInvoiceLine(amount=Decimal("50.25"), gl_account=account),
            ),
        )
        assert adapter.find_ap_invoice(invoice) is None
        created = adapter.create_ap_invoice(invoice)
        assert created and adapter.find_ap_invoice(invoice) == created
        assert adapter.create_ap_invoice(invoice) == created  # a replay books nothing twice
    held = [
        raw
        for raw in tenant_state(server, tenant)["ap_invoices"]
        if raw["invoice_number"] == invoice.invoice_number and raw["supplier_id"] == invoice.supplier_id
    ]
    assert len(held) == 1
    assert held[0]["status"] == "open"
    assert Decimal(str(held[0]["amount"])) == invoice.amount


def test_m3_ap_invoice_with_a_gl_account_is_refused_by_default(
    server: SandboxServer, one_tenant: str
) -> None:
    with open_for(server, one_tenant, "m3") as adapter:
        state = seeded(server, adapter, one_tenant)
        supplier = state["suppliers"][0]
        invoice = NewAPInvoice(
            division=state["ap_invoices"][0]["division"],
            supplier_id=supplier["supplier_id"],
            invoice_number=f"GL-{one_tenant}",
            invoice_date=today(),
            currency=supplier["currency"],
            amount=Decimal("10"),
            lines=(NewAPInvoiceLine(amount=Decimal("10"), gl_account="4000"),),
        )
        with pytest.raises(ValidationFailed, match=r"lines\[0\]\.gl_account"):
            adapter.create_ap_invoice(invoice)
    assert tenant_state(server, one_tenant)["m3_calls"].get("APS450MI/AddHead") is None


def test_ap_invoice_whose_lines_do_not_add_up_is_refused(
    server: SandboxServer, product: str, tenant: str
) -> None:
    with open_for(server, tenant, product) as adapter:
        state = seeded(server, adapter, tenant)
        supplier = state["suppliers"][0]
        invoice = NewAPInvoice(
            division=state["ap_invoices"][0]["division"],
            supplier_id=supplier["supplier_id"],
            invoice_number=f"BAD-{tenant}",
            invoice_date=today(),
            currency=supplier["currency"],
            amount=Decimal("10"),
            lines=(NewAPInvoiceLine(amount=Decimal("9")),),
        )
        # M3 refuses it in APS455MI validation; for SyteLine the adapter checks before sending.
        expected = M3TransactionError if product == "m3" else ValidationFailed
        with pytest.raises(expected):
            adapter.create_ap_invoice(invoice)
    held = tenant_state(server, tenant)["ap_invoices"]
    assert not [raw for raw in held if raw["invoice_number"] == invoice.invoice_number]


def held_reference(product: str, payment: ARPayment) -> str:
    """What Infor keeps of the reference: M3 holds its 15-character key in CKNO."""
    return payment_key(payment.reference) if product == "m3" else payment.reference


def test_ar_payment_is_applied_and_found_again(server: SandboxServer, product: str, tenant: str) -> None:
    with open_for(server, tenant, product) as adapter:
        state = seeded(server, adapter, tenant)
        invoice = next(
            raw
            for raw in state["ar_invoices"]
            if raw["status"] == "open" and Decimal(str(raw["open_amount"])) > 1
        )
        payment = ARPayment(
            division=invoice["division"],
            customer_id=invoice["customer_id"],
            invoice_number=invoice["invoice_number"],
            invoice_year=invoice["invoice_year"],
            amount=Decimal("1.00"),
            currency=invoice["currency"],
            payment_date=today(),
            reference=f"pi_{tenant}",
            dimensions=("1910", "CC1"),
        )
        payment_id = adapter.add_ar_payment(payment)
        assert adapter.find_ar_payment(payment.reference) == payment_id
        assert adapter.find_ar_payment(f"pi_{tenant}_unknown") is None
    after = tenant_state(server, tenant)
    paid = next(raw for raw in after["ar_invoices"] if raw["invoice_number"] == invoice["invoice_number"])
    assert Decimal(str(paid["open_amount"])) == Decimal(str(invoice["open_amount"])) - 1
    held = [raw for raw in after["ar_payments"] if raw["reference"] == held_reference(product, payment)]
    assert len(held) == 1 and Decimal(str(held[0]["amount"])) == payment.amount


def test_ar_payment_for_an_unknown_invoice_is_a_typed_rejection(
    server: SandboxServer, product: str, tenant: str
) -> None:
    with open_for(server, tenant, product) as adapter:
        invoice = seeded(server, adapter, tenant)["ar_invoices"][0]
        payment = ARPayment(
            division=invoice["division"],
            customer_id=invoice["customer_id"],
            invoice_number="NO-SUCH-INVOICE",
            invoice_year=invoice["invoice_year"],
            amount=Decimal("5"),
            currency=invoice["currency"],
            payment_date=today(),
            reference=f"pi_bad_{tenant}",
        )
        with pytest.raises(TargetRejected) as caught:
            adapter.add_ar_payment(payment)
    if product == "m3":
        assert isinstance(caught.value, M3TransactionError)
        assert caught.value.error_type == "ServerReturnedNOK"
        assert caught.value.status == 200
    assert not [
        raw
        for raw in tenant_state(server, tenant)["ar_payments"]
        if raw["reference"] == held_reference(product, payment)
    ]


def test_m3_request_level_errors_are_typed(server: SandboxServer, one_tenant: str) -> None:
    with open_for(server, ON_PURPOSE + one_tenant, "m3") as adapter:
        with pytest.raises(M3TransactionError) as unknown:
            adapter.m3.execute("NOSUCHMI", "LstNothing")
        with pytest.raises(M3TransactionError) as missing:
            adapter.m3.execute("CRS692MI", "LstByAccHolder", BKTP="2")
    assert unknown.value.status == 400 and unknown.value.program == "NOSUCHMI"
    assert missing.value.status == 400 and missing.value.transaction == "LstByAccHolder"


def test_syteline_needs_its_mongoose_config(server: SandboxServer, one_tenant: str) -> None:
    with pytest.raises(ValueError, match="mongoose_config"):
        open_for(server, one_tenant, "syteline", mongoose_config="")
    with open_for(server, one_tenant, "syteline") as adapter:
        with pytest.raises(TargetRejected) as caught:
            adapter.http.get(
                "/CSI/IDORequestService/ido/load/SLVendors",
                params={"properties": "VendNum"},
                headers={"X-Infor-MongooseConfig": ""},
            )
    assert caught.value.status == 400


@pytest.mark.parametrize("kind", ["ap", "ar"])
def test_invoice_extension_only_moves_forward(
    server: SandboxServer, product: str, tenant: str, kind: str
) -> None:
    with open_for(server, tenant, product) as adapter:
        invoice = seeded(server, adapter, tenant)[f"{kind}_invoices"][0]
        party = invoice["supplier_id"] if kind == "ap" else invoice["customer_id"]
        key = f"{invoice['division']}/{party}/{invoice['invoice_number']}/{invoice['invoice_year']}"

        def extension(status: str, at: str) -> InvoiceExtension:
            return InvoiceExtension(invoice_key=key, status=status, external_id="tr-1", updated_at=at)

        assert adapter.read_invoice_extension(kind, key) is None
        assert adapter.write_invoice_extension(
            kind, key, extension("processing", "2026-01-02T10:00:00+00:00")
        )
        assert adapter.write_invoice_extension(kind, key, extension("sent", "2026-01-02T10:05:00+00:00"))
        # A late event (older timestamp) and a repeat of the same one never overwrite.
        assert not adapter.write_invoice_extension(
            kind, key, extension("processing", "2026-01-02T10:01:00+00:00")
        )
        assert not adapter.write_invoice_extension(kind, key, extension("sent", "2026-01-02T10:05:00+00:00"))
        assert adapter.read_invoice_extension(kind, key) == extension("sent", "2026-01-02T10:05:00+00:00")
    held = [raw for raw in tenant_state(server, tenant)["extensions"] if raw["invoice_key"] == key]
    assert [(raw["status"], raw["external_id"], raw["updated_at"]) for raw in held] == [
        ("sent", "tr-1", "2026-01-02T10:05:00+00:00")
    ]


def test_a_lost_answer_to_an_insert_is_outcome_unknown(
    server: SandboxServer, product: str, tenant: str
) -> None:
    """The target committed, the gateway answered 504: never retried blindly, the caller looks it up."""
    with open_for(server, tenant, product) as adapter:
        state = seeded(server, adapter, tenant)
        supplier = state["suppliers"][0]
        invoice = NewAPInvoice(
            division=state["ap_invoices"][0]["division"],
            supplier_id=supplier["supplier_id"],
            invoice_number=f"LOST-{tenant}",
            invoice_date=today(),
            currency=supplier["currency"],
            amount=Decimal("10"),
            lines=(NewAPInvoiceLine(amount=Decimal("10")),),
        )
        adapter.auth.headers()  # hold a token before every gateway answer is lost
        every_answer_lost = {
            "profile": "none",
            "overrides": {"commit_then_timeout": 1.0},
            "systems": ["infor"],
        }
        httpx.put(f"{server.url}/_sandbox/faults", json=every_answer_lost).raise_for_status()
        try:
            before = adapter.requests_made
            with pytest.raises(OutcomeUnknown):
                if product == "m3":  # APS450MI/AddHead is not in the table of retry-safe transactions
                    adapter.m3.execute(
                        "APS450MI",
                        "AddHead",
                        DIVI=invoice.division,
                        SUNO=invoice.supplier_id,
                        IVDT=today().strftime("%Y%m%d"),
                        SINO=invoice.invoice_number,
                        CUAM="10",
                    )
                else:  # the insert itself (create_ap_invoice first looks the voucher up)
                    voucher = {
                        "Site": invoice.division,
                        "VendNum": invoice.supplier_id,
                        "InvNum": invoice.invoice_number,
                        "InvYear": today().year,
                        "InvDate": today().isoformat(),
                        "CurrCode": invoice.currency,
                        "InvAmt": "10",
                        "Stat": "O",
                    }
                    adapter.ido.update("SLAptrxs", [ido_change(INSERT, voucher)])
            assert adapter.requests_made == before + 1  # sent once, not retried
        finally:
            server.set_faults("none")
        if product == "m3":  # committed once
            batches = adapter.m3.execute(
                "APS450MI",
                "LstInvBySupInv",
                SPYN=invoice.supplier_id,
                SUNO=invoice.supplier_id,
                SINO=invoice.invoice_number,
                DIVI=invoice.division,
            )
            assert len(batches) == 1
    after = tenant_state(server, tenant)
    if product == "syteline":
        assert [raw for raw in after["ap_invoices"] if raw["invoice_number"] == invoice.invoice_number]


def test_m3_ar_payment_posts_once_when_its_answers_are_lost(server: SandboxServer, one_tenant: str) -> None:
    """A third of M3's answers lost after the commit: ARS040MI head, line and control are retried (their
    keys are ours, so a repeat answers "already exists"), and a replay of the whole payment posts
    nothing more."""
    with open_for(server, one_tenant, "m3") as adapter:
        state = seeded(server, adapter, one_tenant)
        invoice = next(
            i for i in state["ar_invoices"] if i["status"] == "open" and Decimal(i["open_amount"]) > 2
        )
        payment = ARPayment(
            division=invoice["division"],
            customer_id=invoice["customer_id"],
            invoice_number=invoice["invoice_number"],
            invoice_year=invoice["invoice_year"],
            amount=Decimal(2),
            currency=invoice["currency"],
            payment_date=today(),
            reference=f"in_lost_answers_{one_tenant}",
        )
        adapter.auth.headers()
        half_lost = {
            "profile": "none",
            "seed": 3,
            "overrides": {"commit_then_timeout": 0.3},
            "systems": ["infor"],
        }
        httpx.put(f"{server.url}/_sandbox/faults", json=half_lost).raise_for_status()
        try:
            posted = adapter.add_ar_payment(payment)
            assert adapter.add_ar_payment(payment) == posted  # the replay after a lost answer
        finally:
            server.set_faults("none")
        assert adapter.find_ar_payment(payment.reference) == posted
        assert [p.amount for p in adapter.ar_payments(payment.reference)] == [Decimal(2)]
    after = tenant_state(server, one_tenant)
    held = [p for p in after["ar_payments"] if p["reference"] == payment_key(payment.reference)]
    assert len(held) == 1
    paid = next(i for i in after["ar_invoices"] if i["invoice_number"] == invoice["invoice_number"])
    assert Decimal(paid["open_amount"]) == Decimal(invoice["open_amount"]) - 2
    assert after["m3_calls"]["ARS040MI/AddBatchLine"] >= 2  # a line really was sent more than once


def test_m3_ar_payment_posts_once_on_a_tenant_that_locks_exportmi(
    server: SandboxServer, one_tenant: str
) -> None:
    with open_for(server, one_tenant, "m3") as adapter:
        invoice = next(
            i
            for i in seeded(server, adapter, one_tenant)["ar_invoices"]
            if i["status"] == "open" and Decimal(i["open_amount"]) > 2
        )
        control(server, "PUT", f"tenants/{one_tenant}/config", exportmi=False)
        payment = ARPayment(
            division=invoice["division"],
            customer_id=invoice["customer_id"],
            invoice_number=invoice["invoice_number"],
            invoice_year=invoice["invoice_year"],
            amount=Decimal(1),
            currency=invoice["currency"],
            payment_date=today(),
            reference=f"in_locked_{one_tenant}",
        )
        assert adapter.find_ar_payment(payment.reference) is None
        posted = adapter.add_ar_payment(payment)
        # Found through ARS200MI/SearchInvoices + GetInvoice, with what M3 holds.
        assert adapter.find_ar_payment(payment.reference) == posted
        [held_posting] = adapter.ar_payments(payment.reference)
        assert (held_posting.amount, held_posting.invoice_number) == (Decimal(1), invoice["invoice_number"])
        assert adapter.add_ar_payment(payment) == posted  # a repeat after a lost answer posts nothing
    held = tenant_state(server, one_tenant)["ar_payments"]
    assert len([p for p in held if p["reference"] == payment_key(payment.reference)]) == 1
