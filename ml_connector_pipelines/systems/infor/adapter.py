"""One product-neutral face for M3 and SyteLine: integrations call an `InforAdapter` and get models.

`open_adapter(ionapi, product, config)` builds the gateway client and the right adapter for a tenant.
Reads take one modified date and stream canonical records (`models.py`) page by page; writes return
the id Infor gave the new record. Which M3 program or IDO backs each call follows INFOR_SPEC.

Tenant config keys: cono (M3 company, default "100"), divi (M3 division context), bank_type (CRS692MI
BKTP of supplier accounts, default "2"), mongoose_config (SyteLine, required), page_size (default
500), client_auth ("form" | "basic"), extension_program (default "CUGEX1MI") and the extension's
transactions extension_get / extension_add / extension_change, rate_limit_per_second (requests per
second for the tenant's gateway credential, default no limit).

A row that cannot become a canonical record is skipped and kept in `adapter.rejected`, naming the
row and the M3 column / IDO property that was bad: one bad field never stops a whole extract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Literal, Protocol, Self, TypeVar

from pydantic import ValidationError

from ...core.errors import ConnectorError, ValidationFailed
from ...core.http import HttpClient, RateLimit
from .auth import GATEWAY_RETRY, IonApiAuth
from .errors import INFOR_HOOKS
from .ionapi import IonApi
from .m3 import M3Client, M3TransactionError, m3_date, m3_literal, parse_m3_date
from .models import (
    APInvoice,
    ARInvoice,
    ARPayment,
    BankAccount,
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

InvoiceKind = Literal["ap", "ar"]
BankAccountKind = Literal["iban", "sort_code", "aba", "email"]
ACCOUNT_TYPES: dict[str, Literal["CHECKING", "SAVINGS"]] = {"CHECKING": "CHECKING", "SAVINGS": "SAVINGS"}
T = TypeVar("T")
R = TypeVar("R", bound=Mapping[str, Any])

DEFAULT_PAGE_SIZE = 500
# Infor recommends a client timeout of 5 minutes or more (the gateway itself gives up after 1-5).
GATEWAY_TIMEOUT_SECONDS = 300.0
# [I] PPS370MI StartEntry's batch origin for the orders this connector creates.
PO_BATCH_ORIGIN = "MLCONN"

M3_INVOICE_STATUS: dict[str, InvoiceStatus] = {"0": "open", "9": "paid", "8": "cancelled"}
IDO_INVOICE_STATUS: dict[str, InvoiceStatus] = {"O": "open", "P": "paid", "C": "cancelled"}
# Supplier and PO statuses in product-neutral words [I]; a code not listed is passed on unchanged.
# M3 supplier STAT: 10 preliminary, 20 definite, 90 blocked. SyteLine vendor Stat: A / I.
M3_SUPPLIER_STATUS = {"10": "inactive", "20": "active", "90": "inactive"}
IDO_SUPPLIER_STATUS = {"A": "active", "I": "inactive"}
# SyteLine PO Stat: P planned, O ordered, C complete, H history.
IDO_PO_STATUS = {"P": "open", "O": "open", "C": "closed", "H": "closed"}


def m3_po_status(highest_status: str) -> str:
    """M3 PUST runs 05..99; from 85 (invoiced) on, nothing more happens to the order."""
    return "closed" if highest_status.isdigit() and int(highest_status) >= 85 else "open"


class InforAdapter(Protocol):
    product: Product
    rejected: list[RejectedRecord]

    @property
    def requests_made(self) -> int: ...

    def suppliers(self, day: date) -> Iterator[Supplier]: ...
    def supplier(self, supplier_id: str) -> Supplier | None: ...
    def customers(self, day: date) -> Iterator[Customer]: ...
    def customer(self, customer_id: str) -> Customer | None: ...
    def ap_invoices(self, day: date) -> Iterator[APInvoice]: ...
    def ar_invoices(self, day: date) -> Iterator[ARInvoice]: ...
    def purchase_orders(self, day: date) -> Iterator[PurchaseOrder]: ...
    def gl_accounts(self, day: date) -> Iterator[GLAccount]: ...

    def create_purchase_order(self, order: NewPurchaseOrder) -> str: ...
    def find_purchase_order(self, external_ref: str) -> str | None: ...
    def create_ap_invoice(self, invoice: NewAPInvoice) -> str: ...
    def add_ar_payment(self, payment: ARPayment) -> str: ...
    def find_ar_payment(self, reference: str) -> str | None: ...
    def ar_payments(self, reference: str) -> list[PostedARPayment]: ...
    def write_invoice_extension(
        self, kind: InvoiceKind, invoice_key: str, extension: InvoiceExtension
    ) -> bool: ...
    def read_invoice_extension(self, kind: InvoiceKind, invoice_key: str) -> InvoiceExtension | None: ...

    def ping(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...


def open_adapter(
    ionapi: IonApi, product: str, config: Mapping[str, Any], *, allow_loopback_http: bool = False
) -> InforAdapter:
    """The adapter for one tenant. Close it (or use `with`) to revoke the OAuth grant."""
    ionapi.check_urls(allow_loopback_http=allow_loopback_http)
    headers: dict[str, str] = {}
    if product == "syteline":
        if not config.get("mongoose_config"):
            raise ValueError(
                "SyteLine tenant config needs 'mongoose_config' (the X-Infor-MongooseConfig name)"
            )
        headers["X-Infor-MongooseConfig"] = str(config["mongoose_config"])
    elif product != "m3":
        raise ValueError(f"unknown Infor product {product!r}; expected 'm3' or 'syteline'")
    auth = IonApiAuth(ionapi, client_auth=config.get("client_auth", "form"))
    per_second = config.get("rate_limit_per_second")
    http = HttpClient(
        "infor",
        ionapi.api_base,
        auth=auth,
        credential_id=ionapi.tenant,
        retry=GATEWAY_RETRY,
        timeout=GATEWAY_TIMEOUT_SECONDS,
        headers=headers,
        hooks=INFOR_HOOKS,
        # Shared per (system, credential_id): every adapter of this tenant draws from one bucket.
        rate_limit=RateLimit(float(per_second)) if per_second else None,
    )
    if product == "m3":
        return M3Adapter(http, auth, config)
    return SyteLineAdapter(http, auth, config)


# Shared helpers -------------------------------------------------------------------------------------


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _blank_to_none(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value).strip() or "0")


@dataclass(frozen=True)
class RejectedRecord:
    """A source row the adapter could not map: not yielded, reported by the extract instead."""

    entity: str  # the read method: "ap_invoices", "suppliers", ...
    record_id: str  # the row's key fields joined by "/", e.g. DIVI/SUPPLIER/NUMBER/YEAR
    field: str  # the M3 column or IDO property that was bad
    reason: str


class BadField(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _field(row: Mapping[str, Any], name: str, convert: Callable[[Any], T], expected: str) -> T:
    """`convert(row[name])`; a value it cannot take raises BadField naming the column."""
    value = row.get(name)
    try:
        return convert(value)
    except (ValueError, ArithmeticError, LookupError, TypeError, AttributeError):
        raise BadField(name, f"{value!r} is not {expected}") from None


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_newer(candidate: str, current: str | None) -> bool:
    """True when an extension stamped `candidate` may overwrite one stamped `current`.

    Events can arrive late or twice; only a strictly newer event may change the stored status.
    """
    if not current:
        return True
    try:
        current_at = _timestamp(current)
    except ValueError:
        return True  # an unreadable stored stamp cannot prove the new event is stale
    return _timestamp(candidate) > current_at


def split_invoice_key(invoice_key: str) -> tuple[str, str, str, str]:
    """Split DIVI/PARTY/NUMBER/YEAR; the invoice number itself may contain slashes."""
    try:
        division, party, rest = invoice_key.split("/", 2)
        number, year = rest.rsplit("/", 1)
    except ValueError:
        raise ValueError(f"invoice key {invoice_key!r} is not DIVISION/PARTY/NUMBER/YEAR") from None
    return division, party, number, year


def bank_account_kind(iban: str | None, email: str | None, country: str | None) -> BankAccountKind:
    if iban:
        return "iban"
    if email:
        return "email"
    return "aba" if country == "US" else "sort_code"


def _bank_account(
    *,
    currency: str,
    holder: str | None,
    country: str | None,
    iban: str | None,
    bic: str | None,
    account_number: str | None,
    routing: str | None,
    account_type: str | None,
    email: str | None,
    city: str | None,
    post_code: str | None,
    address_line: str | None,
    state: str | None,
) -> BankAccount:
    kind = bank_account_kind(iban, email, country)
    return BankAccount(
        kind=kind,
        currency=currency,
        account_holder=holder or "",
        country=country,
        iban=iban,
        bic=bic,
        sort_code=routing if kind == "sort_code" else None,
        account_number=account_number,
        aba_routing=routing if kind == "aba" else None,
        account_type=ACCOUNT_TYPES.get(account_type or ""),
        email=email,
        city=city,
        post_code=post_code,
        address_line=address_line,
        state=state,
    )


class _AdapterBase:
    product: Product

    def __init__(self, http: HttpClient, auth: IonApiAuth, config: Mapping[str, Any]) -> None:
        self.http = http
        self.auth = auth
        self.config = dict(config)
        self.page_size = int(config.get("page_size") or DEFAULT_PAGE_SIZE)
        self.rejected: list[RejectedRecord] = []

    @property
    def requests_made(self) -> int:
        """Gateway calls plus token calls, for the asset metadata "requests used"."""
        return self.http.requests_made + self.auth.http.requests_made

    def _map_rows(
        self, entity: str, rows: Iterable[R], key: tuple[str, ...], mapper: Callable[[R], T]
    ) -> Iterator[T]:
        """Map rows one by one; a row that cannot become a record goes to `rejected`, named by `key`."""
        for row in rows:
            try:
                yield mapper(row)
            except (BadField, ValidationError) as exc:
                if isinstance(exc, BadField):
                    field, reason = exc.field, exc.reason
                else:  # a canonical field the mapping produced but the model refused
                    error = exc.errors()[0]
                    field, reason = ".".join(str(part) for part in error["loc"]), error["msg"]
                record_id = "/".join(str(row.get(name, "")) for name in key)
                self.rejected.append(RejectedRecord(entity, record_id, field, reason))

    def close(self) -> None:
        try:
            self.auth.close()
        finally:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# M3 ---------------------------------------------------------------------------------------------


def m3_bank_account(record: Mapping[str, str], supplier_currency: str) -> BankAccount:
    """One CRS692MI/LstByAccHolder record -> BankAccount (field names per INFOR_SPEC [I])."""
    return _bank_account(
        currency=record.get("CUCD") or supplier_currency,
        holder=_blank_to_none(record.get("BANA")),
        country=_blank_to_none(record.get("CSCD")),
        iban=_blank_to_none(record.get("IBAN")),
        bic=_blank_to_none(record.get("SWIF")),
        account_number=_blank_to_none(record.get("BKAC")),
        routing=_blank_to_none(record.get("ROUT")),
        account_type=_blank_to_none(record.get("ACTY")),
        email=_blank_to_none(record.get("EMAL")),
        city=_blank_to_none(record.get("TOWN")),
        post_code=_blank_to_none(record.get("PONO")),
        address_line=_blank_to_none(record.get("ADR1")),
        state=_blank_to_none(record.get("ECAR")),
    )


def _m3_date(value: str) -> date:
    parsed = parse_m3_date(value)
    if parsed is None:
        raise ValueError(f"missing M3 date {value!r}")
    return parsed


def m3_supplier(row: Mapping[str, str], bank_account: BankAccount | None) -> Supplier:
    return Supplier(
        supplier_id=row["IDSUNO"],
        name=row["IDSUNM"],
        currency=row["IDCUCD"],
        status=M3_SUPPLIER_STATUS.get(row["IDSTAT"], row["IDSTAT"]),
        country=_blank_to_none(row["IDCSCD"]),
        bank_account=bank_account,
        modified_date=_field(row, "IDLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_customer(row: Mapping[str, str]) -> Customer:
    return Customer(
        customer_id=row["OKCUNO"],
        name=row["OKCUNM"],
        currency=row["OKCUCD"],
        email=_blank_to_none(row["OKMAIL"]),
        country=_blank_to_none(row["OKCSCD"]),
        address_line=_blank_to_none(row["OKCUA1"]),
        city=_blank_to_none(row["OKTOWN"]),
        post_code=_blank_to_none(row["OKPONO"]),
        modified_date=_field(row, "OKLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_ap_invoice(row: Mapping[str, str]) -> APInvoice:
    return APInvoice(
        division=row["EPDIVI"],
        supplier_id=row["EPSUNO"],
        invoice_number=row["EPSINO"],
        invoice_year=_field(row, "EPINYR", int, "a year"),
        invoice_date=_field(row, "EPIVDT", _m3_date, "an M3 date (YYYYMMDD)"),
        due_date=_field(row, "EPDUDT", parse_m3_date, "an M3 date (YYYYMMDD)"),
        currency=row["EPCUCD"],
        amount=_field(row, "EPCUAM", _decimal, "an amount"),
        status=_field(row, "EPRECO", M3_INVOICE_STATUS.__getitem__, "an invoice status"),
        modified_date=_field(row, "EPLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_ar_invoice(row: Mapping[str, str]) -> ARInvoice:
    return ARInvoice(
        division=row["ESDIVI"],
        customer_id=row["ESCUNO"],
        invoice_number=row["ESCINO"],
        invoice_year=_field(row, "ESINYR", int, "a year"),
        invoice_date=_field(row, "ESIVDT", _m3_date, "an M3 date (YYYYMMDD)"),
        due_date=_field(row, "ESDUDT", parse_m3_date, "an M3 date (YYYYMMDD)"),
        currency=row["ESCUCD"],
        amount=_field(row, "ESCUAM", _decimal, "an amount"),
        open_amount=_field(row, "ESOPAM", _decimal, "an amount"),
        status=_field(row, "ESRECO", M3_INVOICE_STATUS.__getitem__, "an invoice status"),
        modified_date=_field(row, "ESLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_purchase_order(row: Mapping[str, str], lines: Iterable[Mapping[str, str]]) -> PurchaseOrder:
    return PurchaseOrder(
        po_number=row["IAPUNO"],
        supplier_id=row["IASUNO"],
        order_date=_field(row, "IAPUDT", _m3_date, "an M3 date (YYYYMMDD)"),
        currency=row["IACUCD"],
        status=m3_po_status(row["IAPUST"]),
        facility=_blank_to_none(row["IAFACI"]),
        warehouse=_blank_to_none(row["IAWHLO"]),
        lines=tuple(
            sorted(
                (
                    PurchaseOrderLine(
                        line_number=_field(line, "IBPNLI", int, "a line number"),
                        item_number=line["IBITNO"],
                        description=_blank_to_none(line["IBPITD"]),
                        quantity=_field(line, "IBORQA", _decimal, "a quantity"),
                        unit_price=_field(line, "IBPUPR", _decimal, "an amount"),
                    )
                    for line in lines
                ),
                key=lambda line: line.line_number,
            )
        ),
        modified_date=_field(row, "IALMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_gl_account(row: Mapping[str, str]) -> GLAccount:
    return GLAccount(
        dimension=_field(row, "EAAITP", int, "a dimension number"),
        account_id=row["EAAITM"],
        description=row["EATX40"],
        modified_date=_field(row, "EALMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


class M3Adapter(_AdapterBase):
    product: Product = "m3"

    SUPPLIER_COLUMNS = tuple("IDSUNO IDSUNM IDCUCD IDSTAT IDCSCD IDLMDT".split())
    CUSTOMER_COLUMNS = tuple("OKCUNO OKCUNM OKCUCD OKMAIL OKCSCD OKCUA1 OKTOWN OKPONO OKLMDT".split())
    AP_COLUMNS = tuple("EPDIVI EPSUNO EPSINO EPINYR EPIVDT EPDUDT EPCUCD EPCUAM EPRECO EPLMDT".split())
    AR_COLUMNS = tuple("ESDIVI ESCUNO ESCINO ESINYR ESIVDT ESDUDT ESCUCD ESCUAM ESOPAM ESRECO ESLMDT".split())
    PO_COLUMNS = tuple("IAPUNO IASUNO IACUCD IAPUDT IAPUST IAFACI IAWHLO IALMDT".split())
    PO_LINE_COLUMNS = tuple("IBPUNO IBPNLI IBITNO IBPITD IBORQA IBPUPR".split())
    GL_COLUMNS = tuple("EAAITP EAAITM EATX40 EALMDT".split())

    def __init__(self, http: HttpClient, auth: IonApiAuth, config: Mapping[str, Any]) -> None:
        super().__init__(http, auth, config)
        self.cono = str(config.get("cono") or "100")
        self.m3 = M3Client(http, cono=self.cono, divi=config.get("divi"))
        self.bank_type = str(config.get("bank_type") or "2")
        self.extension_program = str(config.get("extension_program") or "CUGEX1MI")
        self.extension_get = str(config.get("extension_get") or "GetFieldValue")
        self.extension_add = str(config.get("extension_add") or "AddFieldValue")
        self.extension_change = str(config.get("extension_change") or "ChgFieldValue")

    def ping(self) -> None:
        """One authenticated read: proves the credentials, the gateway and the company."""
        self.m3.export(f"IDSUNO from CIDMAS where IDCONO={self.cono} order by IDSUNO", ("IDSUNO",), maxrecs=1)

    # Reads ------------------------------------------------------------------------------------

    def _changed_on(
        self, table: str, columns: tuple[str, ...], key: str, day: date
    ) -> Iterator[dict[str, str]]:
        prefix = columns[0][:2]  # M3 columns carry the table's two-letter prefix
        return self.m3.select(
            table,
            columns,
            key=key,
            where=[f"{prefix}CONO={self.cono}", f"{prefix}LMDT={m3_date(day)}"],
            page_size=self.page_size,
        )

    def suppliers(self, day: date) -> Iterator[Supplier]:
        return self._map_rows(
            "suppliers",
            self._changed_on("CIDMAS", self.SUPPLIER_COLUMNS, "IDSUNO", day),
            ("IDSUNO",),
            lambda row: m3_supplier(row, self.bank_account(row["IDSUNO"], row["IDCUCD"])),
        )

    def supplier(self, supplier_id: str) -> Supplier | None:
        """One supplier (with its bank account) whatever its modified date; None when unknown."""
        query = (
            f"{','.join(self.SUPPLIER_COLUMNS)} from CIDMAS"
            f" where IDCONO={self.cono} and IDSUNO={m3_literal(supplier_id)} order by IDSUNO"
        )
        rows = self.m3.export(query, self.SUPPLIER_COLUMNS, maxrecs=1)
        if not rows:
            return None
        return m3_supplier(rows[0], self.bank_account(rows[0]["IDSUNO"], rows[0]["IDCUCD"]))

    def bank_account(self, supplier_id: str, supplier_currency: str) -> BankAccount | None:
        """The supplier's first bank account of type `bank_type` (CRS692MI), or None."""
        records = self.m3.execute(
            "CRS692MI", "LstByAccHolder", maxrecs=1, BKTP=self.bank_type, ACHO=supplier_id
        )
        return m3_bank_account(records[0], supplier_currency) if records else None

    def customers(self, day: date) -> Iterator[Customer]:
        rows = self._changed_on("OCUSMA", self.CUSTOMER_COLUMNS, "OKCUNO", day)
        return self._map_rows("customers", rows, ("OKCUNO",), m3_customer)

    def customer(self, customer_id: str) -> Customer | None:
        """One customer by number, whatever its modified date; None if M3 has no such customer."""
        query = (
            f"{','.join(self.CUSTOMER_COLUMNS)} from OCUSMA"
            f" where OKCONO={self.cono} and OKCUNO={m3_literal(customer_id)} order by OKCUNO"
        )
        rows = self.m3.export(query, self.CUSTOMER_COLUMNS, maxrecs=1)
        return m3_customer(rows[0]) if rows else None

    def ap_invoices(self, day: date) -> Iterator[APInvoice]:
        # Keyed on the invoice number: shared by few rows, so pages restart cheaply.
        rows = self._changed_on("FPLEDG", self.AP_COLUMNS, "EPSINO", day)
        return self._map_rows("ap_invoices", rows, ("EPDIVI", "EPSUNO", "EPSINO", "EPINYR"), m3_ap_invoice)

    def ar_invoices(self, day: date) -> Iterator[ARInvoice]:
        rows = self._changed_on("FSLEDG", self.AR_COLUMNS, "ESCINO", day)
        return self._map_rows("ar_invoices", rows, ("ESDIVI", "ESCUNO", "ESCINO", "ESINYR"), m3_ar_invoice)

    def purchase_orders(self, day: date) -> Iterator[PurchaseOrder]:
        heads = self._changed_on("MPHEAD", self.PO_COLUMNS, "IAPUNO", day)
        for page in _batched(heads, self.page_size):
            # One call for the lines of the whole page: the heads come in PUNO order.
            numbers = {head["IAPUNO"] for head in page}
            query = (
                f"{','.join(self.PO_LINE_COLUMNS)} from MPLINE where IBCONO={self.cono}"
                f" and IBPUNO>={m3_literal(page[0]['IAPUNO'])} and IBPUNO<={m3_literal(page[-1]['IAPUNO'])}"
                " order by IBPUNO"
            )
            lines: dict[str, list[dict[str, str]]] = {number: [] for number in numbers}
            for line in self.m3.export(query, self.PO_LINE_COLUMNS, maxrecs=0):
                if line["IBPUNO"] in lines:
                    lines[line["IBPUNO"]].append(line)
            yield from self._map_rows(
                "purchase_orders",
                page,
                ("IAPUNO",),
                lambda head, lines=lines: m3_purchase_order(head, lines[head["IAPUNO"]]),
            )

    def gl_accounts(self, day: date) -> Iterator[GLAccount]:
        rows = self._changed_on("FCHACC", self.GL_COLUMNS, "EAAITM", day)
        return self._map_rows("gl_accounts", rows, ("EAAITP", "EAAITM"), m3_gl_account)

    # Writes -----------------------------------------------------------------------------------

    def _one(self, program: str, transaction: str, **fields: Any) -> dict[str, str]:
        """The single output record of a write transaction (the number M3 gave the new record)."""
        records = self.m3.execute(program, transaction, **fields)
        if not records:
            raise ConnectorError(f"{program}/{transaction} answered without its output record")
        return records[0]

    def find_purchase_order(self, external_ref: str) -> str | None:
        query = (
            f"IAPUNO from MPHEAD where IACONO={self.cono} and IAYRE1={m3_literal(external_ref)}"
            " order by IAPUNO"
        )
        rows = self.m3.export(query, ("IAPUNO",), maxrecs=1)
        return rows[0]["IAPUNO"] if rows else None

    def create_purchase_order(self, order: NewPurchaseOrder) -> str:
        """PPS370MI batch entry; returns PUNO. An order already carrying this external ref is reused."""
        existing = self.find_purchase_order(order.external_ref)
        if existing:
            return existing
        message = self._one("PPS370MI", "StartEntry", BAOR=PO_BATCH_ORIGIN)["MSGN"]
        po_number = self._one(
            "PPS370MI",
            "AddHead",
            MSGN=message,
            FACI=order.facility,
            WHLO=order.warehouse,
            SUNO=order.supplier_id,
            DWDT=m3_date(order.order_date),
            CUCD=order.currency,
            YRE1=order.external_ref,
        )["PUNO"]
        for line in order.lines:
            self.m3.execute(
                "PPS370MI",
                "AddLine",
                MSGN=message,
                PUNO=po_number,
                ITNO=line.item_number,
                ORQA=_decimal_text(line.quantity),
                PUPR=_decimal_text(line.unit_price),
                PITD=line.description,
            )
        self.m3.execute("PPS370MI", "FinishEntry", MSGN=message)
        return po_number

    def create_ap_invoice(self, invoice: NewAPInvoice) -> str:
        """APS450MI batch head + lines, validated by APS455MI; returns the batch number INBN."""
        batch = self._one(
            "APS450MI",
            "AddHead",
            DIVI=invoice.division,
            SUNO=invoice.supplier_id,
            IVDT=m3_date(invoice.invoice_date),
            SINO=invoice.invoice_number,
            CUCD=invoice.currency,
            CUAM=_decimal_text(invoice.amount),
            DUDT=m3_date(invoice.due_date) if invoice.due_date else None,
        )["INBN"]
        for line in invoice.lines:
            self.m3.execute(
                "APS450MI",
                "AddLine",
                INBN=batch,
                RDTP="8",  # cost line
                NLAM=_decimal_text(line.amount),
                AIT1=line.gl_account,
                AIT2=line.cost_centre,
                PUNO=line.po_number,
                PNLI=line.po_line,
            )
        self.m3.execute("APS455MI", "ValidByBatchNo", INBN=batch, DIVI=invoice.division)
        return batch

    def add_ar_payment(self, payment: ARPayment) -> str:
        """ARS040MI batch head, one line, control; returns "PBID/TRNO"."""
        batch = self._one(
            "ARS040MI",
            "AddBatchHead",
            DIVI=payment.division,
            PYDT=m3_date(payment.payment_date),
            CUCD=payment.currency,
        )["PBID"]
        dimensions = {f"AIT{index}": value for index, value in enumerate(payment.dimensions[:7], start=1)}
        line = self._one(
            "ARS040MI",
            "AddBatchLine",
            PBID=batch,
            CUNO=payment.customer_id,
            CINO=payment.invoice_number,
            INYR=payment.invoice_year,
            PYAM=_decimal_text(payment.amount),
            CUCD=payment.currency,
            PYRF=payment.reference,
            **dimensions,
        )["TRNO"]
        self.m3.execute("ARS040MI", "ControlBatch", PBID=batch)
        return f"{batch}/{line}"

    def find_ar_payment(self, reference: str) -> str | None:
        postings = self.ar_payments(reference)
        return postings[0].id if postings else None

    def ar_payments(self, reference: str) -> list[PostedARPayment]:
        """Every ARS040MI line Infor holds for this payment reference (PYRF), all of them."""
        lines = self.m3.execute("ARS040MI", "LstBatchLines", maxrecs=0, PYRF=reference)
        return [
            PostedARPayment(
                id=f"{line['PBID']}/{line['TRNO']}",
                reference=line["PYRF"],
                invoice_number=line["CINO"],
                amount=_decimal(line["PYAM"]),
                currency=_blank_to_none(line.get("CUCD")),
            )
            for line in lines
        ]

    # Extension records (CUGEX1MI) ---------------------------------------------------------------

    @staticmethod
    def _extension_keys(kind: InvoiceKind, invoice_key: str) -> dict[str, str]:
        division, party, number, year = split_invoice_key(invoice_key)
        return {
            "FILE": "FPLEDG" if kind == "ap" else "FSLEDG",
            "PK01": division,
            "PK02": party,
            "PK03": number,
            "PK04": year,
        }

    def read_invoice_extension(self, kind: InvoiceKind, invoice_key: str) -> InvoiceExtension | None:
        try:
            records = self.m3.execute(
                self.extension_program, self.extension_get, **self._extension_keys(kind, invoice_key)
            )
        except M3TransactionError as exc:
            if "does not exist" in exc.target_message:
                return None
            raise
        if not records:
            return None
        record = records[0]
        return InvoiceExtension(
            invoice_key=invoice_key,
            status=record.get("A030", ""),
            external_id=record.get("A130", ""),
            updated_at=record.get("A230", ""),
        )

    def write_invoice_extension(
        self, kind: InvoiceKind, invoice_key: str, extension: InvoiceExtension
    ) -> bool:
        """Store status + external id; False when the stored status is as new or newer (kept)."""
        _check_extension_key(invoice_key, extension)
        keys = self._extension_keys(kind, invoice_key)
        values = {"A030": extension.status, "A130": extension.external_id, "A230": extension.updated_at}
        current = self.read_invoice_extension(kind, invoice_key)
        if current is not None and not is_newer(extension.updated_at, current.updated_at):
            return False
        if current is None:
            try:
                self.m3.execute(self.extension_program, self.extension_add, **keys, **values)
                return True
            except M3TransactionError as exc:
                if "already exists" not in exc.target_message:
                    raise
                # Another writer added it since our read: compare against what it stored.
                current = self.read_invoice_extension(kind, invoice_key)
                if current is not None and not is_newer(extension.updated_at, current.updated_at):
                    return False
        self.m3.execute(self.extension_program, self.extension_change, **keys, **values)
        return True


def _check_extension_key(invoice_key: str, extension: InvoiceExtension) -> None:
    if extension.invoice_key != invoice_key:
        raise ValueError(f"extension is for {extension.invoice_key!r}, not {invoice_key!r}")


# SyteLine -----------------------------------------------------------------------------------------


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
    country = _blank_to_none(item.get("Country"))
    bank_fields = ("BankAcctHolder", "IBAN", "BIC", "BankAcctNo", "BankRouting", "BankEmail")
    bank = None
    if any(_blank_to_none(item.get(name)) for name in bank_fields):
        bank = _bank_account(
            currency=currency,
            holder=_blank_to_none(item.get("BankAcctHolder")),
            country=country,
            iban=_blank_to_none(item.get("IBAN")),
            bic=_blank_to_none(item.get("BIC")),
            account_number=_blank_to_none(item.get("BankAcctNo")),
            routing=_blank_to_none(item.get("BankRouting")),
            account_type=_blank_to_none(item.get("BankAcctType")),
            email=_blank_to_none(item.get("BankEmail")),
            city=_blank_to_none(item.get("BankCity")),
            post_code=_blank_to_none(item.get("BankZip")),
            address_line=_blank_to_none(item.get("BankAddr")),
            state=_blank_to_none(item.get("BankState")),
        )
    return Supplier(
        supplier_id=str(item["VendNum"]),
        name=str(item["Name"]),
        currency=currency,
        status=IDO_SUPPLIER_STATUS.get(str(item["Stat"]), str(item["Stat"])),
        country=country,
        bank_account=bank,
        modified_date=_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_customer(item: Mapping[str, Any]) -> Customer:
    return Customer(
        customer_id=str(item["CustNum"]),
        name=str(item["Name"]),
        currency=str(item["CurrCode"]),
        email=_blank_to_none(item.get("Email")),
        country=_blank_to_none(item.get("Country")),
        address_line=_blank_to_none(item.get("Addr_1")),
        city=_blank_to_none(item.get("City")),
        post_code=_blank_to_none(item.get("Zip")),
        modified_date=_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_ap_invoice(item: Mapping[str, Any]) -> APInvoice:
    return APInvoice(
        division=str(item["Site"]),
        supplier_id=str(item["VendNum"]),
        invoice_number=str(item["InvNum"]),
        invoice_year=_field(item, "InvYear", int, "a year"),
        invoice_date=_field(item, "InvDate", _ido_required_date, "a SyteLine date"),
        due_date=_field(item, "DueDate", _ido_date, "a SyteLine date"),
        currency=str(item["CurrCode"]),
        amount=_field(item, "InvAmt", _decimal, "an amount"),
        status=_field(item, "Stat", lambda v: IDO_INVOICE_STATUS[str(v)], "an invoice status"),
        modified_date=_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_ar_invoice(item: Mapping[str, Any]) -> ARInvoice:
    return ARInvoice(
        division=str(item["Site"]),
        customer_id=str(item["CustNum"]),
        invoice_number=str(item["InvNum"]),
        invoice_year=_field(item, "InvYear", int, "a year"),
        invoice_date=_field(item, "InvDate", _ido_required_date, "a SyteLine date"),
        due_date=_field(item, "DueDate", _ido_date, "a SyteLine date"),
        currency=str(item["CurrCode"]),
        amount=_field(item, "Amount", _decimal, "an amount"),
        open_amount=_field(item, "OpenAmount", _decimal, "an amount"),
        status=_field(item, "Stat", lambda v: IDO_INVOICE_STATUS[str(v)], "an invoice status"),
        modified_date=_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_purchase_order(item: Mapping[str, Any], lines: Iterable[Mapping[str, Any]]) -> PurchaseOrder:
    return PurchaseOrder(
        po_number=str(item["PoNum"]),
        supplier_id=str(item["VendNum"]),
        order_date=_field(item, "OrderDate", _ido_required_date, "a SyteLine date"),
        currency=str(item["CurrCode"]),
        status=IDO_PO_STATUS.get(str(item["Stat"]), str(item["Stat"])),
        warehouse=_blank_to_none(item.get("Whse")),
        lines=tuple(
            sorted(
                (
                    PurchaseOrderLine(
                        line_number=_field(line, "PoLine", int, "a line number"),
                        item_number=str(line["Item"]),
                        description=_blank_to_none(line.get("Description")),
                        quantity=_field(line, "QtyOrdered", _decimal, "a quantity"),
                        unit_price=_field(line, "ItemCost", _decimal, "an amount"),
                    )
                    for line in lines
                ),
                key=lambda line: line.line_number,
            )
        ),
        modified_date=_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


def ido_gl_account(item: Mapping[str, Any]) -> GLAccount:
    return GLAccount(
        dimension=1,
        account_id=str(item["Acct"]),
        description=str(item["Description"]),
        modified_date=_field(item, "RecordDate", _ido_required_date, "a SyteLine date"),
    )


class SyteLineAdapter(_AdapterBase):
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
        self, ido: str, properties: tuple[str, ...], key: str, day: date
    ) -> Iterator[dict[str, Any]]:
        return self.ido.load(
            ido,
            list(properties),
            filter=f"RecordDate = {ido_literal(day.isoformat())}",
            orderby=key,
            recordcap=self.page_size,
        )

    def suppliers(self, day: date) -> Iterator[Supplier]:
        rows = self._changed_on("SLVendors", self.VENDOR_PROPERTIES, "VendNum", day)
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
        for page in _batched(heads, self.page_size):
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
        rows = self._changed_on("SLChartAccts", ("Acct", "Description", "RecordDate"), "Acct", day)
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
                            "QtyOrdered": _decimal_text(line.quantity),
                            "ItemCost": _decimal_text(line.unit_price),
                        },
                    )
                    for line in order.lines
                ],
            )
        return po_number

    def create_ap_invoice(self, invoice: NewAPInvoice) -> str:
        """Insert an SLAptrxs voucher; returns its invoice key DIVI/VENDOR/INVOICE/YEAR."""
        lines_total = sum((line.amount for line in invoice.lines), Decimal(0))
        key = f"{invoice.division}/{invoice.supplier_id}/{invoice.invoice_number}/{invoice.invoice_date.year}"
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
            "InvAmt": _decimal_text(invoice.amount),
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
            "Amount": _decimal_text(payment.amount),
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
                amount=_decimal(row["Amount"]),
                currency=_blank_to_none(row.get("CurrCode")),
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
        _check_extension_key(invoice_key, extension)
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
    if not _blank_to_none(row.get("Uf_StatusAt")):
        return None
    return InvoiceExtension(
        invoice_key=invoice_key,
        status=str(row.get("Uf_PayoutStatus") or ""),
        external_id=str(row.get("Uf_ExternalId") or ""),
        updated_at=str(row["Uf_StatusAt"]),
    )
