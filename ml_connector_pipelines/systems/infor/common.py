"""What the M3 and SyteLine adapters share: row mapping that names the bad field, bank-account
building, invoice keys, extension-timestamp ordering and the base class holding the HTTP client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Literal, Self, TypeVar

from pydantic import ValidationError

from ...core.http import HttpClient
from .auth import IonApiAuth
from .models import BankAccount, InvoiceExtension, Product

InvoiceKind = Literal["ap", "ar"]
BankAccountKind = Literal["iban", "sort_code", "aba", "email"]
ACCOUNT_TYPES: dict[str, Literal["CHECKING", "SAVINGS"]] = {"CHECKING": "CHECKING", "SAVINGS": "SAVINGS"}
T = TypeVar("T")
R = TypeVar("R", bound=Mapping[str, Any])

DEFAULT_PAGE_SIZE = 500


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def blank_to_none(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def to_decimal(value: Any) -> Decimal:
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


def read_field(row: Mapping[str, Any], name: str, convert: Callable[[Any], T], expected: str) -> T:
    """`convert(row[name])`; a value it cannot take raises BadField naming the column."""
    value = row.get(name)
    try:
        return convert(value)
    except (ValueError, ArithmeticError, LookupError, TypeError, AttributeError):
        raise BadField(name, f"{value!r} is not {expected}") from None


def decimal_text(value: Decimal) -> str:
    return format(value, "f")


def parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_newer(candidate: str, current: str | None) -> bool:
    """True when an extension stamped `candidate` may overwrite one stamped `current`.

    Events can arrive late or twice; only a strictly newer event may change the stored status.
    """
    if not current:
        return True
    try:
        current_at = parse_timestamp(current)
    except ValueError:
        return True  # an unreadable stored stamp cannot prove the new event is stale
    return parse_timestamp(candidate) > current_at


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


def make_bank_account(
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


class AdapterBase:
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


def check_extension_key(invoice_key: str, extension: InvoiceExtension) -> None:
    if extension.invoice_key != invoice_key:
        raise ValueError(f"extension is for {extension.invoice_key!r}, not {invoice_key!r}")
