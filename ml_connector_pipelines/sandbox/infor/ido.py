"""SyteLine / CloudSuite Industrial IDOs over the tenant dataset (Mongoose IDO REST v2).

``load`` answers ``GET /ido/load/{IDO}`` (properties, filter, orderby, recordcap, bookmark paging)
and ``update`` answers ``POST /ido/update/{IDO}`` (Action 1 insert, 2 update, 4 delete).
[I] every property value is a string; dates are ``YYYY-MM-DD``. ``RecordDate`` is a date-time,
``YYYY-MM-DD HH:MM:SS.fff`` (never midnight here), so a filter ``RecordDate = 'YYYY-MM-DD'`` misses
every row, as it would on a real tenant: a day's changes are a range.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

from .data import TenantData, extension_key, invoice_key
from .m3 import BusinessError, apply_ar_payment, check_ar_payment, number_text
from .query import Condition, QueryError, Row, SortedRows, parse_filter
from .seed import DIVISION, Record

DEFAULT_CAP = 200
_ITEM_PART = re.compile(r"(\w+)=\[([^\]]*)\]")
_DATE_PREFIX = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})")
INVOICE_STAT = {"open": "O", "paid": "P", "cancelled": "C"}
PO_STAT = {"open": "O", "closed": "C"}


def record_datetime(day: str, key: str) -> str:
    """A stable time of day for a record changed on ``day`` (ISO date): 01:00:00 .. 23:59:59."""
    seconds = 3600 + int(hashlib.sha256(f"{day}/{key}".encode()).hexdigest()[:8], 16) % (23 * 3600 - 1)
    return f"{day} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000"


class IdoError(Exception):
    """A load/update the IDO refuses; ``status`` is the HTTP status of the answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def item_id(ido: str, keys: dict[str, str]) -> str:
    return f"PBT=[{ido}] " + " ".join(f"{name}=[{value}]" for name, value in keys.items())


def _with_id(ido: str, key: tuple[str, ...], row: Row) -> Row:
    row["_ItemId"] = item_id(ido, {k: row[k] for k in key})
    return row


def _extension_props(data: TenantData, file: str, record: Record, party: str) -> Row:
    ext = data.extension(file, invoice_key(record, party)) or {}
    return {
        "Uf_PayoutStatus": ext.get("status", ""),
        "Uf_ExternalId": ext.get("external_id", ""),
        "Uf_StatusAt": ext.get("updated_at", ""),
    }


def _vendor(s: Record) -> Row:
    bank = s.get("bank_account") or {}
    return {
        "VendNum": s["supplier_id"],
        "Name": s["name"],
        "CurrCode": s["currency"],
        "Stat": "A" if s["status"] == "active" else "I",
        "Country": s.get("country") or "",
        "RecordDate": record_datetime(s["modified_date"], s["supplier_id"]),
        "BankAcctHolder": bank.get("account_holder") or "",
        "IBAN": bank.get("iban") or "",
        "BIC": bank.get("bic") or "",
        "BankAcctNo": bank.get("account_number") or "",
        "BankRouting": bank.get("aba_routing") or bank.get("sort_code") or "",
        "BankAcctType": bank.get("account_type") or "",
        "BankEmail": bank.get("email") or "",
        "BankCity": bank.get("city") or "",
        "BankZip": bank.get("post_code") or "",
        "BankAddr": bank.get("address_line") or "",
        "BankState": bank.get("state") or "",
    }


def _customer(c: Record) -> Row:
    return {
        "CustNum": c["customer_id"],
        "Name": c["name"],
        "CurrCode": c["currency"],
        "Country": c.get("country") or "",
        "Email": c.get("email") or "",
        "Addr_1": c.get("address_line") or "",
        "City": c.get("city") or "",
        "Zip": c.get("post_code") or "",
        "RecordDate": record_datetime(c["modified_date"], c["customer_id"]),
    }


def _ap(data: TenantData, i: Record) -> Row:
    return {
        "Site": i["division"],
        "VendNum": i["supplier_id"],
        "InvNum": i["invoice_number"],
        "InvYear": str(i["invoice_year"]),
        "InvDate": i["invoice_date"],
        "DueDate": i.get("due_date") or "",
        "CurrCode": i["currency"],
        "InvAmt": i["amount"],
        "Stat": INVOICE_STAT[i["status"]],
        "RecordDate": record_datetime(i["modified_date"], i["invoice_number"]),
        **_extension_props(data, "FPLEDG", i, "supplier_id"),
    }


def _ar(data: TenantData, i: Record) -> Row:
    return {
        "Site": i["division"],
        "CustNum": i["customer_id"],
        "InvNum": i["invoice_number"],
        "InvYear": str(i["invoice_year"]),
        "InvDate": i["invoice_date"],
        "DueDate": i.get("due_date") or "",
        "CurrCode": i["currency"],
        "Amount": i["amount"],
        "OpenAmount": i["open_amount"],
        "Stat": INVOICE_STAT[i["status"]],
        "RecordDate": record_datetime(i["modified_date"], i["invoice_number"]),
        **_extension_props(data, "FSLEDG", i, "customer_id"),
    }


def _po(p: Record) -> Row:
    return {
        "PoNum": p["po_number"],
        "VendNum": p["supplier_id"],
        "OrderDate": p["order_date"],
        "CurrCode": p["currency"],
        "Stat": PO_STAT.get(p["status"], "O"),
        "Whse": p.get("warehouse") or "",
        "RecordDate": record_datetime(p["modified_date"], p["po_number"]),
        "Uf_ExternalRef": p.get("external_ref") or "",
    }


def _po_items(p: Record) -> list[Row]:
    return [
        {
            "PoNum": p["po_number"],
            "PoLine": str(line["line_number"]),
            "Item": line["item_number"],
            "Description": line.get("description") or "",
            "QtyOrdered": line["quantity"],
            "ItemCost": line["unit_price"],
            "RecordDate": record_datetime(p["modified_date"], p["po_number"]),
        }
        for line in p["lines"]
    ]


def _payment(n: int, p: Record) -> Row:
    return {
        "Site": p["division"],
        "CustNum": p["customer_id"],
        "InvNum": p["invoice_number"],
        "InvYear": str(p["invoice_year"]),
        "Amount": p["amount"],
        "CurrCode": p["currency"],
        "PayDate": p["payment_date"],
        "Reference": p.get("reference") or "",
        "Acct": (p.get("dimensions") or [""])[0],
        "RecordDate": record_datetime(p.get("recorded_date") or p["payment_date"], str(n)),
        "Seq": str(n),
    }


@dataclass(frozen=True)
class Ido:
    entity: str
    key: tuple[str, ...]
    properties: tuple[str, ...]
    render: Callable[[TenantData], list[Row]]


def _define(entity: str, key: str, properties: str, render: Callable[[TenantData], list[Row]]) -> Ido:
    """Key and properties as space separated names, the way the spec lists them."""
    return Ido(entity, tuple(key.split()), tuple(properties.split()), render)


def _chart(data: TenantData) -> list[Row]:
    """SyteLine has one chart of accounts: M3 dimension 1."""
    return [
        {
            "Acct": a["account_id"],
            "Description": a["description"],
            "RecordDate": record_datetime(a["modified_date"], a["account_id"]),
        }
        for a in data.gl_accounts.values()
        if a["dimension"] == 1
    ]


IDOS: dict[str, Ido] = {
    "SLVendors": _define(
        "suppliers",
        "VendNum",
        "VendNum Name CurrCode Stat Country RecordDate BankAcctHolder IBAN BIC BankAcctNo BankRouting "
        "BankAcctType BankEmail BankCity BankZip BankAddr BankState",
        lambda d: [_vendor(r) for r in d.suppliers.values()],
    ),
    "SLCustomers": _define(
        "customers",
        "CustNum",
        "CustNum Name CurrCode Country Email Addr_1 City Zip RecordDate",
        lambda d: [_customer(r) for r in d.customers.values()],
    ),
    "SLAptrxs": _define(
        "ap_invoices",
        "Site VendNum InvNum InvYear",
        "Site VendNum InvNum InvYear InvDate DueDate CurrCode InvAmt Stat RecordDate "
        "Uf_PayoutStatus Uf_ExternalId Uf_StatusAt",
        lambda d: [_ap(d, r) for r in d.ap_invoices.values()],
    ),
    "SLArtrans": _define(
        "ar_invoices",
        "Site CustNum InvNum InvYear",
        "Site CustNum InvNum InvYear InvDate DueDate CurrCode Amount OpenAmount Stat RecordDate "
        "Uf_PayoutStatus Uf_ExternalId Uf_StatusAt",
        lambda d: [_ar(d, r) for r in d.ar_invoices.values()],
    ),
    "SLPos": _define(
        "purchase_orders",
        "PoNum",
        "PoNum VendNum OrderDate CurrCode Stat Whse RecordDate Uf_ExternalRef",
        lambda d: [_po(r) for r in d.purchase_orders.values()],
    ),
    "SLPoItems": _define(
        "purchase_orders",
        "PoNum PoLine",
        "PoNum PoLine Item Description QtyOrdered ItemCost RecordDate",
        lambda d: [row for r in d.purchase_orders.values() for row in _po_items(r)],
    ),
    "SLChartAccts": _define("gl_accounts", "Acct", "Acct Description RecordDate", _chart),
    # [I] payments carry a hidden sequence as their key: nothing else about a payment is unique.
    "SLArPayments": _define(
        "ar_payments",
        "Seq",
        "Site CustNum InvNum InvYear Amount CurrCode PayDate Reference Acct RecordDate",
        lambda d: [_payment(n, p) for n, p in enumerate(d.ar_payments, start=1)],
    ),
}


def _ido(name: str) -> Ido:
    ido = IDOS.get(name)
    if ido is None:
        raise IdoError(f"IDO {name} not found", 404)
    return ido


def _rows(data: TenantData, name: str, ido: Ido) -> list[Row]:
    return data.cached(
        ("ido-rows", name), ido.entity, lambda: [_with_id(name, ido.key, r) for r in ido.render(data)]
    )


# Load ---------------------------------------------------------------------------------------------


def _normalise(cond: Condition) -> Condition:
    """Dates compare on their date part: '2026-11-20 00:00:00' and '2026-11-20' mean the same day."""
    match = _DATE_PREFIX.match(cond.value)
    if match and len(cond.value) > 8:
        return Condition(cond.column, cond.op, "-".join(match.groups()))
    return cond


def _order(ido: Ido, text: str) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    columns: list[str] = []
    descending: list[bool] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise IdoError(f"Invalid orderby {part!r}")
        columns.append(words[0])
        descending.append(len(words) == 2 and words[1].upper() == "DESC")
    for key in ido.key:  # the key makes the order total, so bookmarks are unambiguous
        if key not in columns:
            columns.append(key)
            descending.append(False)
    return tuple(columns), tuple(descending)


def _bookmark(view: SortedRows, first: Row, last: Row) -> str:
    def values(row: Row) -> str:
        return "".join(f"<v>{escape(row.get(c, ''))}</v>" for c in view.columns)

    props = "".join(f"<p>{escape(c)}</p>" for c in view.columns)
    flags = "".join(f"<f>{'true' if d else 'false'}</f>" for d in view.descending)
    return f"<B><P>{props}</P><D>{flags}</D><F>{values(first)}</F><L>{values(last)}</L></B>"


def _parse_bookmark(text: str, view: SortedRows) -> tuple[list[str], list[str]]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise IdoError("Invalid bookmark") from None
    props = [p.text or "" for p in root.iterfind("P/p")]
    if tuple(props) != view.columns:
        raise IdoError("Bookmark does not match the orderby of this request")
    first = [v.text or "" for v in root.iterfind("F/v")]
    last = [v.text or "" for v in root.iterfind("L/v")]
    return first, last


def _window(view: SortedRows, loadtype: str, bookmark: str, cap: int) -> tuple[int, int, bool]:
    """Slice [start, stop) of the sorted rows for this load, and whether rows remain beyond it.

    NEXT continues after the bookmark's last row, PREV ends before its first row; without a
    bookmark both behave like FIRST. ``cap`` 0 means no limit.
    """
    size = len(view.rows)
    backwards = loadtype == "LAST" or (loadtype == "PREV" and bool(bookmark))
    if loadtype in ("NEXT", "PREV") and bookmark:
        first, last = _parse_bookmark(bookmark, view)
        if loadtype == "NEXT":
            start = view.after(last)
            stop = min(size, start + cap) if cap else size
        else:
            stop = view.before(first)
            start = max(0, stop - cap) if cap else 0
    elif backwards:  # LAST
        stop = size
        start = max(0, size - cap) if cap else 0
    else:
        start, stop = 0, min(size, cap) if cap else size
    return start, stop, (start > 0) if backwards else stop < size


def load(data: TenantData, name: str, params: dict[str, str]) -> dict[str, Any]:
    ido = _ido(name)
    requested = params.get("properties", "").strip()
    properties = (
        list(ido.properties)
        if requested in ("", "*")
        else [p.strip() for p in requested.split(",") if p.strip() and p.strip() != "_ItemId"]
    )
    try:
        conditions = tuple(_normalise(c) for c in parse_filter(params.get("filter", "")))
    except QueryError as exc:
        raise IdoError(f"Invalid filter: {exc}") from None
    order, descending = _order(ido, params.get("orderby", ""))
    for prop in [*properties, *(c.column for c in conditions), *order]:
        if prop not in ido.properties and prop not in ido.key:
            raise IdoError(f"Property {prop} not found on IDO {name}")
    try:
        cap = int(params.get("recordcap", "-1"))
    except ValueError:
        raise IdoError("recordcap must be a number") from None
    cap = DEFAULT_CAP if cap < 0 else cap

    def build() -> SortedRows:
        matching = [row for row in _rows(data, name, ido) if all(c.matches(row) for c in conditions)]
        return SortedRows.build(matching, order, descending)

    view = data.cached(("ido-view", name, conditions, order, descending), ido.entity, build)
    start, stop, more = _window(
        view, params.get("loadtype", "FIRST").upper(), params.get("bookmark", ""), cap
    )
    page = view.rows[start:stop]
    items = [{**{p: row.get(p, "") for p in properties}, "_ItemId": row["_ItemId"]} for row in page]
    return {
        "Items": items,
        "Bookmark": _bookmark(view, page[0], page[-1]) if page else "",
        "MoreRowsExist": more,
        "Message": "Success",
        "MessageCode": 0,
    }


# Update -------------------------------------------------------------------------------------------

# A validated change: applying it returns the refreshed row (None for a delete) and an undo, so a
# request whose later change is refused leaves nothing behind.
Undo = Callable[[], None]
Apply = Callable[[], tuple[Row | None, Undo]]


def _restore(mapping: dict[Any, Any], key: Any, value: Any) -> Undo:
    """An undo that puts ``value`` back under ``key`` (None: removes the key)."""

    def undo() -> None:
        if value is None:
            mapping.pop(key, None)
        else:
            mapping[key] = value

    return undo


def _iso_date(props: dict[str, str | None], name: str, required: bool = True) -> str | None:
    value = (props.get(name) or "").strip()
    if not value and not required:
        return None
    match = _DATE_PREFIX.match(value)
    try:
        if match is None:
            raise ValueError
        return date(*(int(g) for g in match.groups())).isoformat()
    except ValueError:
        raise IdoError(f"{name} {value!r} is not a valid date") from None


def _decimal(props: dict[str, str | None], name: str, default: str | None = None) -> Decimal:
    value = (props.get(name) or default or "").strip()
    try:
        return Decimal(value)
    except InvalidOperation:
        raise IdoError(f"{name} {value!r} is not a number") from None


def _year(value: str) -> int:
    if not value.strip().isdigit():
        raise IdoError(f"InvYear {value!r} is not a year")
    return int(value)


def _required(props: dict[str, str | None], *names: str) -> None:
    for name in names:
        if not (props.get(name) or "").strip():
            raise IdoError(f"Property {name} is required")


def _insert_po(data: TenantData, props: dict[str, str | None]) -> Apply:
    _required(props, "VendNum", "OrderDate")
    supplier = data.suppliers.get(props["VendNum"] or "")
    if supplier is None:
        raise IdoError(f"Vendor {props['VendNum']} does not exist")
    po_number = (props.get("PoNum") or "").strip()
    if po_number and po_number in data.purchase_orders:
        raise IdoError(f"Purchase order {po_number} already exists")
    order_date = _iso_date(props, "OrderDate")
    status = {"O": "open", "C": "closed"}.get((props.get("Stat") or "O").strip())
    if status is None:
        raise IdoError(f"Stat {props.get('Stat')!r} is invalid")

    def apply() -> tuple[Row, Undo]:
        number = po_number or data.next_po_number()
        data.purchase_orders[number] = {
            "po_number": number,
            "supplier_id": supplier["supplier_id"],
            "order_date": order_date,
            "currency": props.get("CurrCode") or supplier["currency"],
            "status": status,
            "facility": None,
            "warehouse": props.get("Whse") or None,
            "external_ref": props.get("Uf_ExternalRef") or None,
            "lines": [],
            "modified_date": data.today_iso,
        }
        data.changed("purchase_orders")
        row = _with_id("SLPos", IDOS["SLPos"].key, _po(data.purchase_orders[number]))
        return row, _restore(data.purchase_orders, number, None)

    return apply


def _insert_po_item(data: TenantData, props: dict[str, str | None]) -> Apply:
    _required(props, "PoNum", "Item", "QtyOrdered")
    order = data.purchase_orders.get(props["PoNum"] or "")
    if order is None:
        raise IdoError(f"Purchase order {props['PoNum']} does not exist")
    quantity, cost = _decimal(props, "QtyOrdered"), _decimal(props, "ItemCost", "0")
    if quantity <= 0 or cost < 0:
        raise IdoError("QtyOrdered must be positive and ItemCost not negative")
    wanted_line = (props.get("PoLine") or "").strip()
    if wanted_line and (
        not wanted_line.isdigit() or any(str(li["line_number"]) == wanted_line for li in order["lines"])
    ):
        raise IdoError(f"PoLine {wanted_line!r} is invalid or already exists")

    def apply() -> tuple[Row, Undo]:
        line = (
            int(wanted_line)
            if wanted_line
            else max((li["line_number"] for li in order["lines"]), default=0) + 1
        )
        entry = {
            "line_number": line,
            "item_number": props["Item"],
            "description": props.get("Description"),
            "quantity": number_text(quantity),
            "unit_price": number_text(cost),
        }
        order["lines"].append(entry)
        previous_date, order["modified_date"] = order["modified_date"], data.today_iso
        data.changed("purchase_orders")
        row = next(r for r in _po_items(order) if r["PoLine"] == str(line))

        def undo() -> None:
            order["lines"].remove(entry)
            order["modified_date"] = previous_date

        return _with_id("SLPoItems", IDOS["SLPoItems"].key, row), undo

    return apply


def _insert_ap(data: TenantData, props: dict[str, str | None]) -> Apply:
    _required(props, "VendNum", "InvNum", "InvDate", "InvAmt")
    supplier = data.suppliers.get(props["VendNum"] or "")
    if supplier is None:
        raise IdoError(f"Vendor {props['VendNum']} does not exist")
    invoice_date = _iso_date(props, "InvDate") or ""
    record = {
        "division": (props.get("Site") or DIVISION).strip(),
        "supplier_id": supplier["supplier_id"],
        "invoice_number": (props["InvNum"] or "").strip(),
        "invoice_year": _year(props.get("InvYear") or invoice_date[:4]),
        "invoice_date": invoice_date,
        "due_date": _iso_date(props, "DueDate", required=False),
        "currency": props.get("CurrCode") or supplier["currency"],
        "amount": number_text(_decimal(props, "InvAmt")),
        "status": {"O": "open", "P": "paid", "C": "cancelled"}.get(
            (props.get("Stat") or "O").strip(), "open"
        ),
        "modified_date": data.today_iso,
    }
    key = invoice_key(record, "supplier_id")
    if key in data.ap_invoices:
        raise IdoError("Invoice already exists")

    def apply() -> tuple[Row, Undo]:
        data.ap_invoices[key] = record
        data.changed("ap_invoices")
        return _with_id("SLAptrxs", IDOS["SLAptrxs"].key, _ap(data, record)), _restore(
            data.ap_invoices, key, None
        )

    return apply


def _insert_payment(data: TenantData, props: dict[str, str | None]) -> Apply:
    _required(props, "CustNum", "InvNum", "InvYear", "Amount")
    key = (
        (props.get("Site") or DIVISION).strip(),
        props["CustNum"] or "",
        props["InvNum"] or "",
        props["InvYear"] or "",
    )
    invoice = data.ar_invoices.get(key)
    if invoice is None:
        raise IdoError(f"Invoice {key[2]}/{key[3]} does not exist for customer {key[1]}")
    amount = _decimal(props, "Amount")
    currency = props.get("CurrCode") or invoice["currency"]
    if currency != invoice["currency"]:
        raise IdoError(f"Currency {currency} differs from invoice currency {invoice['currency']}")
    pay_date = _iso_date(props, "PayDate", required=False) or data.today_iso
    try:
        check_ar_payment(invoice, amount)
    except BusinessError as exc:
        raise IdoError(str(exc)) from None

    def apply() -> tuple[Row, Undo]:
        before = {name: invoice[name] for name in ("open_amount", "status", "modified_date")}
        apply_ar_payment(data, invoice, amount)
        payment = {
            "division": key[0],
            "customer_id": key[1],
            "invoice_number": key[2],
            "invoice_year": int(key[3]),
            "amount": number_text(amount),
            "currency": currency,
            "payment_date": pay_date,
            "reference": props.get("Reference") or "",
            "dimensions": [props["Acct"]] if props.get("Acct") else [],
            "batch_id": None,
            "line_number": None,
            "recorded_date": data.today_iso,
        }
        data.ar_payments.append(payment)

        def undo() -> None:
            invoice.update(before)
            data.ar_payments.remove(payment)

        row = _with_id("SLArPayments", IDOS["SLArPayments"].key, _payment(len(data.ar_payments), payment))
        return row, undo

    return apply


EXTENSION_PROPS = {"Uf_PayoutStatus": "status", "Uf_ExternalId": "external_id", "Uf_StatusAt": "updated_at"}


def _update_invoice(data: TenantData, name: str, keys: dict[str, str], props: dict[str, str | None]) -> Apply:
    file, party, table = (
        ("FPLEDG", "VendNum", data.ap_invoices)
        if name == "SLAptrxs"
        else ("FSLEDG", "CustNum", data.ar_invoices)
    )
    key = (keys.get("Site", ""), keys.get(party, ""), keys.get("InvNum", ""), keys.get("InvYear", ""))
    record = table.get(key)
    if record is None:
        raise IdoError("The row to update no longer exists")
    readonly = [p for p in props if p not in EXTENSION_PROPS]
    if readonly:
        raise IdoError(f"Property {readonly[0]} cannot be updated on IDO {name}")

    def apply() -> tuple[Row, Undo]:
        ext_key = extension_key(file, list(key))
        before = dict(data.extensions[ext_key]) if ext_key in data.extensions else None
        data.set_extension(file, list(key), {EXTENSION_PROPS[p]: v or "" for p, v in props.items()})

        row = _with_id(name, IDOS[name].key, _ap(data, record) if name == "SLAptrxs" else _ar(data, record))
        return row, _restore(data.extensions, ext_key, before)

    return apply


def _delete(data: TenantData, name: str, keys: dict[str, str]) -> Apply:
    """[I] deletes are supported for POs, PO lines and AP vouchers (what a correction needs)."""
    ap_key = (keys.get("Site", ""), keys.get("VendNum", ""), keys.get("InvNum", ""), keys.get("InvYear", ""))
    order = data.purchase_orders.get(keys.get("PoNum", ""))
    if not (
        (name in ("SLPos", "SLPoItems") and order) or (name == "SLAptrxs" and ap_key in data.ap_invoices)
    ):
        raise IdoError(f"Delete is not supported on IDO {name} or the row does not exist")

    def apply() -> tuple[None, Undo]:
        if name == "SLAptrxs":
            invoice = data.ap_invoices.pop(ap_key)
            data.changed("ap_invoices")
            return None, _restore(data.ap_invoices, ap_key, invoice)
        data.changed("purchase_orders")
        if name == "SLPos":
            del data.purchase_orders[keys["PoNum"]]
            return None, _restore(data.purchase_orders, keys["PoNum"], order)
        lines, modified = order["lines"], order["modified_date"]
        order["lines"] = [li for li in lines if str(li["line_number"]) != keys.get("PoLine")]
        order["modified_date"] = data.today_iso
        return None, lambda: order.update(lines=lines, modified_date=modified)

    return apply


INSERTS: dict[str, Callable[[TenantData, dict[str, str | None]], Apply]] = {
    "SLPos": _insert_po,
    "SLPoItems": _insert_po_item,
    "SLAptrxs": _insert_ap,
    "SLArPayments": _insert_payment,
}


def _change_props(change: dict[str, Any]) -> dict[str, str | None]:
    props: dict[str, str | None] = {}
    for prop in change.get("Properties") or []:
        if prop.get("Modified", True) is False or not prop.get("Name"):
            continue
        value = prop.get("Value")
        props[prop["Name"]] = None if prop.get("IsNull") or value is None else str(value)
    return props


def _item_keys(change: dict[str, Any], props: dict[str, str | None]) -> dict[str, str]:
    item = change.get("ItemId") or props.pop("_ItemId", None) or ""
    keys = dict(_ITEM_PART.findall(item))
    if not keys:
        raise IdoError("ItemId is required to update or delete a row")
    return keys


def _plan(data: TenantData, name: str, ido: Ido, change: dict[str, Any]) -> Apply:
    action = change.get("Action")
    props = _change_props(change)
    unknown = [p for p in props if p not in ido.properties and p != "_ItemId"]
    if unknown:
        raise IdoError(f"Property {unknown[0]} not found on IDO {name}")
    if action == 1:
        insert = INSERTS.get(name)
        if insert is None:
            raise IdoError(f"Insert is not supported on IDO {name}")
        return insert(data, props)
    if action == 2:
        keys = _item_keys(change, props)
        if name not in ("SLAptrxs", "SLArtrans"):
            raise IdoError(f"Update is not supported on IDO {name}")
        return _update_invoice(data, name, keys, props)
    if action == 4:
        return _delete(data, name, _item_keys(change, props))
    raise IdoError(f"Unknown Action {action!r}")


def update(data: TenantData, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Apply the changes in order, each seeing the ones before it; all or nothing."""
    ido = _ido(name)
    changes = body.get("Changes") or []
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        return {"Success": False, "Message": "Changes must be a list of objects", "Changes": []}
    refreshed: list[Row] = []
    undos: list[Undo] = []
    try:
        for change in changes:
            row, undo = _plan(data, name, ido, change)()
            undos.append(undo)
            if row is not None:
                refreshed.append(row)
    except IdoError as exc:
        for undo in reversed(undos):
            undo()
        data.changed(ido.entity, "ap_invoices", "ar_invoices", "ar_payments")
        return {"Success": False, "Message": str(exc), "Changes": []}
    return {"Success": True, "Message": None, "Changes": refreshed}
