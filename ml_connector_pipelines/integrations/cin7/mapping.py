"""Pure mappings Infor -> Cin7 Core (no I/O): suppliers, purchase orders, AP invoices, GL accounts.

Tenant config keys (``Cin7Settings.from_config``; each one defaults as below). Where Infor has
no such field, the value is the tenant's choice, not a guess (table also in docs/cin7.md):

- ``cin7_vendor_id_attribute`` = ``AdditionalAttribute1``: supplier field with the Infor vendor id
- ``cin7_payment_term`` = ``30 days``, ``cin7_account_payable`` = ``800``: for suppliers we create
- ``cin7_tax_rule`` = ``Tax Exempt``: suppliers and purchase lines (Infor PO lines carry no tax)
- ``cin7_approach`` = ``INVOICE``: INVOICE (invoice first) or STOCK (stock received first)
- ``cin7_order_status`` / ``cin7_invoice_status`` = ``AUTHORISED``: DRAFT or AUTHORISED
- ``cin7_invoice_account`` = none: invoice line Account; none: the product's InventoryAccount
- ``cin7_invoice_match`` = ``amount``: AP invoice -> purchase by supplier, currency and total;
  ``supplier``: the supplier's oldest purchase awaiting an invoice
- ``cin7_chart_policy`` = ``flag``: a GL account missing in Cin7 is ``create``d or ``flag``ged
- ``cin7_gl_dimension`` = ``1``: the Infor accounting dimension that is the chart of accounts
- ``cin7_account_type`` / ``cin7_account_class`` = ``EXPENSE`` / ``EXPENSE``: accounts we create

The Infor PO number is stored in the purchase's ``Note`` as ``Infor PO <number>`` (``po_marker``):
Cin7 numbers purchases itself, and purchaseList search does not cover Note, so a lost create is
found by searching the supplier's name and reading each candidate's Note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from ...core.errors import ValidationFailed
from ...systems.cin7.models import (
    ATTRIBUTE_FIELDS,
    AccountPayload,
    InvoiceLine,
    OrderLine,
    Product,
    PurchaseHeader,
    PurchaseInvoicePayload,
    PurchaseOrderPayload,
    Supplier,
    SupplierPayload,
)
from ...systems.infor.models import APInvoice, GLAccount, PurchaseOrder
from ...systems.infor.models import Supplier as InforSupplier

CENT = Decimal("0.01")
MAX_NAME = 256  # supplier Name and account Name (field tables)
MAX_CODE = 50  # account Code


@dataclass(frozen=True)
class Cin7Settings:
    vendor_id_attribute: str = "AdditionalAttribute1"
    payment_term: str = "30 days"
    account_payable: str = "800"
    tax_rule: str = "Tax Exempt"
    approach: Literal["INVOICE", "STOCK"] = "INVOICE"
    order_status: Literal["DRAFT", "AUTHORISED"] = "AUTHORISED"
    invoice_status: Literal["DRAFT", "AUTHORISED"] = "AUTHORISED"
    invoice_account: str | None = None
    invoice_match: Literal["amount", "supplier"] = "amount"
    chart_policy: Literal["create", "flag"] = "flag"
    gl_dimension: int = 1
    account_type: str = "EXPENSE"
    account_class: str = "EXPENSE"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Cin7Settings:
        values = {
            name: config[f"cin7_{name}"] for name in cls.__dataclass_fields__ if f"cin7_{name}" in config
        }
        settings = cls(**values)
        choices = {
            "approach": ("INVOICE", "STOCK"),
            "order_status": ("DRAFT", "AUTHORISED"),
            "invoice_status": ("DRAFT", "AUTHORISED"),
            "invoice_match": ("amount", "supplier"),
            "chart_policy": ("create", "flag"),
        }
        for name, allowed in choices.items():
            if getattr(settings, name) not in allowed:
                raise ValueError(f"tenant config cin7_{name} must be one of {', '.join(allowed)}")
        if settings.vendor_id_attribute not in ATTRIBUTE_FIELDS:
            raise ValueError("tenant config cin7_vendor_id_attribute must be AdditionalAttribute1..10")
        return settings


def _same_name(a: str, b: str) -> bool:
    """Names compare without case and runs of spaces."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# Suppliers ------------------------------------------------------------------------------------------


def supplier_payload(supplier: InforSupplier, settings: Cin7Settings) -> SupplierPayload:
    """Infor supplier -> POST /supplier body, with the vendor id in the configured attribute."""
    name = supplier.name.strip()
    if not name:
        raise ValidationFailed(supplier.supplier_id, "name", "is empty; Cin7 requires a supplier Name")
    if len(name) > MAX_NAME:
        raise ValidationFailed(supplier.supplier_id, "name", f"longer than Cin7's {MAX_NAME} characters")
    if len(supplier.currency) != 3:
        raise ValidationFailed(supplier.supplier_id, "currency", f"{supplier.currency!r} is not ISO 4217")
    return SupplierPayload(
        name=name,
        currency=supplier.currency.upper(),
        payment_term=settings.payment_term,
        account_payable=settings.account_payable,
        tax_rule=settings.tax_rule,
        status="Active" if supplier.status == "active" else "Deprecated",
        attributes={settings.vendor_id_attribute: supplier.supplier_id},
    )


def supplier_changes(payload: SupplierPayload, supplier_id: str) -> SupplierPayload:
    """PUT body for a supplier we manage: what Infor owns (name, currency, status, vendor id)."""
    return SupplierPayload(
        id=supplier_id,
        name=payload.name,
        currency=payload.currency,
        status=payload.status,
        attributes=payload.attributes,
    )


@dataclass(frozen=True)
class SupplierMatch:
    """How an Infor supplier was found among Cin7's: ``target_id`` None means none (create it)."""

    target_id: str | None
    how: Literal["vendor_id", "name", "none", "ambiguous"]
    reason: str


def match_supplier(supplier: InforSupplier, candidates: Iterable[Supplier], attribute: str) -> SupplierMatch:
    """By vendor id in ``attribute`` first, else by name (``_same_name``) if that Cin7 supplier
    carries no other vendor id. Two hits for one rule is ambiguous: a person decides."""
    vendor_id = supplier.supplier_id
    pool = list(candidates)
    by_id = [c for c in pool if c.attributes.get(attribute) == vendor_id]
    if len(by_id) > 1:
        ids = ", ".join(c.id for c in by_id)
        return SupplierMatch(None, "ambiguous", f"several Cin7 suppliers carry vendor id {vendor_id}: {ids}")
    if by_id:
        return SupplierMatch(by_id[0].id, "vendor_id", f"matched by vendor id in {attribute}")
    by_name = [c for c in pool if _same_name(c.name, supplier.name)]
    if by_name:
        other = by_name[0].attributes.get(attribute)
        if other:
            return SupplierMatch(
                None,
                "ambiguous",
                f"Cin7 supplier {by_name[0].name!r} has the same name but vendor id {other}",
            )
        return SupplierMatch(by_name[0].id, "name", "matched by name (no vendor id in Cin7 yet)")
    return SupplierMatch(None, "none", "no Cin7 supplier with this vendor id or name")


# Purchases ------------------------------------------------------------------------------------------


def po_marker(po_number: str) -> str:
    """What the purchase's Note carries so it can be recognised after a lost answer."""
    return f"Infor PO {po_number}"


def purchase_header(order: PurchaseOrder, cin7_supplier_id: str, settings: Cin7Settings) -> PurchaseHeader:
    return PurchaseHeader(
        supplier_id=cin7_supplier_id,
        approach=settings.approach,
        tax_rule=settings.tax_rule,
        note=po_marker(order.po_number),
    )


def order_lines(
    order: PurchaseOrder, products: Mapping[str, Product | None], settings: Cin7Settings
) -> tuple[OrderLine, ...]:
    """Infor PO lines -> Cin7 order lines. Each item must be a Cin7 product (SKU = item number)."""
    if not order.lines:
        raise ValidationFailed(order.po_number, "lines", "the purchase order has no lines")
    lines = []
    for line in order.lines:
        where = f"lines[{line.line_number}]"
        product = products.get(line.item_number)
        if product is None:
            raise ValidationFailed(
                order.po_number, f"{where}.item_number", f"{line.item_number} is not a product SKU in Cin7"
            )
        if line.quantity < 1:
            raise ValidationFailed(order.po_number, f"{where}.quantity", "Cin7 needs a quantity of 1 or more")
        if line.unit_price < 0:
            raise ValidationFailed(order.po_number, f"{where}.unit_price", "is negative")
        lines.append(
            OrderLine(
                product_id=product.id,
                sku=product.sku,
                name=(line.description or product.name)[:1024],
                quantity=line.quantity,
                price=line.unit_price,
                tax=Decimal(0),
                tax_rule=settings.tax_rule,
                comment=f"Infor line {line.line_number}",
                total=_money(line.quantity * line.unit_price),
            )
        )
    return tuple(lines)


def purchase_order(
    task_id: str, order: PurchaseOrder, lines: tuple[OrderLine, ...], settings: Cin7Settings
) -> PurchaseOrderPayload:
    return PurchaseOrderPayload(
        task_id=task_id, status=settings.order_status, memo=po_marker(order.po_number), lines=lines
    )


def order_total(lines: Iterable[OrderLine]) -> Decimal:
    return sum((line.total + line.tax for line in lines), Decimal(0))


# AP invoices ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseCandidate:
    """A purchase we created (from the cin7_purchases ledger) that can take an invoice."""

    po_number: str
    task_id: str
    supplier_id: str  # Infor vendor id
    currency: str
    total: Decimal
    lines: tuple[dict[str, Any], ...]  # the order lines as sent (wire form)


def pick_purchase(
    invoice: APInvoice, candidates: Iterable[PurchaseCandidate], settings: Cin7Settings
) -> PurchaseCandidate | None:
    """The purchase an AP invoice belongs to. Infor's AP invoice carries no PO number, so the rule is
    the tenant's (``cin7_invoice_match``); the oldest PO wins a tie.

    None: the supplier has no purchase in Cin7 awaiting an invoice (a non-PO invoice: not Cin7's
    business). Raises ValidationFailed when it has some, but none fits the invoice's amount."""
    same_supplier = sorted(
        (c for c in candidates if c.supplier_id == invoice.supplier_id and c.currency == invoice.currency),
        key=lambda c: c.po_number,
    )
    if not same_supplier:
        return None
    if settings.invoice_match == "supplier":
        return same_supplier[0]
    fits = [c for c in same_supplier if c.total == _money(invoice.amount)]
    if not fits:
        totals = ", ".join(f"PO {c.po_number}: {c.total}" for c in same_supplier[:5])
        raise ValidationFailed(
            invoice.invoice_key,
            "amount",
            f"{_money(invoice.amount)} {invoice.currency} fits no Cin7 purchase of supplier "
            f"{invoice.supplier_id} awaiting an invoice ({totals})",
        )
    return fits[0]


def invoice_payload(
    invoice: APInvoice, purchase: PurchaseCandidate, accounts: Mapping[str, str], settings: Cin7Settings
) -> PurchaseInvoicePayload:
    """The purchase's invoice: its order lines, each booked to ``cin7_invoice_account`` or, without
    one, to its product's InventoryAccount (``accounts``: ProductID -> account code)."""
    lines = []
    for line in purchase.lines:
        account = settings.invoice_account or accounts.get(line["ProductID"])
        if not account:
            raise ValidationFailed(
                invoice.invoice_key,
                "account",
                f"product {line['SKU']} has no InventoryAccount in Cin7; set cin7_invoice_account",
            )
        lines.append(
            InvoiceLine(
                product_id=line["ProductID"],
                sku=line["SKU"],
                name=line["Name"],
                quantity=Decimal(str(line["Quantity"])),
                price=Decimal(str(line["Price"])),
                discount=Decimal(str(line.get("Discount", 0))),
                tax=Decimal(str(line["Tax"])),
                tax_rule=line["TaxRule"],
                account=account,
                comment=f"Infor invoice {invoice.invoice_number}",
                total=Decimal(str(line["Total"])),
            )
        )
    return PurchaseInvoicePayload(
        task_id=purchase.task_id,
        status=settings.invoice_status,
        invoice_number=invoice.invoice_number,
        invoice_date=invoice.invoice_date.isoformat(),
        invoice_due_date=invoice.due_date.isoformat() if invoice.due_date else None,
        lines=tuple(lines),
    )


# Chart of accounts ----------------------------------------------------------------------------------

AlignmentStatus = Literal["matching", "differing", "missing", "invalid"]


@dataclass(frozen=True)
class AlignmentRow:
    code: str
    infor_name: str
    cin7_name: str | None
    status: AlignmentStatus
    reason: str


def align_chart(
    gl_accounts: Iterable[GLAccount], cin7_accounts: Mapping[str, str], settings: Cin7Settings
) -> list[AlignmentRow]:
    """One row per Infor account of the chart dimension, by Code; ``cin7_accounts``: Code -> Name."""
    rows = []
    for account in sorted(gl_accounts, key=lambda a: a.account_id):
        if account.dimension != settings.gl_dimension:
            continue
        code, name = account.account_id.strip(), account.description.strip()
        cin7_name = cin7_accounts.get(code)
        if cin7_name is not None:
            if _same_name(cin7_name, name):
                rows.append(AlignmentRow(code, name, cin7_name, "matching", "same code and name"))
            else:
                reason = f"name differs: Infor {name!r}, Cin7 {cin7_name!r}"
                rows.append(AlignmentRow(code, name, cin7_name, "differing", reason))
        elif not code or len(code) > MAX_CODE or not name or len(name) > MAX_NAME:
            reason = f"code must be 1-{MAX_CODE} and name 1-{MAX_NAME} characters for Cin7"
            rows.append(AlignmentRow(code, name, None, "invalid", reason))
        else:
            rows.append(AlignmentRow(code, name, None, "missing", "not in Cin7's chart"))
    return rows


def account_payload(row: AlignmentRow, settings: Cin7Settings) -> AccountPayload:
    return AccountPayload(
        code=row.code,
        name=row.infor_name,
        type=settings.account_type,
        class_=settings.account_class,
        status="ACTIVE",
        description="From Infor",
    )
