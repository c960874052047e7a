"""M3 through MI programs, every call checked against the M3 MI metadata (docs/infor.md).

Reads use EXPORTMI/Select on the M3 tables (CIDMAS suppliers, OCUSMA customers, FPLEDG / FSLEDG
ledgers, MPHEAD / MPLINE orders, FCHACC accounting identities). The company is the session's: it goes
as the `cono` matrix option, never as a `..CONO=` selection (Infor does not support company selections
in EXPORTMI). Ledgers are filtered by transaction code, so payments never read as invoices.

Supplier bank details come in bulk: one CRS692MI/LstByType (every account of the supplier bank type)
and one CRS691MI/LstByNumber (bank branches, for the BIC) per extract, not a call per supplier.

Tenant config keys (M3), with defaults:
- cono ("100"), divi (none): the session's company and division (matrix options).
- bank_type ("2"): CRS692MI BKTP of supplier accounts [I].
- m3_account_type_field ("BAF1"): the CRS692MI bank account field (BAF1..BAF5, free per bank
  format) that holds CHECKING / SAVINGS for US payees [I]; CRS692MI has no account-type field.
- m3_payee_email_source ("cemail"): where an email payee's (a supplier with no bank account)
  address is read: "cemail", the e-mail register MDBREADMI/LstCEMAIL00 of type m3_payee_email_type
  ("02" [I]) keyed by supplier number, in bulk; or "reference", the CRS620MI supplier reference of
  type m3_payee_reference_type ("PAY" [I]), one call per email payee.
- m3_bank_code_field ("BKNO"), m3_branch_code_field ("BBRN"): the CRS692MI fields holding a local
  account's bank code (BSB, institution number, Zengin bank code, clearing number) and branch code
  (transit number, Zengin branch code) [I]; m3_clearing_number_field (none): the field holding a
  Swedish clearing number, for tenants that pay SEK to local accounts.
- m3_payee_address_currencies ("USD"; "*" for all, "" for none) and m3_payee_address_type ("1"):
  payees paid in these currencies get their supplier address of this type (Wise asks an address
  for USD) [I]. No MI transaction lists addresses in bulk: with EXPORTMI they are read once per
  extract from the supplier address file m3_payee_address_table ("CIDADR", columns prefixed
  m3_payee_address_prefix "SA") [I]; "" for the table, or without EXPORTMI, reads each payee's with
  CRS620MI/LstAddresses (one call each).
- m3_ap_invoice_trcd ("40"), m3_ar_invoice_trcd ("10"): ledger transaction codes of invoices;
  m3_ar_payment_trcd ("20"): of customer payments (M3 convention [I]).
- m3_ar_payment_reference_column ("ESCKNO"): the FSLEDG column that holds ARS040MI's CKNO [I].
- m3_batch_payment_type ("1"): ARS040MI BOPE of the payment batches this connector adds [I].
- m3_payment_batch_prefix ("9"): first digit of the 10-digit PBIDs this connector uses [I].
- m3_ap_recorded_status (50): the APS450MI invoice status SUPA from which a batch counts as a
  recorded invoice (validated) for find_ap_invoice [I].
- m3_ap_line_accounting ("reject"): APS450MI/AddLine has no accounting inputs, so a line carrying a
  GL account or cost centre is refused, naming the field; "derive" lets M3's own accounting rules
  code such lines (the values are then not sent).
- m3_exportmi (true): false for a tenant whose MI security locks EXPORTMI. Suppliers, customers,
  AR invoices, accounting identities and single suppliers/customers are then read with CRS620MI /
  CRS610MI / ARS200MI / CRS630MI list and get transactions (same records out); an EXPORTMI refusal
  switches to them on its own. AP invoices, POs and posted AR payments have no list transaction by
  change date: they are found with the Enterprise Search transactions (APS200MI/SearchSupInvoic,
  PPS200MI/SearchHead, ARS200MI/SearchInvoices), then read by key (APS200MI/GetInvoice,
  PPS001MI/GetHeadBasic + PPS200MI/LstLine, ARS200MI/GetInvoice). The search queries are tenant
  config, since which fields a search index holds is the tenant's (see docs/infor.md):
  m3_ap_invoice_search ("TRCD:{trcd} AND LMDT:{date}"), m3_po_search ("LMDT:{date}"),
  m3_po_reference_search ("YRE1:{reference}"), m3_ar_payment_search ("TRCD:{trcd} AND CKNO:{key}").
- m3_locked_ar_invoice_date ("change_date"): without EXPORTMI, which AR invoices get a
  GetInvTotInfo call: every one, kept when its LMDT is the day (exact), or "invoice_date", only
  those dated the day (cheap; later changes to older invoices are not seen).
- extension_program ("CUGEX1MI") and extension_get / extension_add / extension_change.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ...core.errors import ConnectorError, ValidationFailed
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
from .m3 import (
    M3Client,
    M3TransactionError,
    is_exportmi_refused,
    m3_date,
    m3_literal,
    m3_timestamp,
    parse_m3_date,
    search_literal,
)
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

M3_INVOICE_STATUS: dict[str, InvoiceStatus] = {"0": "open", "9": "paid", "8": "cancelled"}
# Product-neutral words [I]; a code not listed is passed on unchanged.
# M3 supplier STAT: 10 preliminary, 20 definite, 90 blocked.
M3_SUPPLIER_STATUS = {"10": "inactive", "20": "active", "90": "inactive"}
# [I] PPS370MI StartEntry's batch origin for the orders this connector creates.
PO_BATCH_ORIGIN = "MLCONN"
# ARS040MI/AddBatchLine CKNO is 15 characters (metadata: ARS300MI GetRemittedLine output length).
PAYMENT_KEY_LENGTH = 15

logger = logging.getLogger("ml_connector.infor")


# Enterprise Search queries (SQRY) for a tenant that locks EXPORTMI, with the placeholders each may use.
SEARCH_QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "m3_ap_invoice_search": ("TRCD:{trcd} AND LMDT:{date}", ("trcd", "date")),
    "m3_po_search": ("LMDT:{date}", ("date",)),
    "m3_po_reference_search": ("YRE1:{reference}", ("reference",)),
    "m3_ar_payment_search": ("TRCD:{trcd} AND CKNO:{key}", ("trcd", "key")),
}


def search_query(config: Mapping[str, Any], key: str) -> str:
    """The tenant's query template for `key`, checked: an unknown {placeholder} is refused here."""
    default, names = SEARCH_QUERIES[key]
    template = str(config.get(key) or default)
    try:
        template.format(**dict.fromkeys(names, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConnectorError(
            f"{key} {template!r}: only the placeholders {', '.join('{' + n + '}' for n in names)} are known"
        ) from exc
    return template


def m3_po_status(highest_status: str) -> str:
    """M3 PUST runs 05..99; from 85 (invoiced) on, nothing more happens to the order."""
    return "closed" if highest_status.isdigit() and int(highest_status) >= 85 else "open"


def payment_key(reference: str) -> str:
    """A 15-character stand-in for a payment reference (Stripe ids are longer than CKNO)."""
    digest = base64.b32encode(hashlib.sha256(reference.encode()).digest()).decode()
    return "ML" + digest[: PAYMENT_KEY_LENGTH - 2]


def payment_batch(reference: str, prefix: str = "9") -> tuple[str, str]:
    """(PBID, TRNO) for a payment: both are inputs the caller chooses (ARS040MI metadata), so a
    repeat of the same payment answers "already exists" instead of posting twice. 9 + 6 digits of
    hash (1e15 values) make two references sharing a line improbable (~5e-6 at 100k payments)."""
    number = int.from_bytes(hashlib.sha256(reference.encode()).digest()[:8], "big")
    batch, line = divmod(number % 10**15, 10**6)
    return f"{prefix}{batch:09d}", str(line + 1)


def m3_bank_account(
    account: Mapping[str, str],
    *,
    supplier_currency: str,
    country: str | None,
    bic: str | None,
    account_type_field: str = "BAF1",
    bank_code_field: str = "BKNO",
    branch_code_field: str = "BBRN",
    clearing_number_field: str | None = None,
    address: Mapping[str, str] | None = None,
) -> BankAccount:
    """One CRS692MI account (LstByType or GetBankAccount record) -> BankAccount.

    Real fields only: BANA holder, CUCD currency, IBAN, FIAN/BACN account number, BRNO branch number
    (sort code or ABA routing), SWBI (GetBankAccount) or the branch's SWIC (CRS691MI) for the BIC.
    A local account (no IBAN, outside GB/US) takes its bank and branch codes from the tenant's
    `bank_code_field` / `branch_code_field` (default BKNO / BBRN: the bank and branch M3 registers
    it under, CRS690MI / CRS691MI), and its clearing number (SEK) from `clearing_number_field` if
    the tenant names one. CRS692MI has no
    address or email fields: the address is the supplier's own (`address`, a CRS620MI/LstAddresses
    record), when read. The account type (CHECKING/SAVINGS) is read from `account_type_field`.
    """
    iban = blank_to_none(account.get("IBAN"))
    bank_code = blank_to_none(account.get(bank_code_field))
    address = address or {}
    return make_bank_account(
        currency=account.get("CUCD") or supplier_currency,
        holder=blank_to_none(account.get("BANA")),
        country=country,
        iban=iban,
        bic=blank_to_none(account.get("SWBI")) or bic,
        account_number=blank_to_none(account.get("BACN")) or blank_to_none(account.get("FIAN")),
        routing=blank_to_none(account.get("BRNO")),
        account_type=blank_to_none(account.get(account_type_field)),
        email=None,
        city=blank_to_none(address.get("TOWN")),
        post_code=blank_to_none(address.get("PONO")),
        address_line=blank_to_none(address.get("ADR1")),
        state=blank_to_none(address.get("ECAR")),
        bank_code=bank_code,
        branch_code=blank_to_none(account.get(branch_code_field)),
        clearing_number=blank_to_none(account.get(clearing_number_field)) if clearing_number_field else None,
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
        country=blank_to_none(row["IDCSCD"]),
        bank_account=bank_account,
        modified_date=read_field(row, "IDLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_customer(row: Mapping[str, str]) -> Customer:
    return Customer(
        customer_id=row["OKCUNO"],
        name=row["OKCUNM"],
        currency=row["OKCUCD"],
        email=blank_to_none(row["OKMAIL"]),
        country=blank_to_none(row["OKCSCD"]),
        address_line=blank_to_none(row["OKCUA1"]),
        city=blank_to_none(row["OKTOWN"]),
        post_code=blank_to_none(row["OKPONO"]),
        modified_date=read_field(row, "OKLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_ap_invoice(row: Mapping[str, str]) -> APInvoice:
    return APInvoice(
        division=row["EPDIVI"],
        supplier_id=row["EPSUNO"],
        invoice_number=row["EPSINO"],
        invoice_year=read_field(row, "EPINYR", int, "a year"),
        invoice_date=read_field(row, "EPIVDT", _m3_date, "an M3 date (YYYYMMDD)"),
        due_date=read_field(row, "EPDUDT", parse_m3_date, "an M3 date (YYYYMMDD)"),
        currency=row["EPCUCD"],
        amount=read_field(row, "EPCUAM", to_decimal, "an amount"),
        status=read_field(row, "EPRECO", M3_INVOICE_STATUS.__getitem__, "an invoice status"),
        modified_date=read_field(row, "EPLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_ar_invoice(row: Mapping[str, str], settled: Decimal) -> ARInvoice:
    """`settled`: the sum of the invoice's other FSLEDG transactions (payments are negative)."""
    amount = read_field(row, "ESCUAM", to_decimal, "an amount")
    return ARInvoice(
        division=row["ESDIVI"],
        customer_id=row["ESCUNO"],
        invoice_number=row["ESCINO"],
        invoice_year=read_field(row, "ESINYR", int, "a year"),
        invoice_date=read_field(row, "ESIVDT", _m3_date, "an M3 date (YYYYMMDD)"),
        due_date=read_field(row, "ESDUDT", parse_m3_date, "an M3 date (YYYYMMDD)"),
        currency=row["ESCUCD"],
        amount=amount,
        open_amount=amount + settled,
        status=read_field(row, "ESRECO", M3_INVOICE_STATUS.__getitem__, "an invoice status"),
        modified_date=read_field(row, "ESLMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_purchase_order(row: Mapping[str, str], lines: Iterable[Mapping[str, str]]) -> PurchaseOrder:
    return PurchaseOrder(
        po_number=row["IAPUNO"],
        supplier_id=row["IASUNO"],
        order_date=read_field(row, "IAPUDT", _m3_date, "an M3 date (YYYYMMDD)"),
        currency=row["IACUCD"],
        status=m3_po_status(row["IAPUST"]),
        facility=blank_to_none(row["IAFACI"]),
        warehouse=blank_to_none(row["IAWHLO"]),
        lines=tuple(
            sorted(
                (
                    PurchaseOrderLine(
                        line_number=read_field(line, "IBPNLI", int, "a line number"),
                        item_number=line["IBITNO"],
                        description=blank_to_none(line["IBPITD"]),
                        quantity=read_field(line, "IBORQA", to_decimal, "a quantity"),
                        unit_price=read_field(line, "IBPUPR", to_decimal, "an amount"),
                    )
                    for line in lines
                ),
                key=lambda line: line.line_number,
            )
        ),
        modified_date=read_field(row, "IALMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


def m3_gl_account(row: Mapping[str, str]) -> GLAccount:
    return GLAccount(
        dimension=read_field(row, "EAAITP", int, "a dimension number"),
        account_id=row["EAAITM"],
        description=row["EATX40"],
        modified_date=read_field(row, "EALMDT", _m3_date, "an M3 date (YYYYMMDD)"),
    )


class M3Adapter(AdapterBase):
    product: Product = "m3"

    SUPPLIER_COLUMNS = tuple("IDSUNO IDSUNM IDCUCD IDSTAT IDCSCD IDLMDT".split())
    CUSTOMER_COLUMNS = tuple("OKCUNO OKCUNM OKCUCD OKMAIL OKCSCD OKCUA1 OKTOWN OKPONO OKLMDT".split())
    AP_COLUMNS = tuple("EPDIVI EPSUNO EPSINO EPINYR EPIVDT EPDUDT EPCUCD EPCUAM EPRECO EPLMDT".split())
    AR_COLUMNS = tuple("ESDIVI ESCUNO ESCINO ESINYR ESIVDT ESDUDT ESCUCD ESCUAM ESRECO ESLMDT".split())
    AR_SETTLEMENT_COLUMNS = tuple("ESDIVI ESCUNO ESCINO ESINYR ESTRCD ESCUAM".split())
    PO_COLUMNS = tuple("IAPUNO IASUNO IACUCD IAPUDT IAPUST IAFACI IAWHLO IALMDT".split())
    PO_LINE_COLUMNS = tuple("IBPUNO IBPNLI IBITNO IBPITD IBORQA IBPUPR".split())
    GL_COLUMNS = tuple("EAAITP EAAITM EATX40 EALMDT".split())
    # The AP_COLUMNS an APS200MI/GetInvoice answer holds under their unprefixed names (all but LMDT).
    AP_COLUMNS_SEARCHED = tuple(column[2:] for column in AP_COLUMNS if column != "EPLMDT")

    def __init__(self, http: HttpClient, auth: IonApiAuth, config: Mapping[str, Any]) -> None:
        super().__init__(http, auth, config)
        self.cono = str(config.get("cono") or "100")
        self.m3 = M3Client(http, cono=self.cono, divi=config.get("divi"))
        self.bank_type = str(config.get("bank_type") or "2")
        self.payee_reference_type = str(config.get("m3_payee_reference_type") or "PAY")
        self.payee_email_source = str(config.get("m3_payee_email_source") or "cemail")
        if self.payee_email_source not in ("cemail", "reference"):
            raise ConnectorError("m3_payee_email_source must be cemail or reference")
        self.payee_email_type = str(config.get("m3_payee_email_type") or "02")
        self._payee_emails: dict[str, str] | None = None  # read once per supplier extract
        self._addresses: dict[str, dict[str, str]] | None = None  # likewise
        self.account_type_field = str(config.get("m3_account_type_field") or "BAF1")
        self.bank_code_field = str(config.get("m3_bank_code_field") or "BKNO")
        self.branch_code_field = str(config.get("m3_branch_code_field") or "BBRN")
        self.clearing_number_field = config.get("m3_clearing_number_field") or None
        currencies = config.get("m3_payee_address_currencies", "USD")
        if isinstance(currencies, str):
            currencies = currencies.replace(",", " ").split()
        self.address_currencies = {str(currency).upper() for currency in currencies or ()}
        self.address_type = str(config.get("m3_payee_address_type") or "1")
        # The supplier address file and its column prefix, for EXPORTMI [I] ("" table: per payee).
        self.address_table = str(config.get("m3_payee_address_table", "CIDADR") or "")
        self.address_prefix = str(config.get("m3_payee_address_prefix") or "SA")
        self.ap_invoice_trcd = str(config.get("m3_ap_invoice_trcd") or "40")
        self.ar_invoice_trcd = str(config.get("m3_ar_invoice_trcd") or "10")
        self.ar_payment_trcd = str(config.get("m3_ar_payment_trcd") or "20")
        self.ar_reference_column = str(config.get("m3_ar_payment_reference_column") or "ESCKNO")
        self.batch_payment_type = str(config.get("m3_batch_payment_type") or "1")
        self.payment_batch_prefix = str(config.get("m3_payment_batch_prefix") or "9")
        self.ap_recorded_status = int(config.get("m3_ap_recorded_status") or 50)
        self.ap_line_accounting = str(config.get("m3_ap_line_accounting") or "reject")
        self.exportmi = str(config.get("m3_exportmi", True)).lower() not in ("false", "0", "no")
        self.locked_ar_date = str(config.get("m3_locked_ar_invoice_date") or "change_date")
        if self.locked_ar_date not in ("change_date", "invoice_date"):
            raise ConnectorError("m3_locked_ar_invoice_date must be change_date or invoice_date")
        self.searches = {key: search_query(config, key) for key in SEARCH_QUERIES}
        self.extension_program = str(config.get("extension_program") or "CUGEX1MI")
        self.extension_get = str(config.get("extension_get") or "GetFieldValue")
        self.extension_add = str(config.get("extension_add") or "AddFieldValue")
        self.extension_change = str(config.get("extension_change") or "ChgFieldValue")

    def ping(self) -> None:
        """One authenticated read: proves the credentials, the gateway and the company."""
        self.m3.execute("CRS620MI", "LstSuppliers", maxrecs=1)  # open to tenants that lock EXPORTMI

    # Reads ------------------------------------------------------------------------------------

    def _changed_on(
        self,
        table: str,
        columns: tuple[str, ...],
        key: str,
        day: date,
        *where: str,
        fallback: Callable[[date], Iterator[dict[str, Any]]],
        last: date | None = None,
    ) -> Iterator[dict[str, Any]]:
        """A table's rows changed on `day` (through `last`, if given) through EXPORTMI, or through
        `fallback` (rows in the same columns, from list or search transactions, a day at a time)
        when the tenant locks EXPORTMI."""
        last = last or day
        if self.exportmi:
            prefix = columns[0][:2]  # M3 columns carry the table's two-letter prefix
            changed = (
                [f"{prefix}LMDT={m3_date(day)}"]
                if last == day
                else [f"{prefix}LMDT>={m3_date(day)}", f"{prefix}LMDT<={m3_date(last)}"]
            )
            rows = self.m3.select(table, columns, key=key, where=[*changed, *where], page_size=self.page_size)
            try:
                first = next(rows, None)  # a locked EXPORTMI refuses the first page
            except M3TransactionError as exc:
                if not is_exportmi_refused(exc):
                    raise
                self.exportmi = False
            else:
                if first is not None:
                    yield first
                    yield from rows
                return
        for offset in range((last - day).days + 1):
            yield from fallback(day + timedelta(days=offset))

    def _changed_since(
        self, program: str, transaction: str, key: str, start: str, day: date
    ) -> Iterator[dict[str, str]]:
        """Records whose last change is on `day`: changed since the day began (LMTS input) and not
        since the next day began. Both lists come in key order, so one merge pass takes them apart."""
        since_day = self.m3.list_from(
            program, transaction, key=key, start=start, page_size=self.page_size, LMTS=m3_timestamp(day)
        )
        later = self.m3.list_from(
            program,
            transaction,
            key=key,
            start=start,
            page_size=self.page_size,
            LMTS=m3_timestamp(day + timedelta(days=1)),
        )
        next_later = next(later, None)
        for record in since_day:
            while next_later is not None and next_later[key] < record[key]:
                next_later = next(later, None)
            if next_later is not None and next_later[key] == record[key]:
                continue
            yield record

    def _suppliers_listed(self, day: date) -> Iterator[dict[str, str]]:
        """CRS620MI/LstSuppliers (no status): the status comes from GetBasicData, one per supplier."""
        for record in self._changed_since("CRS620MI", "LstSuppliers", "SUNO", "FRSU", day):
            [basic] = self.m3.execute("CRS620MI", "GetBasicData", SUNO=record["SUNO"])
            yield {
                "IDSUNO": record["SUNO"],
                "IDSUNM": record["SUNM"],
                "IDCUCD": record["CUCD"],
                "IDSTAT": basic["STAT"],
                "IDCSCD": record["CSCD"],
                "IDLMDT": m3_date(day),
            }

    def _customers_listed(self, day: date) -> Iterator[dict[str, str]]:
        names = dict(
            zip(self.CUSTOMER_COLUMNS, "CUNO CUNM CUCD MAIL CSCD CUA1 TOWN PONO".split(), strict=False)
        )
        for record in self._changed_since("CRS610MI", "LstByNumber", "CUNO", "CUNO", day):
            yield {**{column: record[field] for column, field in names.items()}, "OKLMDT": m3_date(day)}

    def _accounts_listed(self, day: date) -> Iterator[dict[str, str]]:
        """CRS630MI/LstAccountID per dimension 1..7, in AITM order; it returns LMDT itself."""
        for dimension in range(1, 8):
            for record in self.m3.list_from(
                "CRS630MI", "LstAccountID", key="AITM", start="AITM", page_size=self.page_size, AITP=dimension
            ):
                if record["LMDT"] == m3_date(day):
                    yield {
                        "EAAITP": record["AITP"],
                        "EAAITM": record["AITM"],
                        "EATX40": record["TX40"],
                        "EALMDT": record["LMDT"],
                    }

    def _ar_ledger_listed(self) -> Iterator[dict[str, str]]:
        """Every AR ledger row of the session's division (ARS200MI/LstInvByDivi), keyset-paged on
        CUNO: a page restarts at its last customer (the start is inclusive) and rows already read are
        skipped; when one customer fills a whole page, the page is read again twice as large."""
        division = {"FDIV": self.m3.divi, "TDIV": self.m3.divi} if self.m3.divi else {}
        seen: set[tuple[str, ...]] = set()
        start: str | None = None
        size = self.page_size
        while True:
            page = self.m3.execute("ARS200MI", "LstInvByDivi", maxrecs=size, CUNO=start, **division)
            if len(page) == size and page[0]["CUNO"] == page[-1]["CUNO"]:
                size *= 2  # no progress possible from this start with this page size
                continue
            for row in page:
                key = (row["DIVI"], row["CUNO"], row["CINO"], row["INYR"], row["TRCD"])
                if key not in seen:
                    seen.add(key)
                    yield row
            if len(page) < size:
                return
            start, size = page[-1]["CUNO"], self.page_size

    def _ar_invoices_listed(self, day: date) -> Iterator[dict[str, str]]:
        """AR invoices changed on `day` without EXPORTMI. LstInvByDivi has no currency, open amount or
        change date, so each candidate invoice costs one ARS200MI/GetInvTotInfo (CUCD, OCUA, LMDT).
        Candidates (`m3_locked_ar_invoice_date`): every invoice ("change_date", exact), or only those
        dated `day` ("invoice_date": cheap, but a later payment or cancellation is not seen)."""
        for row in self._ar_ledger_listed():
            if row["TRCD"] != self.ar_invoice_trcd:
                continue
            if self.locked_ar_date == "invoice_date" and row["IVDT"] != m3_date(day):
                continue
            [total] = self.m3.execute(
                "ARS200MI",
                "GetInvTotInfo",
                DIVI=row["DIVI"],
                PYNO=row["PYNO"],
                CUNO=row["CUNO"],
                CINO=row["CINO"],
                INYR=row["INYR"],
            )
            if self.locked_ar_date == "change_date" and total["LMDT"] != m3_date(day):
                continue
            yield {
                **{
                    f"ES{name}": row[name]
                    for name in ("DIVI", "CUNO", "CINO", "INYR", "IVDT", "DUDT", "CUAM", "RECO")
                },
                "ESCUCD": total["CUCD"],
                "ESLMDT": total["LMDT"],
                "OCUA": total["OCUA"],
            }

    def _search(
        self, program: str, transaction: str, query_key: str, /, **values: str
    ) -> list[dict[str, str]]:
        """Every hit of the tenant's search query `query_key` (maxrecs=0: all hits), values escaped."""
        query = self.searches[query_key].format(**{name: search_literal(v) for name, v in values.items()})
        return self.m3.execute(program, transaction, maxrecs=0, SQRY=query)

    def _ap_invoices_searched(self, day: date) -> Iterator[dict[str, str]]:
        """AP invoices changed on `day` without EXPORTMI: APS200MI/SearchSupInvoic gives the voucher
        keys (no supplier, amount or currency), APS200MI/GetInvoice each invoice. The query selects
        the day's changes, so the change date is the day; the transaction code is checked again."""
        hits = self._search(
            "APS200MI",
            "SearchSupInvoic",
            "m3_ap_invoice_search",
            trcd=self.ap_invoice_trcd,
            date=m3_date(day),
        )
        for hit in sorted(hits, key=lambda h: (h["SINO"], h["YEA4"], h["JRNO"], h["JSNO"])):
            [invoice] = self.m3.execute(
                "APS200MI",
                "GetInvoice",
                YEA4=hit["YEA4"],
                JRNO=hit["JRNO"],
                JSNO=hit["JSNO"],
                DIVI=hit["DIVI"],
            )
            if invoice["TRCD"] != self.ap_invoice_trcd:
                continue
            yield {
                **{f"EP{name}": invoice[name] for name in self.AP_COLUMNS_SEARCHED},
                "EPLMDT": m3_date(day),
            }

    def _purchase_order_head(self, po_number: str) -> dict[str, str]:
        """PPS001MI/GetHeadBasic in MPHEAD's columns (it has no change date)."""
        [head] = self.m3.execute("PPS001MI", "GetHeadBasic", PUNO=po_number)
        return {
            f"IA{name}": head[name]
            for name in ("PUNO", "SUNO", "CUCD", "PUDT", "PUST", "FACI", "WHLO", "YRE1")
        }

    def _purchase_orders_searched(self, day: date) -> Iterator[dict[str, Any]]:
        """POs changed on `day` without EXPORTMI: PPS200MI/SearchHead for the numbers, then per order
        PPS001MI/GetHeadBasic (currency) and PPS200MI/LstLine (lines, under "LINES")."""
        hits = self._search("PPS200MI", "SearchHead", "m3_po_search", date=m3_date(day))
        for number in sorted({hit["PUNO"] for hit in hits}):
            lines = self.m3.execute("PPS200MI", "LstLine", maxrecs=0, PUNO=number)
            yield {
                **self._purchase_order_head(number),
                "IALMDT": m3_date(day),
                "LINES": [
                    {f"IB{name}": line[name] for name in ("PUNO", "PNLI", "ITNO", "PITD", "ORQA", "PUPR")}
                    for line in lines
                ],
            }

    def _bank_accounts(self) -> dict[str, dict[str, str]]:
        """Every supplier account of `bank_type` by holder (the first by BKID), with its branch's BIC
        in SWIC: two calls for the whole extract (CRS692MI/LstByType, CRS691MI/LstByNumber),
        whatever the number of suppliers. Mapped with each supplier's country and currency."""
        branches = {
            (branch["BKNO"], branch["BBRN"]): blank_to_none(branch.get("SWIC"))
            for branch in self.m3.execute("CRS691MI", "LstByNumber", maxrecs=0)
        }
        accounts = self.m3.execute("CRS692MI", "LstByType", maxrecs=0, BKTP=self.bank_type)
        first: dict[str, dict[str, str]] = {}
        for account in sorted(accounts, key=lambda record: (record["ACHO"], record["BKID"])):
            account["SWIC"] = branches.get((account["BKNO"], account["BBRN"])) or ""
            first.setdefault(account["ACHO"], account)
        return first

    def _payee_email(self, supplier_id: str, *, one: bool = False) -> str | None:
        """An email payee's address. `cemail` (default): the e-mail register of type
        `m3_payee_email_type` keyed by supplier number, MDBREADMI/LstCEMAIL00, read once per extract
        in keyset pages (`one`: just this supplier's key). `reference`: the supplier reference of type
        `m3_payee_reference_type` (CRS620MI/LstSupplierRef EMAL), one call per such supplier."""
        if self.payee_email_source == "reference":
            for reference in self.m3.execute("CRS620MI", "LstSupplierRef", maxrecs=0, SUNO=supplier_id):
                if reference.get("RFTY") == self.payee_reference_type and blank_to_none(
                    reference.get("EMAL")
                ):
                    return reference["EMAL"]
            return None
        if one:
            records = self.m3.execute(
                "MDBREADMI", "LstCEMAIL00", maxrecs=1, EMTP=self.payee_email_type, EMKY=supplier_id
            )
            return next((blank_to_none(r.get("EMAL")) for r in records if r.get("EMKY") == supplier_id), None)
        if self._payee_emails is None:
            self._payee_emails = {
                record["EMKY"]: record["EMAL"]
                for record in self.m3.list_from(
                    "MDBREADMI",
                    "LstCEMAIL00",
                    key="EMKY",
                    start="EMKY",
                    page_size=self.page_size,
                    EMTP=self.payee_email_type,
                )
                if blank_to_none(record.get("EMAL"))
            }
        return self._payee_emails.get(supplier_id)

    def _needs_address(self, row: Mapping[str, str], account: Mapping[str, str] | None) -> bool:
        """Whether this supplier is a bank payee whose payout currency (the account's, else the
        supplier's) gets its address (`m3_payee_address_currencies`)."""
        if account is None:
            return False
        currency = (account.get("CUCD") or row["IDCUCD"]).upper()
        return "*" in self.address_currencies or currency in self.address_currencies

    def _payee_address(self, supplier_id: str) -> dict[str, str] | None:
        """The supplier's address of `m3_payee_address_type` (CRS620MI/LstAddresses: ADR1 TOWN PONO
        ECAR CSCD), the one with the lowest ADID: one call (CRS692MI has no address)."""
        addresses = [
            address
            for address in self.m3.execute("CRS620MI", "LstAddresses", maxrecs=0, SUNO=supplier_id)
            if address.get("ADTE") == self.address_type
        ]
        return min(addresses, key=lambda address: address.get("ADID", "")) if addresses else None

    ADDRESS_FIELDS = ("SUNO", "ADID", "ADR1", "TOWN", "ECAR", "PONO", "CSCD")
    ADDRESS_PAGE = 10_000  # rows per EXPORTMI call of the address file [I: Infor's list limit]

    def _payee_addresses(self, supplier_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """The `m3_payee_address_type` address of each of these suppliers that has one, by supplier.

        No MI transaction lists supplier addresses in bulk. With EXPORTMI, the supplier address
        file (`m3_payee_address_table`, CIDADR [I]) is read once per extract, as the bank accounts
        are (CRS692MI/LstByType), in pages of ADDRESS_PAGE rows; else, or for a lone payee, each
        payee's is read with CRS620MI/LstAddresses."""
        wanted = sorted(set(supplier_ids))
        if self._addresses is None and len(wanted) > 1 and self.exportmi and self.address_table:
            self._addresses = self._address_file()
        if self._addresses is not None:
            return {s: self._addresses[s] for s in wanted if s in self._addresses}
        return {s: address for s in wanted if (address := self._payee_address(s)) is not None}

    def _address_file(self) -> dict[str, dict[str, str]] | None:
        """Every supplier's address of the payee type, the lowest ADID each; None when EXPORTMI
        cannot read the table (then the payees are read one by one)."""
        prefix = self.address_prefix
        key = prefix + "SUNO"
        rows = self.m3.select(
            self.address_table,
            tuple(prefix + name for name in self.ADDRESS_FIELDS),
            key=key,
            where=[f"{prefix}ADTE={m3_literal(self.address_type)}"],
            page_size=self.ADDRESS_PAGE,
        )
        found: dict[str, dict[str, str]] = {}
        try:
            for row in rows:
                address = {name: row[prefix + name] for name in self.ADDRESS_FIELDS}
                held = found.get(row[key])
                if held is None or address["ADID"] < held["ADID"]:
                    found[row[key]] = address
        except M3TransactionError as exc:
            if is_exportmi_refused(exc):
                self.exportmi = False
            else:  # e.g. the tenant's M3 has no such table or column: say so, read one by one
                logger.warning(
                    "M3 supplier addresses: EXPORTMI on %s failed (%s); reading each payee's with "
                    'CRS620MI/LstAddresses. Set m3_payee_address_table ("" for none).',
                    self.address_table,
                    exc.target_message,
                )
                self.address_table = ""
            return None
        return found

    def _with_bank(
        self,
        row: Mapping[str, str],
        account: Mapping[str, str] | None,
        *,
        one: bool = False,
        addresses: Mapping[str, dict[str, str]] | None = None,
    ) -> Supplier:
        """The supplier with its bank account; `addresses`: the page's payee addresses, read in
        bulk (`_payee_addresses`), else this payee's is read now if its currency needs one."""
        bank = None
        if account is None:
            # No bank account: maybe an email payee.
            email = self._payee_email(row["IDSUNO"], one=one)
            if email:
                bank = make_bank_account(
                    currency=row["IDCUCD"],
                    holder=row["IDSUNM"],
                    country=blank_to_none(row["IDCSCD"]),
                    iban=None,
                    bic=None,
                    account_number=None,
                    routing=None,
                    account_type=None,
                    email=email,
                    city=None,
                    post_code=None,
                    address_line=None,
                    state=None,
                )
        else:
            address = None
            if self._needs_address(row, account):
                supplier_id = row["IDSUNO"]
                address = (
                    addresses.get(supplier_id) if addresses is not None else self._payee_address(supplier_id)
                )
            bank = m3_bank_account(
                account,
                supplier_currency=row["IDCUCD"],
                country=blank_to_none(row["IDCSCD"]),
                bic=blank_to_none(account.get("SWIC")),
                account_type_field=self.account_type_field,
                bank_code_field=self.bank_code_field,
                branch_code_field=self.branch_code_field,
                clearing_number_field=self.clearing_number_field,
                address=address,
            )
        return m3_supplier(row, bank)

    def suppliers(self, day: date) -> Iterator[Supplier]:
        return self.suppliers_changed(day, day)

    def suppliers_changed(self, first: date, last: date) -> Iterator[Supplier]:
        """Suppliers changed on any day from `first` to `last`: one EXPORTMI read of the window, and
        the bank accounts, e-mails and addresses read once for all of it."""
        rows = self._changed_on(
            "CIDMAS", self.SUPPLIER_COLUMNS, "IDSUNO", first, fallback=self._suppliers_listed, last=last
        )
        accounts: dict[str, dict[str, str]] | None = None
        self._payee_emails = self._addresses = None
        for page in batched(rows, self.page_size):
            if accounts is None:  # only when there is a supplier to complete
                accounts = self._bank_accounts()
            addresses = self._payee_addresses(
                row["IDSUNO"] for row in page if self._needs_address(row, accounts.get(row["IDSUNO"]))
            )
            yield from self._map_rows(
                "suppliers",
                page,
                ("IDSUNO",),
                lambda row, accounts=accounts, addresses=addresses: self._with_bank(
                    row, accounts.get(row["IDSUNO"]), addresses=addresses
                ),
            )

    def supplier(self, supplier_id: str) -> Supplier | None:
        """One supplier (with its bank account) whatever its modified date; None when unknown.

        Without EXPORTMI: CRS620MI/GetBasicData, which has no change date, so the modified date is the
        day of the read (an approximation; nothing reading one supplier uses it)."""
        if self.exportmi:
            columns = ",".join(self.SUPPLIER_COLUMNS)
            query = f"{columns} from CIDMAS where IDSUNO={m3_literal(supplier_id)} order by IDSUNO"
            try:
                rows = self.m3.export(query, self.SUPPLIER_COLUMNS, maxrecs=1)
            except M3TransactionError as exc:
                if not is_exportmi_refused(exc):
                    raise
                self.exportmi = False
            else:
                return (
                    self._with_bank(rows[0], self.bank_account_record(supplier_id), one=True)
                    if rows
                    else None
                )
        try:
            [basic] = self.m3.execute("CRS620MI", "GetBasicData", SUNO=supplier_id)
        except M3TransactionError as exc:
            if exc.error_type == "ServerReturnedNOK" and "does not exist" in exc.target_message:
                return None
            raise
        row = {f"ID{name}": basic[name] for name in ("SUNO", "SUNM", "CUCD", "STAT", "CSCD")}
        row["IDLMDT"] = m3_date(datetime.now(UTC).date())
        return self._with_bank(row, self.bank_account_record(supplier_id), one=True)

    def bank_account_record(self, supplier_id: str) -> dict[str, str] | None:
        """The supplier's account of `bank_type` with SWBI/BACN (CRS692MI/GetBankAccount), or None."""
        try:
            records = self.m3.execute("CRS692MI", "GetBankAccount", BKTP=self.bank_type, ACHO=supplier_id)
        except M3TransactionError as exc:
            if exc.error_type == "ServerReturnedNOK" and "does not exist" in exc.target_message:
                return None
            raise
        return records[0] if records else None

    def customers(self, day: date) -> Iterator[Customer]:
        rows = self._changed_on(
            "OCUSMA", self.CUSTOMER_COLUMNS, "OKCUNO", day, fallback=self._customers_listed
        )
        return self._map_rows("customers", rows, ("OKCUNO",), m3_customer)

    def customer(self, customer_id: str) -> Customer | None:
        """One customer by number, whatever its modified date; None if M3 has no such customer."""
        if self.exportmi:
            columns = ",".join(self.CUSTOMER_COLUMNS)
            query = f"{columns} from OCUSMA where OKCUNO={m3_literal(customer_id)} order by OKCUNO"
            try:
                rows = self.m3.export(query, self.CUSTOMER_COLUMNS, maxrecs=1)
                return m3_customer(rows[0]) if rows else None
            except M3TransactionError as exc:
                if not is_exportmi_refused(exc):
                    raise
                self.exportmi = False
        # CRS610MI/GetBasicData returns the change date too (LMDT).
        try:
            [basic] = self.m3.execute("CRS610MI", "GetBasicData", CUNO=customer_id)
        except M3TransactionError as exc:
            if exc.error_type == "ServerReturnedNOK" and "does not exist" in exc.target_message:
                return None
            raise
        fields = "CUNO CUNM CUCD MAIL CSCD CUA1 TOWN PONO LMDT".split()
        return m3_customer(dict(zip(self.CUSTOMER_COLUMNS, (basic[name] for name in fields), strict=True)))

    def ap_invoices(self, day: date) -> Iterator[APInvoice]:
        # Keyed on the invoice number: shared by few rows, so pages restart cheaply.
        rows = self._changed_on(
            "FPLEDG",
            self.AP_COLUMNS,
            "EPSINO",
            day,
            f"EPTRCD={self.ap_invoice_trcd}",
            fallback=self._ap_invoices_searched,
        )
        return self._map_rows("ap_invoices", rows, ("EPDIVI", "EPSUNO", "EPSINO", "EPINYR"), m3_ap_invoice)

    def ar_invoices(self, day: date) -> Iterator[ARInvoice]:
        """Invoice rows (ESTRCD = the invoice code) changed that day; the open amount is the invoice
        plus its other transactions (payments, refunds), read in one call per page of invoices."""
        rows = self._changed_on(
            "FSLEDG",
            self.AR_COLUMNS,
            "ESCINO",
            day,
            f"ESTRCD={self.ar_invoice_trcd}",
            fallback=self._ar_invoices_listed,
        )
        for page in batched(rows, self.page_size):
            if "OCUA" in page[0]:  # listed without EXPORTMI: GetInvTotInfo gave the open amount
                yield from self._map_rows(
                    "ar_invoices",
                    page,
                    ("ESDIVI", "ESCUNO", "ESCINO", "ESINYR"),
                    lambda row: m3_ar_invoice(row, to_decimal(row["OCUA"]) - to_decimal(row["ESCUAM"])),
                )
                continue
            first, last = m3_literal(page[0]["ESCINO"]), m3_literal(page[-1]["ESCINO"])
            query = (
                f"{','.join(self.AR_SETTLEMENT_COLUMNS)} from FSLEDG"
                f" where ESCINO>={first} and ESCINO<={last} order by ESCINO"
            )
            settled: dict[tuple[str, ...], Decimal] = {}
            for row in self.m3.export(query, self.AR_SETTLEMENT_COLUMNS, maxrecs=0):
                if row["ESTRCD"] != self.ar_invoice_trcd:
                    key = (row["ESDIVI"], row["ESCUNO"], row["ESCINO"], row["ESINYR"])
                    settled[key] = settled.get(key, Decimal(0)) + to_decimal(row["ESCUAM"])
            yield from self._map_rows(
                "ar_invoices",
                page,
                ("ESDIVI", "ESCUNO", "ESCINO", "ESINYR"),
                lambda row, settled=settled: m3_ar_invoice(
                    row,
                    settled.get((row["ESDIVI"], row["ESCUNO"], row["ESCINO"], row["ESINYR"]), Decimal(0)),
                ),
            )

    def purchase_orders(self, day: date) -> Iterator[PurchaseOrder]:
        heads = self._changed_on(
            "MPHEAD", self.PO_COLUMNS, "IAPUNO", day, fallback=self._purchase_orders_searched
        )
        for page in batched(heads, self.page_size):
            if "LINES" in page[0]:  # searched without EXPORTMI: the lines came with each head
                yield from self._map_rows(
                    "purchase_orders", page, ("IAPUNO",), lambda head: m3_purchase_order(head, head["LINES"])
                )
                continue
            # One call for the lines of the whole page: the heads come in PUNO order.
            numbers = {head["IAPUNO"] for head in page}
            query = (
                f"{','.join(self.PO_LINE_COLUMNS)} from MPLINE"
                f" where IBPUNO>={m3_literal(page[0]['IAPUNO'])} and IBPUNO<={m3_literal(page[-1]['IAPUNO'])}"
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
        return self.gl_accounts_changed(day, day)

    def gl_accounts_changed(self, first: date, last: date) -> Iterator[GLAccount]:
        rows = self._changed_on(
            "FCHACC", self.GL_COLUMNS, "EAAITM", first, fallback=self._accounts_listed, last=last
        )
        return self._map_rows("gl_accounts", rows, ("EAAITP", "EAAITM"), m3_gl_account)

    # Writes -----------------------------------------------------------------------------------

    def _one(self, program: str, transaction: str, **fields: Any) -> dict[str, str]:
        """The single output record of a write transaction (the number M3 gave the new record)."""
        records = self.m3.execute(program, transaction, **fields)
        if not records:
            raise ConnectorError(f"{program}/{transaction} answered without its output record")
        return records[0]

    def find_purchase_order(self, external_ref: str) -> str | None:
        """The PO carrying this external reference (YRE1), or None. Without EXPORTMI: the search
        query `m3_po_reference_search`, each hit's YRE1 checked by PPS001MI/GetHeadBasic."""
        if self.exportmi:
            query = f"IAPUNO from MPHEAD where IAYRE1={m3_literal(external_ref)} order by IAPUNO"
            try:
                rows = self.m3.export(query, ("IAPUNO",), maxrecs=1)
            except M3TransactionError as exc:
                if not is_exportmi_refused(exc):
                    raise
                self.exportmi = False
            else:
                return rows[0]["IAPUNO"] if rows else None
        hits = self._search("PPS200MI", "SearchHead", "m3_po_reference_search", reference=external_ref)
        for number in sorted({hit["PUNO"] for hit in hits}):
            if self._purchase_order_head(number)["IAYRE1"] == external_ref:
                return number
        return None

    def create_purchase_order(self, order: NewPurchaseOrder) -> str:
        """PPS370MI batch entry; returns PUNO. An order already carrying this external ref is reused."""
        for name in ("facility", "warehouse"):  # FACI and WHLO are required by PPS370MI/AddHead
            if not getattr(order, name):
                raise ValidationFailed(order.external_ref, name, f"M3 needs a {name} for a purchase order")
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
                ORQA=decimal_text(line.quantity),
                PUPR=decimal_text(line.unit_price),
                PITD=line.description,
            )
        self.m3.execute("PPS370MI", "FinishEntry", MSGN=message)
        return po_number

    def find_ap_invoice(self, invoice: NewAPInvoice) -> str | None:
        """The batch number (INBN) of a validated batch M3 holds for this supplier invoice, or None.

        APS450MI/LstInvBySupInv lists batches by payee, supplier and invoice number; the payee is the
        supplier (this connector never sets SPYN). Only a batch whose invoice status SUPA reached
        `m3_ap_recorded_status` counts: one left unvalidated by a lost answer is not an invoice yet.
        """
        try:
            batches = self.m3.execute(
                "APS450MI",
                "LstInvBySupInv",
                maxrecs=0,
                SPYN=invoice.supplier_id,
                SUNO=invoice.supplier_id,
                SINO=invoice.invoice_number,
                DIVI=invoice.division,
            )
        except M3TransactionError as exc:
            if exc.error_type == "ServerReturnedNOK" and "does not exist" in exc.target_message:
                return None
            raise
        for batch in batches:
            status = batch.get("SUPA", "")
            if status.isdigit() and int(status) >= self.ap_recorded_status:
                return batch["INBN"]
        return None

    def create_ap_invoice(self, invoice: NewAPInvoice) -> str:
        """APS450MI batch head + lines, validated by APS455MI; returns the batch number INBN.

        A validated batch for the same supplier invoice is reused, so a replay never books twice.
        """
        key = f"{invoice.division}/{invoice.supplier_id}/{invoice.invoice_number}/{invoice.invoice_date.year}"
        if self.ap_line_accounting != "derive":
            for index, line in enumerate(invoice.lines):
                for name in ("gl_account", "cost_centre"):
                    if getattr(line, name):
                        raise ValidationFailed(
                            key,
                            f"lines[{index}].{name}",
                            "APS450MI/AddLine has no accounting-dimension inputs; leave it empty, or set"
                            " m3_ap_line_accounting=derive to let M3's accounting rules code it",
                        )
        existing = self.find_ap_invoice(invoice)
        if existing:
            return existing
        batch = self._one(
            "APS450MI",
            "AddHead",
            DIVI=invoice.division,
            SUNO=invoice.supplier_id,
            IVDT=m3_date(invoice.invoice_date),
            SINO=invoice.invoice_number,
            CUCD=invoice.currency,
            CUAM=decimal_text(invoice.amount),
            DUDT=m3_date(invoice.due_date) if invoice.due_date else None,
        )["INBN"]
        for line in invoice.lines:
            self.m3.execute(
                "APS450MI",
                "AddLine",
                INBN=batch,
                DIVI=invoice.division,
                RDTP="8",  # cost line
                NLAM=decimal_text(line.amount),
                PUNO=line.po_number,
                PNLI=line.po_line,
            )
        self.m3.execute("APS455MI", "ValidByBatchNo", INBN=batch, DIVI=invoice.division)
        return batch

    def add_ar_payment(self, payment: ARPayment) -> str:
        """One ARS040MI batch per payment: AddBatchHead, AddBatchLine, ControlBatch; returns "PBID/TRNO".

        PBID and TRNO are required inputs chosen by the caller, derived here from the reference, and
        the reference's 15-character key goes in CKNO. A repeat after a lost answer therefore finds
        its head and line "already exist" and posts nothing twice.
        """
        batch, line = payment_batch(payment.reference, self.payment_batch_prefix)
        self._add_unless_exists(
            "AddBatchHead",
            PBID=batch,
            BOPE=self.batch_payment_type,
            DIVI=payment.division,
            ACDT=m3_date(payment.payment_date),
        )
        dimensions = {f"AIT{index}": value for index, value in enumerate(payment.dimensions[:7], start=1)}
        self._add_unless_exists(
            "AddBatchLine",
            PBID=batch,
            TRNO=line,
            DIVI=payment.division,
            CUNO=payment.customer_id,
            CINO=payment.invoice_number,
            INYR=payment.invoice_year,
            PYAM=decimal_text(payment.amount),
            CUCD=payment.currency,
            LPDT=m3_date(payment.payment_date),
            CKNO=payment_key(payment.reference),
            **dimensions,
        )
        self.m3.execute("ARS040MI", "ControlBatch", DIVI=payment.division, PBID=batch)
        return f"{batch}/{line}"

    def _add_unless_exists(self, transaction: str, **fields: Any) -> None:
        try:
            self.m3.execute("ARS040MI", transaction, **fields)
        except M3TransactionError as exc:
            if exc.error_type != "ServerReturnedNOK" or "already exists" not in exc.target_message:
                raise

    def find_ar_payment(self, reference: str) -> str | None:
        """The posting's id, read from the ledger (or its search index without EXPORTMI)."""
        postings = self.ar_payments(reference)
        return postings[0].id if postings else None

    def ar_payments(self, reference: str) -> list[PostedARPayment]:
        """Every FSLEDG payment transaction M3 holds for this reference (its key in the CKNO column).

        No MI transaction lists ARS040MI lines (the metadata has none), so this reads the ledger:
        EXPORTMI, or without it the search query `m3_ar_payment_search` (ARS200MI/SearchInvoices)
        and ARS200MI/GetInvoice per hit for the amount and currency.
        """
        batch, line = payment_batch(reference, self.payment_batch_prefix)
        rows: list[dict[str, str]] | None = None
        if self.exportmi:
            column = self.ar_reference_column
            columns = ("ESCINO", "ESCUAM", "ESCUCD", column)
            query = (
                f"{','.join(columns)} from FSLEDG"
                f" where {column}={m3_literal(payment_key(reference))} and ESTRCD={self.ar_payment_trcd}"
                " order by ESCINO"
            )
            try:
                rows = self.m3.export(query, columns, maxrecs=0)
            except M3TransactionError as exc:
                if not is_exportmi_refused(exc):
                    raise
                self.exportmi = False
        if rows is None:
            rows = self._ar_payments_searched(reference)
        return [
            PostedARPayment(
                id=f"{batch}/{line}",
                reference=reference,
                invoice_number=row["ESCINO"],
                amount=-to_decimal(row["ESCUAM"]),  # the ledger holds payments as credits
                currency=blank_to_none(row["ESCUCD"]),
            )
            for row in rows
        ]

    def _ar_payments_searched(self, reference: str) -> list[dict[str, str]]:
        hits = self._search(
            "ARS200MI",
            "SearchInvoices",
            "m3_ar_payment_search",
            trcd=self.ar_payment_trcd,
            key=payment_key(reference),
        )
        rows = []
        for hit in sorted(hits, key=lambda h: (h["CINO"], h["YEA4"], h["JRNO"], h["JSNO"])):
            if hit["TRCD"] != self.ar_payment_trcd:
                continue
            [posting] = self.m3.execute(
                "ARS200MI", "GetInvoice", YEA4=hit["YEA4"], JRNO=hit["JRNO"], JSNO=hit["JSNO"]
            )
            rows.append({"ESCINO": posting["CINO"], "ESCUAM": posting["CUAM"], "ESCUCD": posting["CUCD"]})
        return rows

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
        check_extension_key(invoice_key, extension)
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
