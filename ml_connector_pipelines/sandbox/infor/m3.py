"""M3 MI programs over the tenant dataset: ``execute`` answers one v2 GET
``/M3/m3api-rest/v2/execute/{PROGRAM}/{TRANSACTION}`` with the v2 body (see INFOR_SPEC.md).

All values are strings, dates YYYYMMDD. Business failures are HTTP 200 with ``errorMessage`` in
``results[0]``; malformed requests (unknown transaction, missing mandatory input) are HTTP 400.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from . import mi_metadata
from .data import TenantData
from .query import QueryError, Row, SortedRows, parse_search, parse_select, sort_key
from .seed import DIVISION, Record

COMPANY = "100"  # [I] the one company (CONO) of every sandbox tenant
DEFAULT_MAXRECS = 100  # [I] server default when the caller sends no maxrecs


class BusinessError(Exception):
    """ServerReturnedNOK: the transaction ran and refused."""

    def __init__(self, message: str, field: str = "", code: str = "WXX0001") -> None:
        super().__init__(message)
        self.field, self.code = field, code


class RequestError(Exception):
    """HTTP 400 with top-level error keys."""

    def __init__(self, message: str, error_type: str, field: str = "") -> None:
        super().__init__(message)
        self.error_type, self.field = error_type, field


@dataclass(frozen=True)
class Call:
    transaction: str
    inputs: dict[str, str]
    maxrecs: int
    divi: str

    def get(self, name: str, default: str = "") -> str:
        return self.inputs.get(name, "").strip() or default


# Value conversions --------------------------------------------------------------------------------


def m3_date(iso: str | None) -> str:
    return iso.replace("-", "") if iso else ""


def parse_date(call: Call, name: str, required: bool = True) -> str | None:
    value = call.get(name)
    if not value and not required:
        return None
    try:
        if len(value) != 8 or not value.isdigit():
            raise ValueError
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])).isoformat()
    except ValueError:
        raise BusinessError(f"Date {value} is invalid", name, "WDT0102") from None


def parse_amount(call: Call, name: str, default: str | None = None) -> Decimal:
    value = call.get(name, default or "")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise BusinessError(f"Value {value!r} in field {name} is not numeric", name, "WNU0101") from None


def number_text(value: Decimal) -> str:
    """M3 shows numbers without trailing zeros."""
    return format(value.normalize(), "f")


# Tables read by EXPORTMI --------------------------------------------------------------------------


def _supplier_row(s: Record) -> Row:
    return {
        "IDCONO": COMPANY,
        "IDSUNO": s["supplier_id"],
        "IDSUNM": s["name"],
        "IDCUCD": s["currency"],
        "IDSTAT": "20" if s["status"] == "active" else "90",
        "IDCSCD": s.get("country") or "",
        "IDLMDT": m3_date(s["modified_date"]),
    }


def _customer_row(c: Record) -> Row:
    return {
        "OKCONO": COMPANY,
        "OKCUNO": c["customer_id"],
        "OKCUNM": c["name"],
        "OKCUCD": c["currency"],
        "OKSTAT": "20",
        "OKCSCD": c.get("country") or "",
        "OKMAIL": c.get("email") or "",
        "OKCUA1": c.get("address_line") or "",
        "OKTOWN": c.get("city") or "",
        "OKPONO": c.get("post_code") or "",
        "OKLMDT": m3_date(c["modified_date"]),
    }


RECO = {"open": "0", "paid": "9", "cancelled": "8"}
# Ledger transaction codes (M3 convention [I]): AP invoice 40; AR invoice 10, AR payment 20.
AP_INVOICE_TRCD, AR_INVOICE_TRCD, AR_PAYMENT_TRCD = "40", "10", "20"


def _ap_row(i: Record) -> Row:
    return {
        "EPCONO": COMPANY,
        "EPDIVI": i["division"],
        "EPSUNO": i["supplier_id"],
        "EPSINO": i["invoice_number"],
        "EPINYR": str(i["invoice_year"]),
        "EPIVDT": m3_date(i["invoice_date"]),
        "EPDUDT": m3_date(i.get("due_date")),
        "EPTRCD": AP_INVOICE_TRCD,
        "EPCUCD": i["currency"],
        "EPCUAM": i["amount"],
        "EPRECO": RECO[i["status"]],
        "EPLMDT": m3_date(i["modified_date"]),
    }


def _ar_row(i: Record) -> Row:
    return {
        "ESCONO": COMPANY,
        "ESDIVI": i["division"],
        "ESCUNO": i["customer_id"],
        "ESCINO": i["invoice_number"],
        "ESINYR": str(i["invoice_year"]),
        "ESTRCD": AR_INVOICE_TRCD,
        "ESIVDT": m3_date(i["invoice_date"]),
        "ESDUDT": m3_date(i.get("due_date")),
        "ESCUCD": i["currency"],
        "ESCUAM": i["amount"],
        "ESRECO": RECO[i["status"]],
        "ESLMDT": m3_date(i["modified_date"]),
        "ESCKNO": "",
    }


def _ar_ledger(data: TenantData) -> list[Row]:
    """FSLEDG: each invoice, each payment posted since, and for a seeded invoice already (partly)
    settled, one settlement transaction for the part no recorded payment explains."""
    rows = [_ar_row(i) for i in data.ar_invoices.values()]
    posted: dict[tuple[str, str, str, str], Decimal] = {}
    for p in data.ar_payments:
        key = (p["division"], p["customer_id"], p["invoice_number"], str(p["invoice_year"]))
        posted[key] = posted.get(key, Decimal(0)) + Decimal(p["amount"])
        rows.append(_ar_payment_row(data, p))
    for key, invoice in data.ar_invoices.items():
        gap = Decimal(invoice["amount"]) - Decimal(invoice["open_amount"]) - posted.get(key, Decimal(0))
        if gap:
            settlement = {
                "division": key[0],
                "customer_id": key[1],
                "invoice_number": key[2],
                "invoice_year": key[3],
                "amount": str(gap),
                "currency": invoice["currency"],
                "payment_date": invoice["invoice_date"],
                "reference": "",
            }
            rows.append(_ar_payment_row(data, settlement))
    return rows


def _ar_payment_row(data: TenantData, p: Record) -> Row:
    """A payment (or refund) as an AR ledger transaction: a credit on the invoice it settles."""
    invoice = data.ar_invoices.get(
        (p["division"], p["customer_id"], p["invoice_number"], str(p["invoice_year"]))
    )
    return {
        "ESCONO": COMPANY,
        "ESDIVI": p["division"],
        "ESCUNO": p["customer_id"],
        "ESCINO": p["invoice_number"],
        "ESINYR": str(p["invoice_year"]),
        "ESTRCD": AR_PAYMENT_TRCD,
        "ESIVDT": m3_date(p["payment_date"]),
        "ESDUDT": "",
        "ESCUCD": p["currency"] or (invoice or {}).get("currency", ""),
        "ESCUAM": number_text(-Decimal(p["amount"])),
        "ESRECO": RECO[invoice["status"]] if invoice else "0",
        "ESLMDT": m3_date(p.get("posted_date") or p["payment_date"]),
        "ESCKNO": p["reference"] or "",
    }


PO_STATUS = {"open": "20", "closed": "85"}  # [I] M3 PO status codes for our two canonical states


def _po_row(p: Record) -> Row:
    return {
        "IACONO": COMPANY,
        "IAPUNO": p["po_number"],
        "IASUNO": p["supplier_id"],
        "IACUCD": p["currency"],
        "IAPUDT": m3_date(p["order_date"]),
        "IAPUST": PO_STATUS.get(p["status"], "20"),
        "IAFACI": p.get("facility") or "",
        "IAWHLO": p.get("warehouse") or "",
        "IALMDT": m3_date(p["modified_date"]),
        "IAYRE1": p.get("external_ref") or "",
    }


def _po_line_rows(p: Record) -> list[Row]:
    return [
        {
            "IBCONO": COMPANY,
            "IBPUNO": p["po_number"],
            "IBPNLI": str(line["line_number"]),
            "IBITNO": line["item_number"],
            "IBPITD": line.get("description") or "",
            "IBORQA": line["quantity"],
            "IBPUPR": line["unit_price"],
            "IBLMDT": m3_date(p["modified_date"]),
        }
        for line in p["lines"]
    ]


def _gl_row(a: Record) -> Row:
    return {
        "EACONO": COMPANY,
        "EADIVI": "",
        "EAAITP": str(a["dimension"]),
        "EAAITM": a["account_id"],
        "EATX40": a["description"],
        "EALMDT": m3_date(a["modified_date"]),
    }


@dataclass(frozen=True)
class Table:
    entity: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    lmdt: str
    render: Callable[[TenantData], list[Row]]


def _table(entity: str, columns: str, key: str, render: Callable[[TenantData], list[Row]]) -> Table:
    """Columns and key as space separated names, the way the spec lists them."""
    names = tuple(columns.split())
    return Table(entity, names, tuple(key.split()), next(c for c in names if c.endswith("LMDT")), render)


TABLES: dict[str, Table] = {
    "CIDMAS": _table(
        "suppliers",
        "IDCONO IDSUNO IDSUNM IDCUCD IDSTAT IDCSCD IDLMDT",
        "IDSUNO",
        lambda d: [_supplier_row(r) for r in d.suppliers.values()],
    ),
    # The supplier address file [I: M3's CIDADR, prefix SA]: the address CRS620MI/LstAddresses lists.
    "CIDADR": _table(
        "suppliers",
        "SACONO SASUNO SAADTE SAADID SASUNM SAADR1 SATOWN SAECAR SAPONO SACSCD SALMDT",
        "SASUNO SAADTE SAADID",
        lambda d: [
            {"SA" + name: value for name, value in row.items()}
            | {"SALMDT": m3_date(supplier["modified_date"])}
            for supplier in d.suppliers.values()
            for row in _supplier_addresses(supplier)
        ],
    ),
    "OCUSMA": _table(
        "customers",
        "OKCONO OKCUNO OKCUNM OKCUCD OKSTAT OKCSCD OKMAIL OKCUA1 OKTOWN OKPONO OKLMDT",
        "OKCUNO",
        lambda d: [_customer_row(r) for r in d.customers.values()],
    ),
    "FPLEDG": _table(
        "ap_invoices",
        "EPCONO EPDIVI EPSUNO EPSINO EPINYR EPTRCD EPIVDT EPDUDT EPCUCD EPCUAM EPRECO EPLMDT",
        "EPDIVI EPSUNO EPSINO EPINYR",
        lambda d: [_ap_row(r) for r in d.ap_invoices.values()],
    ),
    "FSLEDG": _table(
        "ar_invoices",
        "ESCONO ESDIVI ESCUNO ESCINO ESINYR ESTRCD ESIVDT ESDUDT ESCUCD ESCUAM ESRECO ESLMDT ESCKNO",
        "ESDIVI ESCUNO ESCINO ESINYR ESTRCD ESCKNO",
        lambda d: _ar_ledger(d),
    ),
    "MPHEAD": _table(
        "purchase_orders",
        "IACONO IAPUNO IASUNO IACUCD IAPUDT IAPUST IAFACI IAWHLO IALMDT IAYRE1",
        "IAPUNO",
        lambda d: [_po_row(r) for r in d.purchase_orders.values()],
    ),
    "MPLINE": _table(
        "purchase_orders",
        "IBCONO IBPUNO IBPNLI IBITNO IBPITD IBORQA IBPUPR IBLMDT",
        "IBPUNO IBPNLI",
        lambda d: [row for r in d.purchase_orders.values() for row in _po_line_rows(r)],
    ),
    "FCHACC": _table(
        "gl_accounts",
        "EACONO EADIVI EAAITP EAAITM EATX40 EALMDT",
        "EAAITP EAAITM",
        lambda d: [_gl_row(r) for r in d.gl_accounts.values()],
    ),
}


def select_rows(data: TenantData, query: str, maxrecs: int) -> tuple[tuple[str, ...], list[Row]]:
    """Run an EXPORTMI query. Narrow by one equality (hash bucket, cached), then keyset-scan a cached sort."""
    try:
        q = parse_select(query)
    except QueryError as exc:
        raise BusinessError(f"Invalid query: {exc}", "QERY", "XQE0001") from None
    table = TABLES.get(q.table)
    if table is None:
        raise BusinessError(f"Table {q.table} does not exist", "QERY", "XQE0002")
    known = table.columns
    for condition in q.conditions:
        if condition.column.endswith("CONO"):
            # Infor: company selections are not supported; the company is the session's (cono option).
            raise BusinessError(
                f"Selection on company field {condition.column} is not supported", "QERY", "XQE0004"
            )
    for column in [*q.columns, *(c.column for c in q.conditions), *([q.order_by] if q.order_by else [])]:
        if column not in known:
            raise BusinessError(f"Column {column} does not exist in {q.table}", "QERY", "XQE0003")
    equalities = [c for c in q.conditions if c.op == "="]
    # Prefer the change date, then anything but the company (which every row shares).
    eq = next((c for c in equalities if c.column == table.lmdt), None) or next(
        (c for c in equalities if not c.column.endswith("CONO")), None
    )
    order = (q.order_by, *(k for k in table.key if k != q.order_by)) if q.order_by else table.key

    def all_rows() -> list[Row]:
        return data.cached(("m3-rows", q.table), table.entity, lambda: table.render(data))

    def buckets(column: str) -> dict[Any, list[Row]]:
        grouped: dict[Any, list[Row]] = {}
        for row in all_rows():
            grouped.setdefault(sort_key(row[column]), []).append(row)
        return grouped

    def build() -> SortedRows:
        rows = (
            all_rows()
            if eq is None
            else data.cached(("m3-eq", q.table, eq.column), table.entity, lambda: buckets(eq.column)).get(
                eq.key, []
            )
        )
        return SortedRows.build(rows, order)

    view = data.cached(
        ("m3-sorted", q.table, eq.column if eq else None, eq.key if eq else None, order), table.entity, build
    )
    return q.columns or known, view.scan(q.conditions, maxrecs)


def _exportmi_select(data: TenantData, call: Call) -> list[Row]:
    columns, rows = select_rows(data, call.get("QERY"), call.maxrecs)
    separator = call.inputs.get("SEPC") or ";"
    records = [{"REPL": separator.join(row[c] for c in columns)} for row in rows]
    if call.get("HDRS") == "1":  # [I] the header row does not count against maxrecs
        records.insert(0, {"REPL": separator.join(columns)})
    return records


# List transactions for tenants that lock EXPORTMI: CRS620MI, CRS610MI, CRS630MI -----------------------


def timestamp(iso_day: str, key: str) -> int:
    """A record's LMTS: .NET ticks (100 ns since 0001-01-01) at a stable time of its change day [I]."""
    day = date.fromisoformat(iso_day)
    seconds = 3600 + int(hashlib.sha256(f"{iso_day}/{key}".encode()).hexdigest()[:8], 16) % (22 * 3600)
    return ((day - date(1, 1, 1)).days * 86_400 + seconds) * 10_000_000


def _lmts(call: Call) -> int:
    value = call.get("LMTS", "0")
    if not value.isdigit():
        raise BusinessError(f"Timestamp {value} is invalid", "LMTS", "WTS0101")
    return int(value)


def _keyset(records: list[Record], key: str, start: str) -> list[Record]:
    """Records in key order from `start` (inclusive), as M3's Lst* transactions read."""
    return sorted((r for r in records if r[key] >= start), key=lambda r: r[key])


def _crs620_list(data: TenantData, call: Call) -> list[Row]:
    since = _lmts(call)
    suppliers = [
        s
        for s in _keyset(list(data.suppliers.values()), "supplier_id", call.get("FRSU"))
        if timestamp(s["modified_date"], s["supplier_id"]) >= since
        and (not call.get("TOSU") or s["supplier_id"] <= call.get("TOSU"))
    ]
    return [
        {
            "CONO": COMPANY,
            "SUNO": s["supplier_id"],
            "SUNM": s["name"],
            "CSCD": s.get("country") or "",
            "CUCD": s["currency"],
        }
        for s in suppliers
    ]


def _crs620_get(data: TenantData, call: Call) -> list[Row]:
    supplier = data.suppliers.get(call.get("SUNO"))
    if supplier is None:
        raise BusinessError(f"Supplier {call.get('SUNO')} does not exist", "SUNO", "WSU0103")
    row = _supplier_row(supplier)
    return [{name[2:]: value for name, value in row.items()}]  # GetBasicData has no LMDT: cut to outputs


def _crs610_list(data: TenantData, call: Call) -> list[Row]:
    since = _lmts(call)
    rows = []
    for c in _keyset(list(data.customers.values()), "customer_id", call.get("CUNO")):
        if timestamp(c["modified_date"], c["customer_id"]) >= since:
            rows.append({name[2:]: value for name, value in _customer_row(c).items()})
    return rows


def _crs610_get(data: TenantData, call: Call) -> list[Row]:
    customer = data.customers.get(call.get("CUNO"))
    if customer is None:
        raise BusinessError(f"Customer {call.get('CUNO')} does not exist", "CUNO", "WCU0103")
    return [{name[2:]: value for name, value in _customer_row(customer).items()}]


def _crs630_list(data: TenantData, call: Call) -> list[Row]:
    accounts = [a for a in data.gl_accounts.values() if str(a["dimension"]) == call.get("AITP")]
    return [
        {
            **{name[2:]: value for name, value in _gl_row(a).items()},
            "LMTS": str(timestamp(a["modified_date"], a["account_id"])),
        }
        for a in _keyset(accounts, "account_id", call.get("AITM"))
    ]


# ARS200MI: the AR ledger for tenants that lock EXPORTMI ----------------------------------------------


def _ar_ledger_rows(data: TenantData) -> list[Row]:
    return data.cached(("m3-rows", "FSLEDG"), "ar_invoices", lambda: _ar_ledger(data))


def _ar_ledger_keyed(data: TenantData) -> dict[tuple[str, str, str, str], list[Row]]:
    def group() -> dict[tuple[str, str, str, str], list[Row]]:
        grouped: dict[tuple[str, str, str, str], list[Row]] = {}
        for row in _ar_ledger_rows(data):
            grouped.setdefault((row["ESDIVI"], row["ESCUNO"], row["ESCINO"], row["ESINYR"]), []).append(row)
        return grouped

    return data.cached(("m3-ar-by-invoice",), "ar_invoices", group)


def _ars200_by_division(data: TenantData, call: Call) -> list[Row]:
    """LstInvByDivi: ledger rows of the divisions FDIV..TDIV (blank: open-ended) from customer CUNO
    (inclusive), in customer, invoice, year order [I]. PYNO (payer) is the customer: the seed has
    no separate payers."""
    low, high, start = call.get("FDIV"), call.get("TDIV"), call.get("CUNO")
    rows = [
        row
        for row in _ar_ledger_rows(data)
        if row["ESCUNO"] >= start and row["ESDIVI"] >= low and (not high or row["ESDIVI"] <= high)
    ]
    rows.sort(key=lambda r: (r["ESCUNO"], r["ESCINO"], r["ESINYR"], r["ESDIVI"], r["ESTRCD"]))
    return [
        {
            "DIVI": r["ESDIVI"],
            "PYNO": r["ESCUNO"],
            "CUNO": r["ESCUNO"],
            "CINO": r["ESCINO"],
            "INYR": r["ESINYR"],
            "TRCD": r["ESTRCD"],
            "CUAM": r["ESCUAM"],
            "RECO": r["ESRECO"],
            "IVDT": r["ESIVDT"],
            "DUDT": r["ESDUDT"],
        }
        for r in rows
    ]


def _ars200_totals(data: TenantData, call: Call) -> list[Row]:
    """GetInvTotInfo: the invoice with its currency, change date and outstanding amount (the invoice
    plus its other ledger transactions)."""
    key = (call.get("DIVI"), call.get("CUNO"), call.get("CINO"), call.get("INYR"))
    rows = _ar_ledger_keyed(data).get(key, [])
    invoice = next((r for r in rows if r["ESTRCD"] == AR_INVOICE_TRCD), None)
    if invoice is None or call.get("PYNO") != invoice["ESCUNO"]:
        raise BusinessError(f"Invoice {call.get('CINO')} does not exist", "CINO", "WCI0103")
    outstanding = sum((Decimal(r["ESCUAM"]) for r in rows), Decimal(0))
    return [
        {
            "PYNO": invoice["ESCUNO"],
            "CUNO": invoice["ESCUNO"],
            "CINO": invoice["ESCINO"],
            "INYR": invoice["ESINYR"],
            "CUCD": invoice["ESCUCD"],
            "CUAM": invoice["ESCUAM"],
            "IVDT": invoice["ESIVDT"],
            "DUDT": invoice["ESDUDT"],
            "RECO": invoice["ESRECO"],
            "LMDT": invoice["ESLMDT"],
            "OCUA": str(outstanding),
        }
    ]


# Enterprise Search (APS200MI, PPS200MI, ARS200MI Search*) and the gets on what it finds -------------
#
# SQRY is a Lucene query on the program's search index; which fields an index holds is the tenant's
# search configuration [I]. The sandbox's indexes hold the fields below, matched exactly (or as a
# prefix), and refuse any other field or syntax (query.parse_search).

AP_SEARCH_FIELDS = frozenset("DIVI SUNO SPYN SINO INYR TRCD IVDT DUDT CUCD RECO LMDT".split())
PO_SEARCH_FIELDS = frozenset("DIVI PUNO SUNO CUCD PUDT PUST FACI WHLO LMDT YRE1".split())
AR_SEARCH_FIELDS = frozenset("DIVI CUNO PYNO CINO INYR TRCD IVDT DUDT CUCD RECO LMDT CKNO".split())


def _search(call: Call, rows: list[Row], fields: frozenset[str]) -> list[Row]:
    try:
        terms = parse_search(call.get("SQRY"))
    except QueryError as exc:
        raise BusinessError(f"Invalid search query: {exc}", "SQRY", "XSE0002") from None
    for term in terms:
        if term.field not in fields:
            raise BusinessError(f"Field {term.field} is not in the search index", "SQRY", "XSE0003")
    return [row for row in rows if all(term.matches(row[term.field]) for term in terms)]


def _hits(rows: list[Row], program: str, file: str) -> list[Row]:
    """Search hits with the index's own columns: program, file, key string [I]."""
    return [
        {**row, "PGNM": program, "FILE": file, "KSTR": f"{row['YEA4']}/{row['JRNO']}/{row['JSNO']}"}
        for row in rows
    ]


def _ap_ledger_row(data: TenantData, key: tuple[str, ...], invoice: Record) -> Row:
    """An FPLEDG row without its prefix, with its voucher; the payee (SPYN) is the supplier."""
    row = {name[2:]: value for name, value in _ap_row(invoice).items()}
    yea4, jrno, jsno = data.voucher("FPLEDG", key, row["INYR"])
    return {**row, "SPYN": row["SUNO"], "YEA4": yea4, "JRNO": jrno, "JSNO": jsno, "IVBL": ""}


def _aps200_search(data: TenantData, call: Call) -> list[Row]:
    rows = [_ap_ledger_row(data, key, invoice) for key, invoice in data.ap_invoices.items()]
    return _hits(_search(call, rows, AP_SEARCH_FIELDS), "APS200MI", "FPLEDG")


def _voucher_key(data: TenantData, call: Call, ledger: str) -> tuple[str, ...]:
    key = data.voucher_row(ledger, call.get("YEA4"), call.get("JRNO"), call.get("JSNO"))
    if key is None:
        raise BusinessError(
            f"Voucher {call.get('YEA4')}/{call.get('JRNO')}/{call.get('JSNO')} does not exist",
            "JRNO",
            "WJR0103",
        )
    return key


def _aps200_get(data: TenantData, call: Call) -> list[Row]:
    key = _voucher_key(data, call, "FPLEDG")
    invoice = data.ap_invoices.get(key)  # type: ignore[arg-type]
    if invoice is None:
        raise BusinessError(f"Voucher {call.get('JRNO')} does not exist", "JRNO", "WJR0103")
    return [_ap_ledger_row(data, key, invoice)]


AR_LEDGER_KEY = TABLES["FSLEDG"].key


def _ar_search_rows(data: TenantData) -> list[Row]:
    rows = []
    for ledger_row in _ar_ledger_rows(data):
        key = tuple(ledger_row[name] for name in AR_LEDGER_KEY)
        row = {name[2:]: value for name, value in ledger_row.items()}
        yea4, jrno, jsno = data.voucher("FSLEDG", key, row["INYR"])
        rows.append({**row, "PYNO": row["CUNO"], "YEA4": yea4, "JRNO": jrno, "JSNO": jsno})
    return rows


def _ars200_search(data: TenantData, call: Call) -> list[Row]:
    return _hits(_search(call, _ar_search_rows(data), AR_SEARCH_FIELDS), "ARS200MI", "FSLEDG")


def _ars200_get(data: TenantData, call: Call) -> list[Row]:
    key = _voucher_key(data, call, "FSLEDG")
    for row in _ar_search_rows(data):
        if tuple(row[name[2:]] for name in AR_LEDGER_KEY) == key:
            return [row]
    raise BusinessError(f"Voucher {call.get('JRNO')} does not exist", "JRNO", "WJR0103")


def _po_head_record(p: Record) -> Row:
    row = {name[2:]: value for name, value in _po_row(p).items()}
    return {**row, "DIVI": DIVISION, "PUSL": row["PUST"]}


def _pps200_search(data: TenantData, call: Call) -> list[Row]:
    rows = [_po_head_record(p) for p in data.purchase_orders.values()]
    found = _search(call, rows, PO_SEARCH_FIELDS)
    return [{**row, "PGNM": "PPS200MI", "FILE": "MPHEAD", "KSTR": row["PUNO"]} for row in found]


def _purchase_order(data: TenantData, call: Call) -> Record:
    order = data.purchase_orders.get(call.get("PUNO"))
    if order is None:
        raise BusinessError(f"PO number {call.get('PUNO')} does not exist", "PUNO", "WPU0103")
    return order


def _pps001_head(data: TenantData, call: Call) -> list[Row]:
    return [_po_head_record(_purchase_order(data, call))]


def _pps200_lines(data: TenantData, call: Call) -> list[Row]:
    order = _purchase_order(data, call)
    head = _po_head_record(order)
    return [
        {
            **{name[2:]: value for name, value in line.items()},
            "PNLS": "0",
            "SUNO": head["SUNO"],
            "FACI": head["FACI"],
            "WHLO": head["WHLO"],
            "PUST": head["PUST"],
            "PUSL": head["PUSL"],
        }
        for line in _po_line_rows(order)
    ]


# CRS692MI / CRS691MI: supplier bank accounts and bank branches ----------------------------------------

BANK_ID = "1"  # [I] every seeded supplier with bank details has exactly one account, BKID 1


def bank_branch(bic: str | None) -> tuple[str, str]:
    """(BKNO, BBRN) of a BIC's branch: BKNO is 8 long, the BIC's bank + country + location part [I]."""
    if not bic:
        return "", ""
    return bic[:8], bic[8:] or "XXX"


def _bank_record(data: TenantData, supplier: Record) -> Row:
    """The account in the real CRS692MI fields; outputs are cut to each transaction's own list.

    Payees M3 cannot hold (email payees: CRS692MI has no email field) have no account at all.
    """
    account = supplier["bank_account"]
    bkno, bbrn = bank_branch(account.get("bic"))
    if account.get("kind") == "local":  # [I] registered under its national bank / branch codes
        bkno, bbrn = account.get("bank_code") or "", account.get("branch_code") or ""
    number = account.get("account_number") or ""
    return {
        "CONO": COMPANY,
        "DIVI": "",
        "BKTP": data.supplier_bank_type,
        "ACHO": supplier["supplier_id"],
        "BKID": BANK_ID,
        "STAT": "20",
        "BANA": account.get("account_holder") or "",
        "CUCD": account.get("currency") or "",
        "IBAN": account.get("iban") or "",
        "BKNO": bkno,
        "BBRN": bbrn,
        "SWBI": account.get("bic") or "",
        "BRNO": account.get("aba_routing") or account.get("sort_code") or "",
        "CLSN": account.get("aba_routing") or account.get("sort_code") or "",
        "FIAN": number,
        "BACN": number,
        "BAF1": account.get("account_type") or "",  # [I] where tenants keep CHECKING / SAVINGS
    }


PAYEE_REFERENCE_TYPE = "PAY"  # [I] CRS620MI reference type of the payee contact (its EMAL)
PAYEE_ADDRESS_TYPE = "1"  # [I] CRS620MI address type (ADTE) of the supplier's own address


def m3_payee(supplier: Record, address_currencies: tuple[str, ...] = ("USD",)) -> Record:
    """The supplier as M3 can hold it (what an M3 extract must return): CRS692MI has no email or
    address fields, so an email payee's address is its supplier reference's EMAL
    (CRS620MI/LstSupplierRef), and a bank payee's address is the supplier's (CRS620MI/LstAddresses),
    read for payees in `address_currencies` only (the connector's `m3_payee_address_currencies`)."""
    account = supplier.get("bank_account")
    if not account:
        return supplier
    blank: dict[str, Any] = {}
    if account.get("kind") == "email" or account.get("currency") not in address_currencies:
        blank = dict.fromkeys(("city", "post_code", "address_line", "state"))
    if account.get("kind") != "email":
        blank["email"] = None
    return {**supplier, "bank_account": {**account, **blank, "clearing_number": None}}


def _crs620_addresses(data: TenantData, call: Call) -> list[Row]:
    supplier = data.suppliers.get(call.get("SUNO"))
    if supplier is None:
        raise BusinessError(f"Supplier {call.get('SUNO')} does not exist", "SUNO", "WSU0103")
    return _supplier_addresses(supplier)


def _supplier_addresses(supplier: Record) -> list[Row]:
    """The supplier's own address (the seed keeps it with the payee details): ADTE 1, ADID 1."""
    account = supplier.get("bank_account") or {}
    if not (account.get("address_line") or account.get("city")):
        return []
    return [
        {
            "CONO": COMPANY,
            "SUNO": supplier["supplier_id"],
            "ADTE": PAYEE_ADDRESS_TYPE,
            "ADID": "1",
            "SUNM": supplier["name"],
            "ADR1": account.get("address_line") or "",
            "TOWN": account.get("city") or "",
            "ECAR": account.get("state") or "",
            "PONO": account.get("post_code") or "",
            "CSCD": supplier.get("country") or "",
        }
    ]


def _crs620_references(data: TenantData, call: Call) -> list[Row]:
    supplier = data.suppliers.get(call.get("SUNO"))
    if supplier is None:
        raise BusinessError(f"Supplier {call.get('SUNO')} does not exist", "SUNO", "WSU0103")
    account = supplier.get("bank_account") or {}
    if account.get("kind") != "email" or not account.get("email"):
        return []
    return [
        {
            "CONO": COMPANY,
            "SUNO": supplier["supplier_id"],
            "RFTY": PAYEE_REFERENCE_TYPE,
            "RFID": "1",
            "EMAL": account["email"],
            "SUCM": account.get("account_holder") or "",
        }
    ]


PAYEE_EMAIL_TYPE = "02"  # [I] the CEMAIL e-mail type whose key (EMKY) is a supplier number


def _cemail_list(data: TenantData, call: Call) -> list[Row]:
    """MDBREADMI/LstCEMAIL00: the e-mail register of one type, in key order from EMKY (inclusive);
    of the suppliers, email payees only (the seed keeps no other supplier e-mail)."""
    if call.get("EMTP") != PAYEE_EMAIL_TYPE:
        return []
    payees = [
        s
        for s in data.suppliers.values()
        if (s.get("bank_account") or {}).get("kind") == "email" and s["bank_account"].get("email")
    ]
    return [
        {"EMTP": PAYEE_EMAIL_TYPE, "EMKY": s["supplier_id"], "EMR3": "", "EMAL": s["bank_account"]["email"]}
        for s in _keyset(payees, "supplier_id", call.get("EMKY"))
    ]


def _bank_holders(data: TenantData) -> list[Record]:
    return [
        s
        for s in data.suppliers.values()
        if s.get("bank_account") and (s["bank_account"].get("kind") != "email")
    ]


def _bank_supplier(data: TenantData, call: Call, need_bkid: bool) -> Record | None:
    supplier = data.suppliers.get(call.get("ACHO"))
    if call.get("BKTP") != data.supplier_bank_type or supplier is None or supplier not in _bank_holders(data):
        return None
    if need_bkid and call.get("BKID", BANK_ID) != BANK_ID:
        return None
    return supplier


def _crs692_by_holder(data: TenantData, call: Call) -> list[Row]:
    supplier = _bank_supplier(data, call, need_bkid=False)
    return [_bank_record(data, supplier)] if supplier else []


def _crs692_by_type(data: TenantData, call: Call) -> list[Row]:
    if call.get("BKTP") and call.get("BKTP") != data.supplier_bank_type:
        return []
    return [_bank_record(data, s) for s in sorted(_bank_holders(data), key=lambda s: s["supplier_id"])]


def _crs692_get(data: TenantData, call: Call) -> list[Row]:
    supplier = _bank_supplier(data, call, need_bkid=True)
    if supplier is None:
        raise BusinessError(f"Bank account {call.get('ACHO')} does not exist", "ACHO", "XRE0103")
    return [_bank_record(data, supplier)]


def _crs691_list(data: TenantData, call: Call) -> list[Row]:
    """Bank branches, in bank-number order from BKNO (inclusive), one per BIC the suppliers use."""
    branches: dict[tuple[str, str], Row] = {}
    for supplier in _bank_holders(data):
        bic = supplier["bank_account"].get("bic")
        bkno, bbrn = bank_branch(bic)
        if bkno and bkno >= call.get("BKNO"):
            branches[(bkno, bbrn)] = {
                "CONO": COMPANY,
                "DIVI": "",
                "BKNO": bkno,
                "BBRN": bbrn,
                "STAT": "20",
                "SWIC": bic or "",
                "CSCD": (bic or "")[4:6],
            }
    return [branches[key] for key in sorted(branches)]


def _crs692_change(data: TenantData, call: Call) -> list[Row]:
    """ChgBasicData: blank input means "no change", "?" clears the field [I, M3 convention]."""
    supplier = _bank_supplier(data, call, need_bkid=True)
    if supplier is None:
        raise BusinessError(f"Bank account {call.get('BKID')} does not exist", "BKID", "XRE0103")
    account = dict(supplier["bank_account"])
    for m3_name, names in (
        ("BANA", ("account_holder",)),
        ("CUCD", ("currency",)),
        ("IBAN", ("iban",)),
        ("FIAN", ("account_number",)),
        ("BRNO", ("aba_routing", "sort_code")),
    ):
        value = call.inputs.get(m3_name, "").strip()
        if not value:
            continue
        for name in names:
            if name in ("aba_routing", "sort_code") and value != "?":
                is_aba = supplier.get("country") == "US"
                account[name] = value if (name == "aba_routing") == is_aba else None
            else:
                account[name] = None if value == "?" else value
    country = supplier.get("country")
    account["kind"] = (
        "iban"
        if account.get("iban")
        else "aba"
        if country == "US"
        else "sort_code"
        if country in (None, "GB") or account.get("currency") == "GBP"
        else "local"
    )
    if account["kind"] == "iban":
        account["sort_code"] = account["aba_routing"] = None
    supplier["bank_account"] = account
    supplier["modified_date"] = data.today_iso
    data.changed("suppliers")
    return []


# PPS370MI: purchase order batch entry -------------------------------------------------------------


def _open_entry(data: TenantData, call: Call) -> Record:
    entry = data.po_entries.get(call.get("MSGN"))
    if entry is None or entry["finished"]:
        raise BusinessError(f"Message number {call.get('MSGN')} does not exist", "MSGN", "XRE0103")
    return entry


def _pps370_start(data: TenantData, call: Call) -> list[Row]:
    msgn = data.next_number()
    data.po_entries[msgn] = {"origin": call.get("BAOR"), "heads": {}, "finished": False}
    return [{"MSGN": msgn}]


def _pps370_head(data: TenantData, call: Call) -> list[Row]:
    entry = _open_entry(data, call)
    supplier = data.suppliers.get(call.get("SUNO"))
    if supplier is None:
        raise BusinessError(f"Supplier {call.get('SUNO')} does not exist", "SUNO", "WSU0103")
    delivery = parse_date(call, "DWDT")
    puno = data.next_po_number()
    entry["heads"][puno] = {
        "po_number": puno,
        "supplier_id": supplier["supplier_id"],
        "order_date": delivery,  # [I] the PO date is the requested delivery date we were given
        "currency": call.get("CUCD", supplier["currency"]),
        "status": "open",
        "facility": call.get("FACI", "A01"),
        "warehouse": call.get("WHLO", "100"),
        "external_ref": call.get("YRE1") or None,
        "lines": [],
        "modified_date": data.today_iso,
    }
    return [{"MSGN": call.get("MSGN"), "PUNO": puno}]


def _pps370_line(data: TenantData, call: Call) -> list[Row]:
    head = _open_entry(data, call)["heads"].get(call.get("PUNO"))
    if head is None:
        raise BusinessError(f"PO number {call.get('PUNO')} does not exist in this entry", "PUNO", "XRE0103")
    quantity = parse_amount(call, "ORQA")
    price = parse_amount(call, "PUPR", "0")
    if quantity <= 0:
        raise BusinessError("Quantity must be greater than zero", "ORQA", "WOR0101")
    if price < 0:
        raise BusinessError("Price must not be negative", "PUPR", "WPU0101")
    line = len(head["lines"]) + 1
    head["lines"].append(
        {
            "line_number": line,
            "item_number": call.get("ITNO"),
            "description": call.get("PITD") or None,
            "quantity": number_text(quantity),
            "unit_price": number_text(price),
        }
    )
    return [{"MSGN": call.get("MSGN"), "PUNO": head["po_number"], "PNLI": str(line)}]


def _pps370_finish(data: TenantData, call: Call) -> list[Row]:
    entry = _open_entry(data, call)
    for puno, head in entry["heads"].items():
        if not head["lines"]:
            raise BusinessError(f"PO {puno} has no lines", "MSGN", "WLI0101")
    for puno, head in entry["heads"].items():
        head["modified_date"] = data.today_iso
        data.purchase_orders[puno] = head
    entry["finished"] = True
    data.changed("purchase_orders")
    return []


# APS450MI / APS455MI: supplier invoice batches ----------------------------------------------------


def _ap_batch(data: TenantData, call: Call) -> Record:
    batch = data.ap_batches.get(call.get("INBN"))
    if batch is None:
        raise BusinessError(f"Invoice batch {call.get('INBN')} does not exist", "INBN", "XRE0103")
    return batch


def _aps450_head(data: TenantData, call: Call) -> list[Row]:
    supplier = data.suppliers.get(call.get("SUNO"))
    if supplier is None:
        raise BusinessError(f"Supplier {call.get('SUNO')} does not exist", "SUNO", "WSU0103")
    invoice_date = parse_date(call, "IVDT") or ""
    due_date = parse_date(call, "DUDT", required=False)
    amount = parse_amount(call, "CUAM")
    division = call.get("DIVI", call.divi)
    key = (division, supplier["supplier_id"], call.get("SINO"), invoice_date[:4])
    # [I] only recorded invoices count as duplicates: an unvalidated batch from a lost answer must not
    # block the retry that follows it.
    if key in data.ap_invoices:
        raise BusinessError("Invoice already exists", "SINO", "WSI0201")
    inbn = data.next_number()
    data.ap_batches[inbn] = {
        "division": division,
        "supplier_id": key[1],
        "invoice_number": key[2],
        "invoice_year": int(key[3]),
        "invoice_date": invoice_date,
        "due_date": due_date,
        "currency": call.get("CUCD", supplier["currency"]),
        "amount": number_text(amount),
        "lines": [],
        "validated": False,
        "modified_date": data.today_iso,
    }
    return [{"INBN": inbn}]


def _aps450_line(data: TenantData, call: Call) -> list[Row]:
    batch = _ap_batch(data, call)
    if batch["validated"]:
        raise BusinessError(f"Invoice batch {call.get('INBN')} is already validated", "INBN", "WIN0201")
    amount = parse_amount(call, "NLAM")
    po_number, po_line = call.get("PUNO") or None, call.get("PNLI") or None
    if po_number:
        order = data.purchase_orders.get(po_number)
        if order is None:
            raise BusinessError(f"PO number {po_number} does not exist", "PUNO", "WPU0103")
        if po_line and not any(str(line["line_number"]) == po_line for line in order["lines"]):
            raise BusinessError(f"PO line {po_line} does not exist", "PNLI", "WPN0103")
    trno = len(batch["lines"]) + 1
    batch["lines"].append(
        {
            "line_number": trno,
            "line_type": call.get("RDTP"),
            "amount": number_text(amount),
            "po_number": po_number,
            "po_line": int(po_line) if po_line and po_line.isdigit() else None,
        }
    )
    batch["modified_date"] = data.today_iso
    return [{"INBN": call.get("INBN"), "TRNO": str(trno)}]


def _aps450_get(data: TenantData, call: Call) -> list[Row]:
    batch = _ap_batch(data, call)
    return [
        {
            "INBN": call.get("INBN"),
            "DIVI": batch["division"],
            "SUNO": batch["supplier_id"],
            "SINO": batch["invoice_number"],
            "INYR": str(batch["invoice_year"]),
            "IVDT": m3_date(batch["invoice_date"]),
            "DUDT": m3_date(batch["due_date"]),
            "CUCD": batch["currency"],
            "CUAM": batch["amount"],
            "SUPA": VALIDATED if batch["validated"] else ENTERED,
            "LMDT": m3_date(batch["modified_date"]),
        }
    ]


# [I] APS450MI invoice status SUPA: 10 entered, 50 validated (recorded).
ENTERED, VALIDATED = "10", "50"


def _aps450_by_supplier_invoice(data: TenantData, call: Call) -> list[Row]:
    rows = [
        {"INBN": inbn, "IBTP": "", "SUPA": VALIDATED if batch["validated"] else ENTERED}
        for inbn, batch in data.ap_batches.items()
        if batch["supplier_id"] == call.get("SUNO")
        and call.get("SPYN") == batch["supplier_id"]  # the payee is the supplier in this sandbox
        and batch["invoice_number"] == call.get("SINO")
        and batch["division"] == call.get("DIVI", call.divi)
    ]
    return sorted(rows, key=lambda row: row["INBN"])


def _aps455_validate(data: TenantData, call: Call) -> list[Row]:
    batch = _ap_batch(data, call)
    if call.get("DIVI") and call.get("DIVI") != batch["division"]:
        raise BusinessError(
            f"Invoice batch {call.get('INBN')} belongs to division {batch['division']}", "DIVI", "WDI0101"
        )
    if batch["validated"]:  # [I] validating twice is a no-op, so a retried call is harmless
        return []
    total = sum((Decimal(line["amount"]) for line in batch["lines"]), Decimal(0))
    if total != Decimal(batch["amount"]):
        raise BusinessError(
            f"Sum of lines {number_text(total)} differs from invoice amount {batch['amount']}",
            "INBN",
            "WIN0301",
        )
    key = (batch["division"], batch["supplier_id"], batch["invoice_number"], str(batch["invoice_year"]))
    if key in data.ap_invoices:
        raise BusinessError("Invoice already exists", "SINO", "WSI0201")
    data.ap_invoices[key] = {
        "division": batch["division"],
        "supplier_id": batch["supplier_id"],
        "invoice_number": batch["invoice_number"],
        "invoice_year": batch["invoice_year"],
        "invoice_date": batch["invoice_date"],
        "due_date": batch["due_date"],
        "currency": batch["currency"],
        "amount": batch["amount"],
        "status": "open",
        "modified_date": data.today_iso,
        "lines": batch["lines"],
        "batch_number": call.get("INBN"),
    }
    batch["validated"] = True
    data.changed("ap_invoices")
    return []


# ARS040MI: customer payment batches ---------------------------------------------------------------


def _ar_batch(data: TenantData, call: Call) -> Record:
    batch = data.ar_batches.get(call.get("PBID"))
    if batch is None:
        raise BusinessError(f"Payment batch {call.get('PBID')} does not exist", "PBID", "XRE0103")
    return batch


def _ars040_head(data: TenantData, call: Call) -> list[Row]:
    """PBID is the caller's (a required input); adding one that exists is refused."""
    pbid = call.get("PBID")
    if not pbid.isdigit() or len(pbid) > 10:
        raise BusinessError(f"Payment batch {pbid} is invalid", "PBID", "WPB0102")
    if pbid in data.ar_batches:
        raise BusinessError(f"Payment batch {pbid} already exists", "PBID", "XRE0102")
    data.ar_batches[pbid] = {
        "division": call.get("DIVI", call.divi),
        "payment_type": call.get("BOPE"),
        "accounting_date": parse_date(call, "ACDT", required=False) or data.today_iso,
        "lines": set(),
        "controlled": False,
    }
    return [{"PBID": pbid}]


def check_ar_payment(invoice: Record, amount: Decimal) -> Decimal:
    """The open amount after applying ``amount``; refunds are negative and reopen the invoice."""
    if invoice["status"] == "cancelled":
        raise BusinessError(f"Invoice {invoice['invoice_number']} is cancelled", "CINO", "WCI0201")
    remaining = Decimal(invoice["open_amount"]) - amount
    if remaining < 0 or remaining > Decimal(invoice["amount"]):
        raise BusinessError(
            f"Amount {number_text(amount)} exceeds the open amount {invoice['open_amount']}",
            "PYAM",
            "WPY0101",
        )
    return remaining


def apply_ar_payment(data: TenantData, invoice: Record, amount: Decimal) -> None:
    """Shared with the SyteLine SLArPayments insert."""
    remaining = check_ar_payment(invoice, amount)
    invoice["open_amount"] = number_text(remaining)
    invoice["status"] = "paid" if remaining == 0 else "open"
    invoice["modified_date"] = data.today_iso
    data.changed("ar_invoices", "ar_payments")


def _ars040_line(data: TenantData, call: Call) -> list[Row]:
    batch = _ar_batch(data, call)
    trno = call.get("TRNO")
    if trno in batch["lines"]:  # checked first: a repeated line is "already exists", whatever else
        raise BusinessError(
            f"Transaction {trno} already exists in batch {call.get('PBID')}", "TRNO", "XRE0102"
        )
    if batch["controlled"]:
        raise BusinessError(f"Payment batch {call.get('PBID')} is already controlled", "PBID", "WPB0201")
    key = (batch["division"], call.get("CUNO"), call.get("CINO"), call.get("INYR"))
    invoice = data.ar_invoices.get(key)
    if invoice is None:
        raise BusinessError(
            f"Invoice {key[2]}/{key[3]} does not exist for customer {key[1]}", "CINO", "WCI0103"
        )
    currency = call.get("CUCD", invoice["currency"])
    if currency != invoice["currency"]:
        raise BusinessError(
            f"Currency {currency} differs from invoice currency {invoice['currency']}", "CUCD", "WCU0101"
        )
    amount = parse_amount(call, "PYAM")
    apply_ar_payment(data, invoice, amount)
    batch["lines"].add(trno)
    dimensions = [call.get(f"AIT{n}") for n in range(1, 8)]
    while dimensions and not dimensions[-1]:
        dimensions.pop()
    data.ar_payments.append(
        {
            "division": batch["division"],
            "customer_id": key[1],
            "invoice_number": key[2],
            "invoice_year": int(key[3]),
            "amount": number_text(amount),
            "currency": currency,
            "payment_date": parse_date(call, "LPDT", required=False) or batch["accounting_date"],
            "posted_date": data.today_iso,
            "reference": call.get("CKNO"),  # M3 keeps the check number on the ledger transaction
            "dimensions": dimensions,
            "batch_id": call.get("PBID"),
            "line_number": int(trno) if trno.isdigit() else trno,
        }
    )
    return []


def _ars040_control(data: TenantData, call: Call) -> list[Row]:
    batch = _ar_batch(data, call)
    if not batch["lines"]:
        raise BusinessError(f"Payment batch {call.get('PBID')} has no lines", "PBID", "WPB0301")
    batch["controlled"] = True  # [I] the amounts were applied per line; controlling twice is a no-op
    return []


# CUGEX1MI: extension fields on invoices -----------------------------------------------------------

EXTENSION_FIELDS = {"A030": "status", "A130": "external_id", "A230": "updated_at", "A330": "free_text"}


def _extension_keys(call: Call) -> list[str]:
    return [call.get(f"PK{n:02d}") for n in range(1, 9)]


def _cugex_values(call: Call) -> dict[str, str]:
    values = {}
    for m3, name in EXTENSION_FIELDS.items():
        value = call.inputs.get(m3, "").strip()
        if value:
            values[name] = "" if value == "?" else value
    return values


def _cugex_add(data: TenantData, call: Call) -> list[Row]:
    if data.extensions.get(_ext_key(call)) is not None:
        raise BusinessError("Record already exists", "PK01", "XRE0102")
    data.set_extension(call.get("FILE"), _extension_keys(call), _cugex_values(call))
    return []


def _cugex_change(data: TenantData, call: Call) -> list[Row]:
    if data.extensions.get(_ext_key(call)) is None:
        raise BusinessError("Record does not exist", "PK01", "XRE0103")
    data.set_extension(call.get("FILE"), _extension_keys(call), _cugex_values(call))
    return []


def _cugex_get(data: TenantData, call: Call) -> list[Row]:
    record = data.extensions.get(_ext_key(call))
    if record is None:
        raise BusinessError("Record does not exist", "PK01", "XRE0103")
    row = {"FILE": record["file"], **{f"PK{n:02d}": v for n, v in enumerate(record["keys"], start=1)}}
    row.update({m3: record[name] for m3, name in EXTENSION_FIELDS.items()})
    row["LMDT"] = m3_date(record["modified_date"])
    return [row]


def _ext_key(call: Call) -> tuple[str, ...]:
    return (call.get("FILE"), *_extension_keys(call))


# Dispatch -----------------------------------------------------------------------------------------

Handler = Callable[[TenantData, Call], list[Row]]
# Served transactions. Their inputs, required inputs and outputs come from the MI metadata
# (mi_metadata.py); a handler may refuse more (business rules), never accept more.
TRANSACTIONS: dict[tuple[str, str], Handler] = {
    ("EXPORTMI", "Select"): _exportmi_select,
    ("CRS692MI", "LstByAccHolder"): _crs692_by_holder,
    ("CRS692MI", "LstByType"): _crs692_by_type,
    ("CRS692MI", "GetBankAccount"): _crs692_get,
    ("CRS692MI", "ChgBasicData"): _crs692_change,
    ("CRS691MI", "LstByNumber"): _crs691_list,
    ("CRS620MI", "LstSuppliers"): _crs620_list,
    ("CRS620MI", "GetBasicData"): _crs620_get,
    ("CRS620MI", "LstSupplierRef"): _crs620_references,
    ("CRS620MI", "LstAddresses"): _crs620_addresses,
    ("MDBREADMI", "LstCEMAIL00"): _cemail_list,
    ("ARS200MI", "LstInvByDivi"): _ars200_by_division,
    ("ARS200MI", "GetInvTotInfo"): _ars200_totals,
    ("ARS200MI", "SearchInvoices"): _ars200_search,
    ("ARS200MI", "GetInvoice"): _ars200_get,
    ("APS200MI", "SearchSupInvoic"): _aps200_search,
    ("APS200MI", "GetInvoice"): _aps200_get,
    ("PPS200MI", "SearchHead"): _pps200_search,
    ("PPS200MI", "LstLine"): _pps200_lines,
    ("PPS001MI", "GetHeadBasic"): _pps001_head,
    ("CRS610MI", "LstByNumber"): _crs610_list,
    ("CRS610MI", "GetBasicData"): _crs610_get,
    ("CRS630MI", "LstAccountID"): _crs630_list,
    ("PPS370MI", "StartEntry"): _pps370_start,
    ("PPS370MI", "AddHead"): _pps370_head,
    ("PPS370MI", "AddLine"): _pps370_line,
    ("PPS370MI", "FinishEntry"): _pps370_finish,
    ("APS450MI", "AddHead"): _aps450_head,
    ("APS450MI", "AddLine"): _aps450_line,
    ("APS450MI", "GetHead"): _aps450_get,
    ("APS450MI", "LstInvBySupInv"): _aps450_by_supplier_invoice,
    ("APS455MI", "ValidByBatchNo"): _aps455_validate,
    ("ARS040MI", "AddBatchHead"): _ars040_head,
    ("ARS040MI", "AddBatchLine"): _ars040_line,
    ("ARS040MI", "ControlBatch"): _ars040_control,
    ("CUGEX1MI", "AddFieldValue"): _cugex_add,
    ("CUGEX1MI", "ChgFieldValue"): _cugex_change,
    ("CUGEX1MI", "GetFieldValue"): _cugex_get,
}
# Business rules on top of the metadata's required flags (M3 refuses these as NOK in its programs).
EXTRA_MANDATORY: dict[tuple[str, str], tuple[str, ...]] = {
    ("APS450MI", "AddHead"): ("SINO", "CUAM"),
    ("APS450MI", "AddLine"): ("NLAM",),
    ("ARS040MI", "ControlBatch"): ("PBID",),
}
OPTIONS = {"maxrecs", "returncols", "cono", "divi", "excludempty", "metadata", "righttrim", "extendedresult"}
METADATA_VIOLATIONS = {"TransactionNotFound", "InputFieldNotFound", "MandatoryInputFieldNotFound"}
EXPORTMI_REFUSED = "You are not authorized to run program EXPORTMI"  # [I] the text of M3's refusal


def execute(
    data: TenantData, program: str, transaction: str, options: dict[str, str], inputs: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """Run one transaction; returns (HTTP status, v2 body). Every call is logged on the tenant, and a
    call the metadata refuses is also kept as a violation (what the done-when test counts)."""
    data.m3_calls[f"{program}/{transaction}"] += 1
    try:
        records = _run(data, program, transaction, options, inputs)
    except RequestError as exc:
        if exc.error_type in METADATA_VIOLATIONS:
            data.record_violation(
                {
                    "call": f"{program}/{transaction}",
                    "error": exc.error_type,
                    "field": exc.field,
                    "inputs": sorted(inputs),
                }
            )
        return 400, {
            "errorMessage": str(exc),
            "errorType": exc.error_type,
            "errorField": exc.field,
            "wasTerminated": True,
            "nrOfSuccessfullTransactions": 0,
            "nrOfFailedTransactions": 1,
        }
    except BusinessError as exc:
        result = {
            "transaction": transaction,
            "errorMessage": str(exc),
            "errorType": "ServerReturnedNOK",
            "errorCode": exc.code,
            "errorField": exc.field,
            "records": [],
        }
        return 200, {
            "results": [result],
            "wasTerminated": False,
            "nrOfSuccessfullTransactions": 0,
            "nrOfFailedTransactions": 1,
        }
    return 200, {
        "results": [{"transaction": transaction, "records": records}],
        "wasTerminated": False,
        "nrOfSuccessfullTransactions": 1,
        "nrOfFailedTransactions": 0,
    }


def _run(
    data: TenantData, program: str, transaction: str, options: dict[str, str], inputs: dict[str, str]
) -> list[Row]:
    spec = mi_metadata.lookup(program, transaction)
    handler = TRANSACTIONS.get((program, transaction))
    if spec is None or handler is None:
        # Unknown to M3, or known but not served by the sandbox: both refused (stricter is fine).
        raise RequestError(
            f"Transaction {transaction} does not exist in program {program}", "TransactionNotFound"
        )
    for name in sorted(inputs):
        if name not in spec.inputs:
            raise RequestError(
                f"Input field {name} does not exist in {program}/{transaction}", "InputFieldNotFound", name
            )
    for name in sorted(spec.required | set(EXTRA_MANDATORY.get((program, transaction), ()))):
        if not inputs.get(name, "").strip():
            raise RequestError(
                f"Mandatory input field {name} is missing", "MandatoryInputFieldNotFound", name
            )
    if program == "EXPORTMI" and not data.exportmi_allowed:
        raise BusinessError(EXPORTMI_REFUSED, "", "XSE0001")
    try:
        maxrecs = int(options.get("maxrecs", DEFAULT_MAXRECS))
    except ValueError:
        raise RequestError("maxrecs must be a number", "InvalidParameter", "maxrecs") from None
    cono = options.get("cono") or inputs.get("CONO") or COMPANY
    if cono.strip() != COMPANY:
        raise BusinessError(f"Company {cono} does not exist", "CONO", "WCO0103")
    call = Call(transaction, inputs, max(maxrecs, 0), options.get("divi") or DIVISION)
    records = handler(data, call)
    if maxrecs > 0 and program != "EXPORTMI":  # EXPORTMI already applied it (and may add a header row)
        records = records[:maxrecs]
    # Only the transaction's real output fields, in its order.
    records = [{name: record[name] for name in spec.outputs if name in record} for record in records]
    if options.get("returncols"):
        wanted = [c.strip() for c in options["returncols"].split(",") if c.strip()]
        records = [{c: r[c] for c in wanted if c in r} for r in records]
    if options.get("excludempty", "").lower() == "true":
        records = [{k: v for k, v in r.items() if v != ""} for r in records]
    return records
