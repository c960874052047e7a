"""Product-neutral Infor records: what the M3 and SyteLine adapters both return.

Integrations only ever see these, so a mapping written for M3 works unchanged for SyteLine.
Amounts are Decimal in the document currency; currency codes are ISO 4217 upper case.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

Product = Literal["m3", "syteline"]
InvoiceStatus = Literal["open", "paid", "cancelled"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class BankAccount(_Record):
    """A supplier's payee details. Which fields are set depends on `kind`."""

    kind: Literal["iban", "sort_code", "aba", "email"]
    currency: str
    account_holder: str
    country: str | None = None  # ISO 3166 alpha-2
    iban: str | None = None
    bic: str | None = None
    sort_code: str | None = None
    account_number: str | None = None
    aba_routing: str | None = None
    account_type: Literal["CHECKING", "SAVINGS"] | None = None
    email: str | None = None
    city: str | None = None
    post_code: str | None = None
    address_line: str | None = None
    state: str | None = None


class Supplier(_Record):
    supplier_id: str
    name: str
    currency: str
    status: str
    country: str | None = None
    bank_account: BankAccount | None = None
    modified_date: date


class Customer(_Record):
    customer_id: str
    name: str
    currency: str
    email: str | None = None
    country: str | None = None
    address_line: str | None = None
    city: str | None = None
    post_code: str | None = None
    modified_date: date


class APInvoice(_Record):
    """An open (or since closed) supplier invoice."""

    division: str
    supplier_id: str
    invoice_number: str
    invoice_year: int
    invoice_date: date
    due_date: date | None = None
    currency: str
    amount: Decimal
    status: InvoiceStatus
    modified_date: date

    @property
    def invoice_key(self) -> str:
        """Stable id of the invoice across systems (also the CUGEX1MI key order)."""
        return f"{self.division}/{self.supplier_id}/{self.invoice_number}/{self.invoice_year}"


class ARInvoice(_Record):
    division: str
    customer_id: str
    invoice_number: str
    invoice_year: int
    invoice_date: date
    due_date: date | None = None
    currency: str
    amount: Decimal
    open_amount: Decimal
    status: InvoiceStatus
    modified_date: date

    @property
    def invoice_key(self) -> str:
        return f"{self.division}/{self.customer_id}/{self.invoice_number}/{self.invoice_year}"


class PurchaseOrderLine(_Record):
    line_number: int
    item_number: str
    description: str | None = None
    quantity: Decimal
    unit_price: Decimal


class PurchaseOrder(_Record):
    po_number: str
    supplier_id: str
    order_date: date
    currency: str
    status: str
    facility: str | None = None
    warehouse: str | None = None
    lines: tuple[PurchaseOrderLine, ...] = ()
    modified_date: date


class GLAccount(_Record):
    """One accounting identity (M3 CRS630MI dimension value) or SyteLine chart account."""

    dimension: int  # 1..7 in M3; SyteLine accounts are dimension 1
    account_id: str
    description: str
    modified_date: date


# Writes -------------------------------------------------------------------------------------------


class NewPurchaseOrder(_Record):
    supplier_id: str
    order_date: date
    currency: str
    facility: str | None = None
    warehouse: str | None = None
    external_ref: str
    lines: tuple[PurchaseOrderLine, ...]


class NewAPInvoiceLine(_Record):
    amount: Decimal
    # GL coding: SyteLine only; M3's APS450MI/AddLine has no accounting inputs (docs/infor.md).
    gl_account: str | None = None
    cost_centre: str | None = None
    po_number: str | None = None
    po_line: int | None = None
    description: str | None = None


class NewAPInvoice(_Record):
    division: str
    supplier_id: str
    invoice_number: str
    invoice_date: date
    due_date: date | None = None
    currency: str
    amount: Decimal
    lines: tuple[NewAPInvoiceLine, ...]


class ARPayment(_Record):
    """A payment (positive) or refund (negative) applied to one AR invoice."""

    division: str
    customer_id: str
    invoice_number: str
    invoice_year: int
    amount: Decimal
    currency: str
    payment_date: date
    reference: str  # the external payment/refund id, used to find the line again after a timeout
    dimensions: tuple[str, ...] = ()  # AIT1..AIT7 of ARS040MI/AddBatchLine (SyteLine: the first, Acct)


class PostedARPayment(_Record):
    """One AR payment line as Infor holds it, read back by its payment reference."""

    id: str  # M3 "PBID/TRNO", SyteLine _ItemId: what `add_ar_payment` returned
    reference: str
    invoice_number: str
    amount: Decimal
    currency: str | None = None  # None when Infor's record leaves it blank


class InvoiceExtension(_Record):
    """External reference + payout status written to an invoice's extension record (CUGEX1MI)."""

    invoice_key: str
    status: str
    external_id: str
    updated_at: str  # ISO timestamp of the event that set the status; orders concurrent writers
