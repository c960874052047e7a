"""SyteLine / CloudSuite Industrial through Mongoose IDO REST (contracts/infor.md §5).

IDOs: SLVendors (with the vendor's bank fields), SLCustomers, SLAptrxs, SLArtrans, SLPos + SLPoItems,
SLChartAccts, SLArPayments. `RecordDate` is a date-time, so a day's changes are read as the range
`RecordDate >= 'D 00:00:00' AND RecordDate < 'D+1 00:00:00'`; an equality on the date would only match
rows stamped exactly at midnight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ...core.errors import ValidationFailed
from ...core.http import HttpClient
from .auth import IonApiAuth
from .common import (
    AdapterBase,
    InvoiceKind,
    batched,
    blank_to_none,
    check_extension_key,
    decimal_text,
    is_newer,
    make_bank_account,
    read_field,
    split_invoice_key,
    to_decimal,
)
from .models import (
    APInvoice,
    ARInvoice,
    ARPayment,
    Customer,
    GLAccount,
    InvoiceExtension,
    InvoiceStatus,
    NewAPInvoice,
    NewPurchaseOrder,
    PostedARPayment,
    Product,
    PurchaseOrder,
    PurchaseOrderLine,
    Supplier,
)
from .syteline import INSERT, UPDATE, SyteLineClient, ido_change, ido_literal

IDO_INVOICE_STATUS: dict[str, InvoiceStatus] = {"O": "open", "P": "paid", "C": "cancelled"}
# Product-neutral words [I]; a code not listed is passed on unchanged. SyteLine vendor Stat: A / I.
IDO_SUPPLIER_STATUS = {"A": "active", "I": "inactive"}
# SyteLine PO Stat: P planned, O ordered, C complete, H history.
IDO_PO_STATUS = {"P": "open", "O": "open", "C": "closed", "H": "closed"}


def record_date_range(day: date, last: date | None = None) -> str:
    """The IDO filter for rows stamped at any time on `day` through `last` (default: `day`);
    RecordDate is a date-time."""
    start, end = day.isoformat(), ((last or day) + timedelta(days=1)).isoformat()
    return (
        f"RecordDate >= {ido_literal(start + ' 00:00:00')} AND RecordDate < {ido_literal(end + ' 00:00:00')}"
    )


def _ido_date(value: Any) -> date | None:
    """Mongoose dates come as ISO ('2026-11-21T...') or compact ('20261121 00:00:00.000')."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if text[4:5] == "-":
        return date.fromisoformat(text[:10])
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _ido_required_date(value: Any) -> date:
    parsed = _ido_date(value)
    if parsed is None:
        raise ValueError("missing SyteLine date")
    return parsed


def ido_supplier(item: Mapping[str, Any]) -> Supplier:
    currency = str(item["CurrCode"])
    country = blank_to_none(item.get("Country"))
    bank_fields = ("BankAcctHolder", "IBAN", "BIC", "BankAcctNo", "BankRouting", "BankEmail")
    bank = None
    if any(blank_to_none(item.get(name)) for name in bank_fields):
        bank = make_bank_account(
            currency=currency,
            holder=blank_to_none(item.get("BankAcctHolder")),
            country=country,
            iban=blank_to_none(item.get("IBAN")),
            bic=blank_to_none(item.get("BIC")),
            account_number=blank_to_none(item.get("BankAcctNo")),
            routing=blank_to_none(item.get("BankRouting")),
            account_type=blank_to_none(item.get("BankAcctType")),
            email=blank_to_none(item.get("BankEmail")),
            city=blank_to_none(item.get("BankCity")),
            post_code=blank_to_none(item.get("BankZip")),
            address_line=blank_to_none(item.get("BankAddr")),
            state=blank_to_none(item.get("BankState")),
        )
    return Supplier(
        supplier_id=str(item["VendNum"]),
        name=str(item["Name"]),
        currency=currency,
        status=IDO_SUPPLIER_STATUS.get(str(item["Stat"]), str(item["Stat"])),
        country=country,
        bank_account=bank,
        modified_date=read_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_customer(item: Mapping[str, Any]) -> Customer:
    return Customer(
        customer_id=str(item["CustNum"]),
        name=str(item["Name"]),
        currency=str(item["CurrCode"]),
        email=blank_to_none(item.get("Email")),
        country=blank_to_none(item.get("Country")),
        address_line=blank_to_none(item.get("Addr_1")),
        city=blank_to_none(item.get("City")),
        post_code=blank_to_none(item.get("Zip")),
        modified_date=read_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_ap_invoice(item: Mapping[str, Any]) -> APInvoice:
    return APInvoice(
        division=str(item["Site"]),
        supplier_id=str(item["VendNum"]),
        invoice_number=str(item["InvNum"]),
        invoice_year=read_field(item, "InvYear", int, "a year"),
        invoice_date=read_field(item, "InvDate", _ido_required_date, "a SyteLine date"),
        due_date=read_field(item, "DueDate", _ido_date, "a SyteLine date"),
        currency=str(item["CurrCode"]),
        amount=read_field(item, "InvAmt", to_decimal, "an amount"),
        status=read_field(item, "Stat", lambda v: IDO_INVOICE_STATUS[str(v)], "an invoice status"),
        modified_date=read_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_ar_invoice(item: Mapping[str, Any]) -> ARInvoice:
    return ARInvoice(
        division=str(item["Site"]),
        customer_id=str(item["CustNum"]),
        invoice_number=str(item["InvNum"]),
        invoice_year=read_field(item, "InvYear", int, "a year"),
        invoice_date=read_field(item, "InvDate", _ido_required_date, "a SyteLine date"),
        due_date=read_field(item, "DueDate", _ido_date, "a SyteLine date"),
        currency=str(item["CurrCode"]),
        amount=read_field(item, "Amount", to_decimal, "an amount"),
        open_amount=read_field(item, "OpenAmount", to_decimal, "an amount"),
        status=read_field(item, "Stat", lambda v: IDO_INVOICE_STATUS[str(v)], "an invoice status"),
        modified_date=read_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_purchase_order(item: Mapping[str, Any], lines: Iterable[Mapping[str, Any]]) -> PurchaseOrder:
    return PurchaseOrder(
        po_number=str(item["PoNum"]),
        supplier_id=str(item["VendNum"]),
        order_date=read_field(item, "OrderDate", _ido_required_date, "a SyteLine date"),
        currency=str(item["CurrCode"]),
        status=IDO_PO_STATUS.get(str(item["Stat"]), str(item["Stat"])),
        warehouse=blank_to_none(item.get("Whse")),
        lines=tuple(
            sorted(
                (
                    PurchaseOrderLine(
                        line_number=read_field(line, "PoLine", int, "a line number"),
                        item_number=str(line["Item"]),
                        description=blank_to_none(line.get("Description")),
                        quantity=read_field(line, "QtyOrdered", to_decimal, "a quantity"),
                        unit_price=read_field(line, "ItemCost", to_decimal, "an amount"),
                    )
                    for line in lines
                ),
                key=lambda line: line.line_number,
            )
        ),
        modified_date=read_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_gl_account(item: Mapping[str, Any]) -> GLAccount:
    return GLAccount(
        dimension=1,
        account_id=str(item["Acct"]),
        description=str(item["Description"]),
        modified_date=read_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


class SyteLineAdapter(AdapterBase):
    product: Product = "syteline"

    VENDOR_PROPERTIES = tuple(
        "VendNum Name CurrCode Stat Country RecordDate BankAcctHolder IBAN BIC BankAcctNo BankRouting"
        " BankAcctType BankEmail BankCity BankZip BankAddr BankState".split()
    )
    CUSTOMER_PROPERTIES = tuple("CustNum Name CurrCode Country Email Addr_1 City Zip RecordDate".split())
    AP_PROPERTIES = tuple(
        "Site VendNum InvNum InvYear InvDate DueDate CurrCode InvAmt Stat RecordDate".split()
    )
    AR_PROPERTIES = tuple(
        "Site CustNum InvNum InvYear InvDate DueDate CurrCode Amount OpenAmount Stat RecordDate".split()
    )
    PO_PROPERTIES = tuple("PoNum VendNum OrderDate CurrCode Stat Whse RecordDate".split())
    PO_LINE_PROPERTIES = tuple("PoNum PoLine Item Description QtyOrdered ItemCost".split())
    EXTENSION_PROPERTIES = tuple("Uf_PayoutStatus Uf_ExternalId Uf_StatusAt".split())

    def __init__(self, http: HttpClient, auth: IonApiAuth, config: Mapping[str, Any]) -> None:
        super().__init__(http, auth, config)
        self.ido = SyteLineClient(http)

    def ping(self) -> None:
        """One authenticated read: proves the credentials, the gateway and the Mongoose config."""
        next(iter(self.ido.load("SLVendors", ["VendNum"], recordcap=1)), None)

    # Reads ------------------------------------------------------------------------------------

    def _changed_on(
        self, ido: str, properties: tuple[str, ...], key: str, day: date, last: date | None = None
    ) -> Iterator[dict[str, Any]]:
        return self.ido.load(
            ido,
            list(properties),
            filter=record_date_range(day, last),
            orderby=key,
            recordcap=self.page_size,
        )

    def suppliers(self, day: date) -> Iterator[Supplier]:
        return self.suppliers_changed(day, day)

    def suppliers_changed(self, first: date, last: date) -> Iterator[Supplier]:
        rows = self._changed_on("SLVendors", self.VENDOR_PROPERTIES, "VendNum", first, last)
        return self._map_rows("suppliers", rows, ("VendNum",), ido_supplier)

    def supplier(self, supplier_id: str) -> Supplier | None:
        """One vendor (with its bank fields) whatever its record date; None when unknown."""
        found = self._first("SLVendors", self.VENDOR_PROPERTIES, f"VendNum = {ido_literal(supplier_id)}")
        return ido_supplier(found) if found else None

    def customers(self, day: date) -> Iterator[Customer]:
        rows = self._changed_on("SLCustomers", self.CUSTOMER_PROPERTIES, "CustNum", day)
        return self._map_rows("customers", rows, ("CustNum",), ido_customer)

    def customer(self, customer_id: str) -> Customer | None:
        """One customer by number, whatever its modified date; None if SyteLine has no such customer."""
        found = self._first("SLCustomers", self.CUSTOMER_PROPERTIES, f"CustNum = {ido_literal(customer_id)}")
        return ido_customer(found) if found else None

    def ap_invoices(self, day: date) -> Iterator[APInvoice]:
        rows = self._changed_on("SLAptrxs", self.AP_PROPERTIES, "VendNum,InvNum", day)
        return self._map_rows("ap_invoices", rows, ("Site", "VendNum", "InvNum", "InvYear"), ido_ap_invoice)

    def ar_invoices(self, day: date) -> Iterator[ARInvoice]:
        rows = self._changed_on("SLArtrans", self.AR_PROPERTIES, "CustNum,InvNum", day)
        return self._map_rows("ar_invoices", rows, ("Site", "CustNum", "InvNum", "InvYear"), ido_ar_invoice)

    def purchase_orders(self, day: date) -> Iterator[PurchaseOrder]:
        heads = self._changed_on("SLPos", self.PO_PROPERTIES, "PoNum", day)
        for page in batched(heads, self.page_size):
            numbers = {str(head["PoNum"]) for head in page}
            lines: dict[str, list[dict[str, Any]]] = {number: [] for number in numbers}
            first, last = ido_literal(str(page[0]["PoNum"])), ido_literal(str(page[-1]["PoNum"]))
            line_filter = f"PoNum >= {first} AND PoNum <= {last}"
            for line in self.ido.load(
                "SLPoItems", self.PO_LINE_PROPERTIES, line_filter, "PoNum,PoLine", self.page_size
            ):
                if str(line["PoNum"]) in lines:
                    lines[str(line["PoNum"])].append(line)
            yield from self._map_rows(
                "purchase_orders",
                page,
                ("PoNum",),
                lambda head, lines=lines: ido_purchase_order(head, lines[str(head["PoNum"])]),
            )

    def gl_accounts(self, day: date) -> Iterator[GLAccount]:
        return self.gl_accounts_changed(day, day)

    def gl_accounts_changed(self, first: date, last: date) -> Iterator[GLAccount]:
        rows = self._changed_on("SLChartAccts", ("Acct", "Description", "RecordDate"), "Acct", first, last)
        return self._map_rows("gl_accounts", rows, ("Acct",), ido_gl_account)

    # Writes -----------------------------------------------------------------------------------

    def _first(self, ido: str, properties: Iterable[str], filter: str) -> dict[str, Any] | None:
        return next(iter(self.ido.load(ido, list(properties), filter, recordcap=1)), None)

    def find_purchase_order(self, external_ref: str) -> str | None:
        found = self._first("SLPos", ("PoNum",), f"Uf_ExternalRef = {ido_literal(external_ref)}")
        return str(found["PoNum"]) if found else None

    def create_purchase_order(self, order: NewPurchaseOrder) -> str:
        """Insert SLPos, then its SLPoItems; an order already carrying this external ref is reused."""
        existing = self.find_purchase_order(order.external_ref)
        if existing:
            return existing
        head = {
            "VendNum": order.supplier_id,
            "OrderDate": order.order_date.isoformat(),
            "CurrCode": order.currency,
            "Whse": order.warehouse,
            "Uf_ExternalRef": order.external_ref,
        }
        [saved] = self.ido.update("SLPos", [ido_change(INSERT, head)])
        po_number = str(saved["PoNum"])
        if order.lines:
            self.ido.update(
                "SLPoItems",
                [
                    ido_change(
                        INSERT,
                        {
                            "PoNum": po_number,
                            "PoLine": line.line_number,
                            "Item": line.item_number,
                            "Description": line.description,
                            "QtyOrdered": decimal_text(line.quantity),
                            "ItemCost": decimal_text(line.unit_price),
                        },
                    )
                    for line in order.lines
                ],
            )
        return po_number

    def find_ap_invoice(self, invoice: NewAPInvoice) -> str | None:
        """The key `create_ap_invoice` returned for this vendor invoice, if SyteLine holds it."""
        found = self._first(
            "SLAptrxs",
            ("Site", "VendNum", "InvNum", "InvYear"),
            f"Site = {ido_literal(invoice.division)} AND VendNum = {ido_literal(invoice.supplier_id)}"
            f" AND InvNum = {ido_literal(invoice.invoice_number)} AND InvYear = {invoice.invoice_date.year}",
        )
        return _voucher_key(invoice) if found else None

    def create_ap_invoice(self, invoice: NewAPInvoice) -> str:
        """Insert an SLAptrxs voucher; returns its invoice key DIVI/VENDOR/INVOICE/YEAR.

        A voucher already holding this vendor invoice is reused, so a replay never makes a second one.
        """
        existing = self.find_ap_invoice(invoice)
        if existing:
            return existing
        lines_total = sum((line.amount for line in invoice.lines), Decimal(0))
        key = _voucher_key(invoice)
        if invoice.lines and lines_total != invoice.amount:
            # M3 rejects this in APS455MI; SyteLine's voucher header has no lines to check against.
            raise ValidationFailed(
                key, "lines", f"lines total {lines_total} differs from amount {invoice.amount}"
            )
        voucher = {
            "Site": invoice.division,
            "VendNum": invoice.supplier_id,
            "InvNum": invoice.invoice_number,
            "InvYear": invoice.invoice_date.year,
            "InvDate": invoice.invoice_date.isoformat(),
            "DueDate": invoice.due_date.isoformat() if invoice.due_date else None,
            "CurrCode": invoice.currency,
            "InvAmt": decimal_text(invoice.amount),
            "Stat": "O",
        }
        self.ido.update("SLAptrxs", [ido_change(INSERT, voucher)])
        return key

    def add_ar_payment(self, payment: ARPayment) -> str:
        """Insert an SLArPayments row; returns its _ItemId."""
        row = {
            "Site": payment.division,
            "CustNum": payment.customer_id,
            "InvNum": payment.invoice_number,
            "InvYear": payment.invoice_year,
            "Amount": decimal_text(payment.amount),
            "CurrCode": payment.currency,
            "PayDate": payment.payment_date.isoformat(),
            "Reference": payment.reference,
            "Acct": payment.dimensions[0] if payment.dimensions else None,
        }
        [saved] = self.ido.update("SLArPayments", [ido_change(INSERT, row)])
        return str(saved["_ItemId"])

    def find_ar_payment(self, reference: str) -> str | None:
        postings = self.ar_payments(reference)
        return postings[0].id if postings else None

    def ar_payments(self, reference: str) -> list[PostedARPayment]:
        """Every SLArPayments row SyteLine holds for this payment reference."""
        rows = self.ido.load(
            "SLArPayments",
            ["Reference", "InvNum", "Amount", "CurrCode"],
            f"Reference = {ido_literal(reference)}",
            recordcap=self.page_size,
        )
        return [
            PostedARPayment(
                id=str(row["_ItemId"]),
                reference=str(row["Reference"]),
                invoice_number=str(row["InvNum"]),
                amount=to_decimal(row["Amount"]),
                currency=blank_to_none(row.get("CurrCode")),
            )
            for row in rows
        ]

    # Extension fields (Uf_* on the invoice row) -------------------------------------------------

    def _invoice_row(self, kind: InvoiceKind, invoice_key: str) -> dict[str, Any]:
        division, party, number, year = split_invoice_key(invoice_key)
        ido, party_property = ("SLAptrxs", "VendNum") if kind == "ap" else ("SLArtrans", "CustNum")
        row = self._first(
            ido,
            self.EXTENSION_PROPERTIES,
            f"Site = {ido_literal(division)} AND {party_property} = {ido_literal(party)}"
            f" AND InvNum = {ido_literal(number)} AND InvYear = {int(year)}",
        )
        if row is None:
            raise ValidationFailed(invoice_key, "invoice_key", f"no {ido} row for this invoice")
        return row

    def read_invoice_extension(self, kind: InvoiceKind, invoice_key: str) -> InvoiceExtension | None:
        return _ido_extension(invoice_key, self._invoice_row(kind, invoice_key))

    def write_invoice_extension(
        self, kind: InvoiceKind, invoice_key: str, extension: InvoiceExtension
    ) -> bool:
        """Store status + external id; False when the stored status is as new or newer (kept)."""
        check_extension_key(invoice_key, extension)
        row = self._invoice_row(kind, invoice_key)
        current = _ido_extension(invoice_key, row)
        if current is not None and not is_newer(extension.updated_at, current.updated_at):
            return False
        values = {
            "Uf_PayoutStatus": extension.status,
            "Uf_ExternalId": extension.external_id,
            "Uf_StatusAt": extension.updated_at,
        }
        self.ido.update(
            "SLAptrxs" if kind == "ap" else "SLArtrans", [ido_change(UPDATE, values, item_id=row["_ItemId"])]
        )
        return True


def _ido_extension(invoice_key: str, row: Mapping[str, Any]) -> InvoiceExtension | None:
    if not blank_to_none(row.get("Uf_StatusAt")):
        return None
    return InvoiceExtension(
        invoice_key=invoice_key,
        status=str(row.get("Uf_PayoutStatus") or ""),
        external_id=str(row.get("Uf_ExternalId") or ""),
        updated_at=str(row["Uf_StatusAt"]),
    )


def _voucher_key(invoice: NewAPInvoice) -> str:
    return f"{invoice.division}/{invoice.supplier_id}/{invoice.invoice_number}/{invoice.invoice_date.year}"
