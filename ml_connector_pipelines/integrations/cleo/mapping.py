"""Pure mappings between Infor records, X12 documents and Cleo connections (no I/O).

Tenant config read here: ``cleo_trading_partners`` (list of `TradingPartner`), ``cleo_isa_qualifier``
(default "ZZ") and ``cleo_isa_id`` (our interchange id; default the tenant name, upper case, 15
characters at most), ``cleo_usage`` ("P" production or "T" test; default "P"), ``cleo_local_name``
(the connections' localName; default the ISA id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import ValidationError

from ...core.errors import ValidationFailed
from ...systems.cleo.models import Connection, TradingPartner
from ...systems.cleo.x12 import Envelope, Invoice810, Line, Party, PartyName, PurchaseOrder850
from ...systems.infor.models import (
    ARInvoice,
    NewAPInvoice,
    NewAPInvoiceLine,
    PurchaseOrder,
    Supplier,
)

CENT = Decimal("0.01")
PO_NUMBER_MAX = 22  # BEG03 / BIG02 / BIG04
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


# Tenant config ------------------------------------------------------------------------------------


def trading_partners(config: Mapping[str, Any]) -> list[TradingPartner]:
    """The tenant's partners; a bad entry is a config error naming its position and field."""
    partners: list[TradingPartner] = []
    for index, raw in enumerate(config.get("cleo_trading_partners") or []):
        try:
            partners.append(TradingPartner.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"cleo_trading_partners[{index}].{field}: {first['msg']}") from exc
    return partners


def local_party(config: Mapping[str, Any], tenant: str) -> Party:
    default_id = re.sub(r"[^A-Z0-9]", "", tenant.upper())[:15] or "ML-CONNECTOR"
    return Party(str(config.get("cleo_isa_qualifier") or "ZZ"), str(config.get("cleo_isa_id") or default_id))


def envelope_to(partner: TradingPartner, local: Party, usage: str = "P") -> Envelope:
    return Envelope(local, Party(partner.isa_qualifier, partner.isa_id), usage=usage)


def partner_for_supplier(partners: Iterable[TradingPartner], supplier_id: str) -> TradingPartner | None:
    return next((p for p in partners if p.supplier_id == supplier_id), None)


def partner_for_customer(partners: Iterable[TradingPartner], customer_id: str) -> TradingPartner | None:
    return next((p for p in partners if p.customer_id == customer_id), None)


def partner_for_sender(partners: Iterable[TradingPartner], sender: Party) -> TradingPartner | None:
    return next((p for p in partners if (p.isa_qualifier, p.isa_id) == (sender.qualifier, sender.id)), None)


# File names: the PO / invoice number and the ISA control number, so a listing finds a lost upload.


def safe_name(value: str) -> str:
    return _UNSAFE.sub("_", value)


def file_name(transaction_set: str, number: str, control_number: int) -> str:
    return f"{transaction_set}_{safe_name(number)}_{control_number:09d}.x12"


def file_prefix(transaction_set: str, number: str) -> str:
    return f"{transaction_set}_{safe_name(number)}_"


def control_number_of(name: str) -> int | None:
    match = re.search(r"_(\d{9})\.x12$", name)
    return int(match.group(1)) if match else None


def target_id(name: str, control_number: int) -> str:
    """The ledger's target id of an uploaded document: file name and ISA control number."""
    return f"{name}#{control_number:09d}"


# Infor -> X12 -------------------------------------------------------------------------------------


def purchase_order_850(
    order: PurchaseOrder, partner: TradingPartner, purpose: str = "00"
) -> PurchaseOrder850:
    record = order.po_number
    if len(order.po_number) > PO_NUMBER_MAX:
        raise ValidationFailed(record, "po_number", f"is longer than {PO_NUMBER_MAX} characters (BEG03)")
    if not order.lines:
        raise ValidationFailed(record, "lines", "an 850 needs at least one line")
    lines = []
    for line in order.lines:
        where = f"lines[{line.line_number}]"
        if line.quantity <= 0:
            raise ValidationFailed(record, f"{where}.quantity", f"must be positive, is {line.quantity}")
        if line.unit_price < 0:
            raise ValidationFailed(record, f"{where}.unit_price", f"cannot be negative, is {line.unit_price}")
        lines.append(
            Line(
                str(line.line_number),
                line.quantity,
                partner.unit,
                line.unit_price,
                buyer_part=line.item_number,
                description=line.description or "",
            )
        )
    parties = (PartyName("ST", order.warehouse, "92", order.warehouse),) if order.warehouse else ()
    return PurchaseOrder850(
        po_number=order.po_number,
        po_date=order.order_date,
        lines=tuple(lines),
        purpose=purpose,
        currency=order.currency,
        vendor_number=order.supplier_id,
        parties=parties,
    )


def ar_invoice_810(invoice: ARInvoice, partner: TradingPartner, customer_name: str = "") -> Invoice810:
    """An AR invoice as one IT1 line (Infor's AR ledger carries no lines): the invoice amount."""
    record = invoice.invoice_key
    if len(invoice.invoice_number) > PO_NUMBER_MAX:
        raise ValidationFailed(record, "invoice_number", f"is longer than {PO_NUMBER_MAX} characters (BIG02)")
    if invoice.amount <= 0:
        raise ValidationFailed(record, "amount", f"an 810 invoices a positive amount, is {invoice.amount}")
    if invoice.amount != invoice.amount.quantize(CENT):
        raise ValidationFailed(record, "amount", f"{invoice.amount} has more than 2 decimals (TDS01)")
    line = Line(
        "1", Decimal(1), partner.unit, invoice.amount, description=f"Invoice {invoice.invoice_number}"
    )
    return Invoice810(
        invoice_number=invoice.invoice_number,
        invoice_date=invoice.invoice_date,
        lines=(line,),
        total=invoice.amount,
        currency=invoice.currency,
        net_due_date=invoice.due_date,
        parties=(PartyName("BT", customer_name, "92", invoice.customer_id),),
    )


# X12 -> Infor -------------------------------------------------------------------------------------


def due_date_of(invoice: Invoice810) -> date | None:
    if invoice.net_due_date:
        return invoice.net_due_date
    if invoice.net_days is not None:
        return invoice.invoice_date + timedelta(days=invoice.net_days)
    return None


@dataclass(frozen=True)
class OrderedPO:
    """What an 810 is checked against: a PO we sent as an 850 (kept in that flow's ledger)."""

    po_number: str
    supplier_id: str
    currency: str
    lines: tuple[tuple[int, str], ...]  # (line number, item number)

    @classmethod
    def of(cls, order: PurchaseOrder) -> OrderedPO:
        lines = tuple((line.line_number, line.item_number) for line in order.lines)
        return cls(order.po_number, order.supplier_id, order.currency, lines)

    def ledger_extra(self) -> dict[str, Any]:
        return {"po_supplier": self.supplier_id, "po_currency": self.currency, "po_lines": list(self.lines)}

    @classmethod
    def from_ledger(cls, po_number: str, extra: Mapping[str, Any]) -> OrderedPO:
        lines = tuple((int(number), str(item)) for number, item in extra.get("po_lines", []))
        return cls(po_number, str(extra.get("po_supplier", "")), str(extra.get("po_currency", "")), lines)


def ap_invoice_from_810(
    invoice: Invoice810, partner: TradingPartner, division: str, order: OrderedPO | None
) -> NewAPInvoice:
    """A supplier 810 as an Infor AP invoice: one cost line per IT1 and per charge, booked to the
    partner's GL account and cost centre; IT1 lines name the PO line they invoice when it exists.
    Line amounts are rounded to cents and the rounding difference goes to the last line, so the
    lines always add up to TDS01 (APS455MI checks it)."""
    record = f"{partner.alias}/{invoice.invoice_number}"
    if partner.supplier_id is None:
        raise ValidationFailed(record, "supplier_id", f"trading partner {partner.alias} has no supplier_id")
    currency = invoice.currency or (order.currency if order else "")
    if not currency:
        raise ValidationFailed(record, "CUR02", "the invoice names no currency and its PO is unknown")
    numbers = {number for number, _ in order.lines} if order else set()
    by_item = {item: number for number, item in order.lines} if order else {}
    lines: list[NewAPInvoiceLine] = []
    for line in invoice.lines:
        # BP carries our item number (as the 850 sent it); else the IT101 line id may be our line.
        po_line = by_item.get(line.buyer_part) if line.buyer_part else None
        if po_line is None and line.line_id.isdigit() and int(line.line_id) in numbers:
            po_line = int(line.line_id)
        lines.append(
            NewAPInvoiceLine(
                amount=line.amount.quantize(CENT, ROUND_HALF_UP),
                gl_account=partner.gl_account,
                cost_centre=partner.cost_centre,
                po_number=order.po_number if order else None,
                po_line=po_line,
                description=line.description or None,
            )
        )
    for charge in invoice.charges:
        lines.append(
            NewAPInvoiceLine(
                amount=charge.signed_amount,
                gl_account=partner.gl_account,
                cost_centre=partner.cost_centre,
                description=charge.description or charge.code,
            )
        )
    difference = invoice.total - sum((line.amount for line in lines), Decimal(0))
    if difference:
        last = lines[-1]
        lines[-1] = last.model_copy(update={"amount": last.amount + difference})
    return NewAPInvoice(
        division=division,
        supplier_id=partner.supplier_id,
        invoice_number=invoice.invoice_number,
        invoice_date=invoice.invoice_date,
        due_date=due_date_of(invoice),
        currency=currency,
        amount=invoice.total,
        lines=tuple(lines),
    )


# Supplier <-> trading partner ----------------------------------------------------------------------


def connection_for(partner: TradingPartner, supplier: Supplier | None, local_name: str) -> Connection:
    """What Cleo's connection for this partner should say: its alias, type, our local name, and the
    Infor supplier's name as partner name."""
    return Connection(
        alias=partner.alias,
        type=partner.connection_type,
        localName=local_name,
        partnerName=supplier.name if supplier else None,
    )


def connection_differences(current: Connection, wanted: Connection) -> dict[str, tuple[Any, Any]]:
    """Attribute -> (in Cleo, from Infor) for every managed attribute that differs."""
    names = {"type": "type", "localName": "local_name", "partnerName": "partner_name"}
    return {
        api_name: (getattr(current, attr), getattr(wanted, attr))
        for api_name, attr in names.items()
        if getattr(wanted, attr) is not None and getattr(current, attr) != getattr(wanted, attr)
    }
