"""Cleo flows end to end over HTTP (REST transport) and SFTP against the sandbox, with a real state
store: POs become 850s that pyx12 reads cleanly, supplier 810s become Infor AP invoices once each
with a 997 back, malformed files are flagged with their position, and nothing happens twice."""

from __future__ import annotations

import io
from decimal import Decimal

import httpx
from pyx12.x12file import X12Reader

from ml_connector_pipelines.integrations.cleo.pushers import (
    ACKS_997_IN,
    ACKS_997_OUT,
    AP_INVOICES_810_IN,
    INVOICES_810,
    PURCHASE_ORDERS_850,
    InboundProcessor,
    InvoicePusher,
    MailboxPoller,
    PurchaseOrderPusher,
    ReceivedFile,
    TradingPartnerSync,
    consume_inbox,
)
from ml_connector_pipelines.systems.cleo.models import Connection, TradingPartner
from ml_connector_pipelines.systems.cleo.x12 import parse_810
from ml_connector_pipelines.systems.cleo.x12.syntax import tokenize
from ml_connector_pipelines.systems.infor.models import ARInvoice

from .conftest import CleoTenant


def set_up_partner(t: CleoTenant) -> None:
    supplier = t.infor.supplier(t.order.supplier_id)
    result = TradingPartnerSync(t.session("cleo_trading_partners"), t.cleo, "BUYER").sync(t.partner, supplier)
    assert result.action == "created", result.reason


def poll_and_process(t: CleoTenant, run_id: str) -> list:
    MailboxPoller(t.state.inbox, t.name, t.edi()).poll(t.partner)
    processor = InboundProcessor(t.sessions(run_id), t.edi(), lambda: t.infor, t.division)
    return consume_inbox(t.state, t.name, processor, run_id)


def ap_invoices(t: CleoTenant, invoice_number: str) -> list[dict]:
    return [i for i in t.infor_state()["ap_invoices"] if i["invoice_number"] == invoice_number]


def test_purchase_order_becomes_one_850_and_the_partners_997_completes_it(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    set_up_partner(t)
    pusher = PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850), t.edi())
    result = pusher.sync(t.order)
    assert result.action == "created", result.reason

    [sent] = t.folder("upload")
    assert sent["name"] == f"850_{t.order.po_number}_000000001.x12"
    assert result.target_id == f"{sent['name']}#000000001"
    reader = X12Reader(io.StringIO(sent["content"]))
    assert list(reader) and reader.pop_errors() == []
    _, segments = tokenize(sent["content"])
    po1 = [(s.get(1), Decimal(s.get(2)), Decimal(s.get(4)), s.get(7)) for s in segments if s.id == "PO1"]
    assert po1 == [(str(li.line_number), li.quantity, li.unit_price, li.item_number) for li in t.order.lines]

    # Same PO again (a replayed partition): nothing is uploaded.
    again = PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850, "run-2"), t.edi()).sync(t.order)
    assert again.action == "skipped" and len(t.folder("upload")) == 1

    # The partner's 997 arrives in the download folder and completes the PO's ledger row.
    [ack] = t.folder("download")
    assert ack["name"].startswith("997_000000001_")
    results = poll_and_process(t, "run-3")
    assert [(r.action, r.reason) for r in results] == [("status", f"{PURCHASE_ORDERS_850} accepted")]
    entry = t.state.ledger.get(t.name, PURCHASE_ORDERS_850, t.order.po_number)
    assert entry.status == "done" and entry.extra["ack"] == "A"
    assert t.folder("download") == []


def test_supplier_810s_become_ap_invoices_once_with_a_997_back(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    set_up_partner(t)
    assert PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850), t.edi()).sync(t.order).action == "created"
    poll_and_process(t, "run-ack")  # the 997 for the 850

    lines = t.invoice_lines()
    total = sum(Decimal(li["quantity"]) * Decimal(li["unit_price"]) for li in lines) + Decimal("12.50")
    charges = [{"code": "D240", "amount": "12.50", "description": "FREIGHT"}]
    t.drop_810(invoice_number="INV-1", po_number=t.order.po_number, lines=lines, charges=charges, net_days=30)
    t.drop_810(invoice_number="INV-2", po_number=t.order.po_number, lines=lines, malformed="bad_quantity")
    t.drop_810(invoice_number="INV-3", po_number="NO-SUCH-PO", lines=lines)
    t.drop_810(
        invoice_number="INV-4", po_number=t.order.po_number, lines=lines, malformed="bad_segment_count"
    )

    results = poll_and_process(t, "run-1")
    by_source = {r.source_id: r for r in results}
    assert t.folder("download") == []  # stored in the inbox, then deleted in Cleo

    good = by_source[f"{t.order.supplier_id}/INV-1"]
    assert good.action == "created", good.reason
    [invoice] = ap_invoices(t, "INV-1")
    assert Decimal(invoice["amount"]) == total and invoice["supplier_id"] == t.order.supplier_id
    assert {line["po_number"] for line in invoice["lines"]} == {t.order.po_number, None}

    malformed = next(r for r in results if "INV-2" in r.source_id or "malformed 810" in (r.reason or ""))
    assert malformed.action == "flagged"
    assert "IT1 segment" in malformed.reason and "element 02" in malformed.reason
    unknown = by_source[f"{t.order.supplier_id}/INV-3"]
    assert unknown.action == "flagged" and "unknown PO 'NO-SUCH-PO'" in unknown.reason
    broken = next(r for r in results if r.action == "flagged" and "SE segment" in (r.reason or ""))
    assert "element 01" in broken.reason
    assert ap_invoices(t, "INV-2") == [] and ap_invoices(t, "INV-3") == [] and ap_invoices(t, "INV-4") == []

    # Every 810 file got its 997: accepted, or rejected with AK codes.
    acks = [f["content"] for f in t.folder("upload") if f["name"].startswith("997_")]
    assert len(acks) == 4
    assert sum("AK5*A~" in a for a in acks) == 2 and sum("AK5*R*5~" in a for a in acks) == 2
    assert any("AK3*IT1*" in a and "AK4*2**6*1O~" in a for a in acks)
    # The raw text of the malformed file is kept in the inbox.
    payloads = [ReceivedFile.from_event(e) for e in _all_events(t)]
    assert any("IT1*1*1O*" in p.content for p in payloads)

    # Re-polling and replaying every stored file creates nothing twice.
    before_acks = len(t.folder("upload"))
    replayed = InboundProcessor(t.sessions("run-2"), t.edi(), lambda: t.infor, t.division)
    for received in payloads:
        replayed.process(received)
    poll_and_process(t, "run-3")
    assert len(ap_invoices(t, "INV-1")) == 1
    assert len(t.folder("upload")) == before_acks
    # The supplier sends the same invoice again in a new interchange: still one AP invoice.
    t.drop_810(invoice_number="INV-1", po_number=t.order.po_number, lines=lines, charges=charges, net_days=30)
    again = poll_and_process(t, "run-4")
    assert [r.action for r in again if r.source_id == f"{t.order.supplier_id}/INV-1"] == ["skipped"]
    assert len(ap_invoices(t, "INV-1")) == 1


def _all_events(t: CleoTenant) -> list:
    import sqlalchemy as sa

    from ml_connector_pipelines.core.tables import inbox

    with t.state.store.session() as conn:
        ids = [row.id for row in conn.execute(sa.select(inbox.c.id).where(inbox.c.tenant == t.name))]
    return [t.state.inbox.get(i) for i in ids]


def test_a_rejected_850_flags_the_purchase_order_with_the_ak_codes(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    set_up_partner(t)
    assert PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850), t.edi()).sync(t.order).action == "created"
    [ack] = t.folder("download")
    # Replace the partner's 997 by a rejection of the same group.
    rejection = (
        ack["content"]
        .replace("AK5*A~", "AK3*PO1*7**8~\nAK4*2**6*X~\nAK5*R*5~")
        .replace("AK9*A*1*1*1~", "AK9*R*1*1*0~")
    )
    rejection = rejection.replace("\nSE*6*", "\nSE*8*")
    url = f"{t.sandbox.url}/_sandbox/cleo/accounts/{t.name}/mailboxes/{t.partner.alias}/files"
    httpx.post(url, params={"name": ack["name"]}, content=rejection.encode(), timeout=30).raise_for_status()
    results = poll_and_process(t, "run-2")
    assert [r.action for r in results] == ["status"]
    entry = t.state.ledger.get(t.name, PURCHASE_ORDERS_850, t.order.po_number)
    assert entry.status == "flagged"
    assert "AK3 PO1 at 7 code 8" in entry.reason and "AK4 element 02 code 6 'X'" in entry.reason


def test_files_from_unknown_partners_or_not_x12_are_flagged_and_kept(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    set_up_partner(t)
    t.drop_810(invoice_number="JUNK", lines=[], malformed="not_x12")
    results = poll_and_process(t, "run-1")
    assert [(r.action, r.reason) for r in results] == [
        ("flagged", "file is not X12; expected an 810 or a 997")
    ]
    assert t.state.ledger.get(t.name, AP_INVOICES_810_IN, results[0].source_id).status == "flagged"
    assert {ACKS_997_OUT, ACKS_997_IN}  # flows exist for acks either way


def test_ar_invoices_of_edi_customers_go_out_as_810s_once(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    raw = next(i for i in t.infor_state()["ar_invoices"] if i["status"] == "open")
    invoice = ARInvoice.model_validate(raw)
    customer = TradingPartner(
        alias=f"CUS-{invoice.customer_id}",
        isa_id=f"CUS{invoice.customer_id}",
        customer_id=invoice.customer_id,
        transport=t.partner.transport,
    )
    t.cleo.create_connection(Connection(alias=customer.alias, type="sftp"))
    edi = t.edi()
    edi.partners.append(customer)
    names = {invoice.customer_id: "Customer"}
    result = InvoicePusher(t.session(INVOICES_810), edi, names.__getitem__).sync(invoice)
    assert result.action == "created", result.reason
    mailbox = t.cleo_state()["mailboxes"][customer.alias]
    [sent] = mailbox["upload"]
    reader = X12Reader(io.StringIO(sent["content"]))
    assert list(reader) and reader.pop_errors() == []
    [received] = parse_810(sent["content"])
    assert (
        received.document.total == invoice.amount
        and received.document.invoice_number == invoice.invoice_number
    )
    assert (
        InvoicePusher(t.session(INVOICES_810, "run-2"), edi, names.__getitem__).sync(invoice).action
        == "skipped"
    )

    # The customer's 997 completes the invoice's ledger row; other customers' invoices are skipped.
    MailboxPoller(t.state.inbox, t.name, edi).poll(customer)
    processor = InboundProcessor(t.sessions("run-3"), edi, lambda: t.infor, t.division)
    consume_inbox(t.state, t.name, processor, "run-3")
    assert t.state.ledger.get(t.name, INVOICES_810, invoice.invoice_key).extra["ack"] == "A"
    other = invoice.model_copy(update={"customer_id": "NOT-EDI"})
    skipped = InvoicePusher(t.session(INVOICES_810), edi, names.__getitem__).sync(other)
    assert (skipped.action, skipped.reason) == ("skipped", "customer is not an EDI trading partner")
