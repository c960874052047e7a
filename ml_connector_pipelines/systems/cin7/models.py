"""Pydantic models of the Cin7 Core objects the client sends and reads (contracts/cin7.md §4).

Field names on the wire are Cin7's (PascalCase, ``ID``); Python names are snake_case. Requests are
dumped with ``to_wire()``: only the fields that are set, amounts as JSON numbers. Responses ignore
fields not declared here (Cin7 sends many more).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_pascal

# Cin7 takes amounts as JSON numbers; at most 4 decimals (field tables), exact as a float repr.
Amount = Annotated[Decimal, PlainSerializer(lambda value: float(value), return_type=float)]
Approach = Literal["INVOICE", "STOCK"]
StageStatus = Literal["DRAFT", "AUTHORISED"]
ATTRIBUTE_FIELDS = tuple(f"AdditionalAttribute{i}" for i in range(1, 11))


class Cin7Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# Suppliers ----------------------------------------------------------------------------------------


class SupplierPayload(Cin7Model):
    """POST /supplier body (and PUT with ``id``). ``attributes`` maps AdditionalAttributeN -> value."""

    id: str | None = Field(default=None, alias="ID")
    name: str | None = None
    currency: str | None = None
    payment_term: str | None = None
    account_payable: str | None = None
    tax_rule: str | None = None
    status: Literal["Active", "Deprecated"] | None = None
    comments: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _known_attributes(self) -> SupplierPayload:
        unknown = set(self.attributes) - set(ATTRIBUTE_FIELDS)
        if unknown:
            raise ValueError(f"not a supplier attribute field: {', '.join(sorted(unknown))}")
        return self

    def to_wire(self) -> dict[str, Any]:
        return {**super().to_wire(), **self.attributes}


class Supplier(Cin7Model):
    id: str = Field(alias="ID")
    name: str
    currency: str | None = None
    payment_term: str | None = None
    account_payable: str | None = None
    tax_rule: str | None = None
    status: str | None = None
    attributes: dict[str, str] = {}

    @model_validator(mode="before")
    @classmethod
    def _collect_attributes(cls, data: Any) -> Any:
        if isinstance(data, dict) and "attributes" not in data:
            found = {name: str(data[name]) for name in ATTRIBUTE_FIELDS if data.get(name)}
            data = {**data, "attributes": found}
        return data


# Products (read only here) --------------------------------------------------------------------------


class Product(Cin7Model):
    id: str = Field(alias="ID")
    sku: str = Field(alias="SKU")
    name: str
    status: str | None = None
    purchase_tax_rule: str | None = None
    inventory_account: str | None = None


# Purchases ------------------------------------------------------------------------------------------


class PurchaseHeader(Cin7Model):
    """POST /purchase: the task header (contract §4.2 step 1)."""

    supplier_id: str = Field(alias="SupplierID")
    approach: Approach
    location: str | None = None
    tax_rule: str | None = None
    terms: str | None = None
    required_by: str | None = None
    note: str | None = None
    tax_calculation: Literal["Exclusive", "Inclusive"] | None = None


class OrderLine(Cin7Model):
    product_id: str = Field(alias="ProductID")
    sku: str = Field(alias="SKU")
    name: str
    quantity: Amount
    price: Amount
    discount: Amount = Decimal(0)
    tax: Amount
    tax_rule: str
    supplier_sku: str = Field(default="", alias="SupplierSKU")
    comment: str = ""
    total: Amount


class PurchaseOrderPayload(Cin7Model):
    """POST /purchase/order (step 2). ``Memo`` is required by the field table."""

    task_id: str = Field(alias="TaskID")
    status: StageStatus
    memo: str
    lines: tuple[OrderLine, ...]


class InvoiceLine(Cin7Model):
    product_id: str = Field(alias="ProductID")
    sku: str = Field(alias="SKU")
    name: str
    quantity: Amount
    price: Amount
    discount: Amount = Decimal(0)
    tax: Amount
    tax_rule: str
    account: str
    comment: str = ""
    total: Amount


class PurchaseInvoicePayload(Cin7Model):
    """POST /purchase/invoice (step 3)."""

    task_id: str = Field(alias="TaskID")
    status: StageStatus
    invoice_number: str
    invoice_date: str
    invoice_due_date: str | None = None
    lines: tuple[InvoiceLine, ...]


class Stage(Cin7Model):
    status: str
    total: Decimal | None = None


class Purchase(Cin7Model):
    """A purchase task (POST /purchase answer, GET /purchase?ID=)."""

    id: str = Field(alias="ID")
    order_number: str
    status: str
    supplier_id: str = Field(alias="SupplierID")
    approach: str
    note: str | None = None
    inventory_account: str | None = None
    tax_rule: str | None = None
    order: Stage | None = None
    invoice: Stage | None = None
    stock_received: Stage | None = None


class StageResult(Cin7Model):
    """The answer to POST /purchase/order and /purchase/invoice."""

    task_id: str = Field(alias="TaskID")
    status: str
    total: Decimal | None = None


class PurchaseListItem(Cin7Model):
    id: str = Field(alias="ID")
    order_number: str
    status: str
    supplier: str | None = None
    supplier_id: str | None = Field(default=None, alias="SupplierID")
    invoice_number: str | None = None
    order_status: str | None = None
    invoice_status: str | None = None


# Chart of accounts ----------------------------------------------------------------------------------


class Account(Cin7Model):
    code: str
    name: str
    type: str | None = None
    class_: str | None = Field(default=None, alias="Class")
    status: str | None = None
    description: str | None = None


class AccountPayload(Cin7Model):
    """POST /ref/account (Code, Name, Type and Status required by the field table)."""

    code: str
    name: str
    type: str
    class_: str | None = Field(default=None, alias="Class")
    status: str = "ACTIVE"
    description: str | None = None
