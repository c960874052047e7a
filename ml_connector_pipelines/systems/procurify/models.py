"""Pydantic models of the Procurify API objects this connector reads (contracts/procurify.md, and
the OpenAPI document's schemas of the same names). Only the fields used are declared; the rest of
each object is ignored. Money on POs and order items is a decimal string, parsed to Decimal.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# PO state codes [C contract 3.1]. POs carry no approval status: a PO exists only once its
# requisition was approved, so every PO that is not cancelled (or legacy) counts as approved.
PO_STATES = {0: "purchased", 1: "cancelled", 2: "legacy", 3: "closed", 4: "paid", 5: "reopened"}
PO_NOT_APPROVED_STATES = frozenset({1, 2})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Currency(_Model):
    id: int | None = None
    name: str  # ISO 4217 code, e.g. "USD"


class Vendor(_Model):
    """VendorRead / OptimizedVendor."""

    id: int
    name: str
    active: bool = True
    external_id: str | None = None
    currency: int | None = None
    email: tuple[str, ...] = ()
    type: int | None = None


class AccountCode(_Model):
    """AccountCodeRead: one GL account code."""

    id: int
    code: str
    description: str
    active: bool = True
    account_type: int | None = None


class Branch(_Model):
    id: int | None = None
    name: str


class Department(_Model):
    """DepartmentRead / DepartmentSummary."""

    id: int
    name: str
    active: bool = True
    external_id: str | None = None
    branch: Branch | None = None


class Location(_Model):
    """LocationView."""

    id: int
    name: str
    active: bool = True
    external_id: str | None = None
    headquarter: bool = False


class Account(_Model):
    """AccountRead: a budget line, one account code in one department (the GL coding of a line)."""

    id: int | None = None
    account_code: AccountCode
    department: Department


class PurchaseOrderLine(_Model):
    """PurchaseOrderLineItemRead (a PO detail's ``order_items``)."""

    id: int
    line_number: int | None = Field(default=None, validation_alias=AliasChoices("PO_line_num", "line_number"))
    name: str
    sku: str = ""
    unit: str = ""
    quantity: Decimal
    price: Decimal
    account: Account


class VendorRef(_Model):
    id: int
    name: str
    external_id: str | None = None


class PurchaseOrder(_Model):
    """PurchaseOrderDocs (list) + ``order_items`` from PurchaseOrderDetail."""

    uuid: str
    procurify_po: int = Field(validation_alias=AliasChoices("procurify_PO", "procurify_po"))
    number: str | None = None
    date: datetime | None = None
    promise_date: datetime | None = None
    state: int | None = None
    vendor: VendorRef = Field(validation_alias=AliasChoices("pref_vendor", "vendor"))
    currency: Currency = Field(validation_alias=AliasChoices("purchased_currency", "currency"))
    total: Decimal
    last_modified: datetime
    lines: tuple[PurchaseOrderLine, ...] = Field(
        default=(), validation_alias=AliasChoices("order_items", "lines")
    )

    @property
    def display_number(self) -> str:
        return self.number or str(self.procurify_po)

    @property
    def approved(self) -> bool:
        return self.state not in PO_NOT_APPROVED_STATES


class CostAllocation(_Model):
    """CostAllocationRead: part of a bill line charged to one budget line (GL coding)."""

    amount: Decimal
    budget: Account


class BillLine(_Model):
    """ItemReadSerializer_v2 (a bill detail's ``items``)."""

    id: int
    description: str
    quantity: Decimal
    cost_allocations: tuple[CostAllocation, ...] = ()


class BillVendor(_Model):
    id: int
    name: str
    external_id: str | None = None


class Bill(_Model):
    """SimpleBill (list) + ``items`` from BillRead (detail)."""

    id: int
    uuid: str
    status: int | None = None
    vendor: BillVendor
    currency: Currency
    invoice_number: str = ""
    invoice_date: datetime | None = None
    due_date: datetime | None = None
    total_cost_with_tax: Decimal | None = None
    last_modified_datetime: datetime
    items: tuple[BillLine, ...] = ()
