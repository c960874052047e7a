"""Infor -> Wise field mapping. Pure functions: no I/O, no Dagster.

Bad source data is caught here and raised as ValidationFailed, so the record is flagged with a
clear reason before anything is sent to Wise (a payment to a mistyped account is hard to undo).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pycountry
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from ml_connector_pipelines.core.errors import ValidationFailed
from ml_connector_pipelines.systems.infor.models import APInvoice, BankAccount, Supplier
from ml_connector_pipelines.systems.wise.models import Recipient

# wise.md §5.1: characters Wise accepts in accountHolderName.
_HOLDER_NAME = re.compile(r"[0-9A-Za-zÀ-ÖØ-öø-ÿ\-_()'*,.\s]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# Wise needs a postal address for these target currencies (wise.md §5.1).
_ADDRESS_REQUIRED_CURRENCIES = {"USD", "PHP", "THB", "TRY"}
# Namespace for transfer idempotency keys; changing it would let a replay pay an invoice twice.
_TRANSFER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://ml-connector/wise/transfers")

# Wise transfer state (wise.md §6.4) -> payout status written back to the Infor invoice.
PAYOUT_STATUS_BY_STATE = {
    "incoming_payment_waiting": "awaiting_funds",
    "incoming_payment_initiated": "awaiting_funds",
    "waiting_recipient_input_to_proceed": "awaiting_payee",
    "processing": "processing",
    "funds_converted": "processing",
    "outgoing_payment_sent": "paid",
    "bounced_back": "bounced",
    "cancelled": "cancelled",
    "funds_refunded": "refunded",
    "charged_back": "charged_back",
}


def _compact(value: str) -> str:
    """Bank numbers as people type them ("12-34-56", "GB33 BUKB ...") reduced to their characters."""
    return re.sub(r"[\s\-]", "", value).upper()


def _currency(record_id: str, field: str, code: str | None) -> str:
    if not code or pycountry.currencies.get(alpha_3=code.strip().upper()) is None:
        raise ValidationFailed(record_id, field, f"{code!r} is not an ISO 4217 currency code")
    return code.strip().upper()


def _country(record_id: str, field: str, code: str | None) -> str:
    if not code or len(code.strip()) != 2 or pycountry.countries.get(alpha_2=code.strip().upper()) is None:
        raise ValidationFailed(record_id, field, f"{code!r} is not an ISO 3166 alpha-2 country code")
    return code.strip().upper()


def _holder_name(record_id: str, name: str) -> str:
    # Suppliers are sent as BUSINESS recipients, for which Wise allows a single word.
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValidationFailed(record_id, "account_holder", "account holder name is empty")
    if not _HOLDER_NAME.fullmatch(cleaned):
        raise ValidationFailed(record_id, "account_holder", "account holder name has characters Wise rejects")
    if not any(char.isalpha() for char in cleaned):
        raise ValidationFailed(record_id, "account_holder", "account holder name has no letters")
    return cleaned


def _digits(record_id: str, field: str, value: str | None, lengths: range, what: str) -> str:
    compact = _compact(value or "")
    if not compact.isdigit() or len(compact) not in lengths:
        raise ValidationFailed(record_id, field, f"{what} must be {_describe(lengths)} digits")
    return compact


def _describe(lengths: range) -> str:
    return str(lengths.start) if len(lengths) == 1 else f"{lengths.start} to {lengths.stop - 1}"


def _aba_routing(record_id: str, value: str | None) -> str:
    routing = _digits(record_id, "aba_routing", value, range(9, 10), "ABA routing number")
    weights = (3, 7, 1) * 3
    if sum(int(digit) * weight for digit, weight in zip(routing, weights, strict=True)) % 10:
        raise ValidationFailed(record_id, "aba_routing", "ABA routing number fails its checksum")
    return routing


def _address(
    record_id: str, account: BankAccount, fallback_country: str | None, required: bool
) -> dict[str, str] | None:
    """The payee address; None when Wise does not need one and the one on file is incomplete
    (an Irish supplier without a post code is still payable in EUR)."""
    country = _country(record_id, "country", account.country or fallback_country)
    address = {
        "country": country,
        "city": (account.city or "").strip(),
        "postCode": (account.post_code or "").strip(),
        "firstLine": (account.address_line or "").strip(),
    }
    for field, key in (("city", "city"), ("post_code", "postCode"), ("address_line", "firstLine")):
        if not address[key]:
            if not required:
                return None
            raise ValidationFailed(record_id, field, "Wise needs the payee's address for this currency")
    if country in ("US", "CA"):
        state = (account.state or "").strip().upper()
        if pycountry.subdivisions.get(code=f"{country}-{state}") is None:
            raise ValidationFailed(record_id, "state", f"{account.state!r} is not a {country} state code")
        address["state"] = state
    return address


def _has_address(account: BankAccount) -> bool:
    return bool(account.city or account.post_code or account.address_line)


def recipient_payload(supplier: Supplier, profile_id: int) -> dict[str, Any]:
    """The POST /v1/accounts body for a supplier's bank account (wise.md §5.1)."""
    record_id = supplier.supplier_id
    account = supplier.bank_account
    if account is None:
        raise ValidationFailed(record_id, "bank_account", "supplier has no bank details")
    currency = _currency(record_id, "currency", account.currency)
    details: dict[str, Any] = {"legalType": "BUSINESS"}

    if account.kind == "iban":
        try:
            iban = IBAN(account.iban or "")
        except SchwiftyException as exc:
            raise ValidationFailed(record_id, "iban", f"invalid IBAN: {exc}") from exc
        details["IBAN"] = iban.compact
        if account.bic:
            try:
                details["BIC"] = BIC(_compact(account.bic)).compact
            except SchwiftyException as exc:
                raise ValidationFailed(record_id, "bic", f"invalid BIC: {exc}") from exc
    elif account.kind == "sort_code":
        if currency != "GBP":
            raise ValidationFailed(record_id, "currency", "UK sort code accounts are paid in GBP")
        details["sortCode"] = _digits(record_id, "sort_code", account.sort_code, range(6, 7), "sort code")
        details["accountNumber"] = _digits(
            record_id, "account_number", account.account_number, range(8, 9), "UK account number"
        )
    elif account.kind == "aba":
        if currency != "USD":
            raise ValidationFailed(record_id, "currency", "ABA (US) accounts are paid in USD")
        details["abartn"] = _aba_routing(record_id, account.aba_routing)
        details["accountNumber"] = _digits(
            record_id, "account_number", account.account_number, range(4, 18), "US account number"
        )
        if account.account_type is None:
            raise ValidationFailed(record_id, "account_type", "US accounts need CHECKING or SAVINGS")
        details["accountType"] = account.account_type
    else:  # email
        email = (account.email or "").strip()
        if not _EMAIL.fullmatch(email):
            raise ValidationFailed(record_id, "email", f"{account.email!r} is not an email address")
        details["email"] = email

    # Send a known, complete address (it never hurts); require one where Wise does.
    address_required = currency in _ADDRESS_REQUIRED_CURRENCIES or account.kind == "aba"
    if address_required or _has_address(account):
        address = _address(record_id, account, supplier.country, address_required)
        if address is not None:
            details["address"] = address

    return {
        "profile": profile_id,
        "currency": currency,
        "type": account.kind,
        "accountHolderName": _holder_name(record_id, account.account_holder),
        "ownedByCustomer": False,
        "details": details,
    }


def bank_details_hash(supplier: Supplier) -> str:
    """A digest of everything that makes the Wise recipient. Wise recipients are immutable, so a
    new digest means delete + recreate; formatting-only changes ("12-34-56" vs "123456") do not count.
    """
    account = supplier.bank_account
    if account is None:
        canonical: dict[str, Any] | None = None
    else:
        canonical = {}
        for field, value in account.model_dump(mode="json").items():
            if isinstance(value, str):
                compact_field = field in ("iban", "bic", "sort_code", "account_number", "aba_routing")
                value = _compact(value) if compact_field else " ".join(value.split())
            canonical[field] = value
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


# The details that identify a payee account, per recipient type (v1 and v2 use the same keys).
_IDENTIFYING_DETAILS = {
    "iban": ("IBAN",),
    "sortcode": ("sortCode", "accountNumber"),
    "aba": ("abartn", "accountNumber"),
    "email": ("email",),
}


def _identity(kind: str, currency: str, holder: str | None, details: dict[str, Any]) -> tuple[str, ...]:
    # v1 spells the type "sort_code", v2 "SortCode": compare them without case or underscores.
    kind = kind.replace("_", "").lower()
    values = [
        _compact(str(details.get(key) or details.get(key.lower()) or ""))
        for key in _IDENTIFYING_DETAILS.get(kind, ())
    ]
    return (kind, currency.upper(), " ".join((holder or "").split()).upper(), *values)


def recipient_identity(payload: dict[str, Any]) -> tuple[str, ...]:
    """What makes a recipient the same payee, from our POST /v1/accounts body."""
    return _identity(payload["type"], payload["currency"], payload["accountHolderName"], payload["details"])


def existing_recipient_identity(recipient: Recipient) -> tuple[str, ...]:
    """The same identity read back from Wise (v1 or v2 representation), to find a recipient whose
    create answer was lost."""
    return _identity(recipient.type, recipient.currency, recipient.account_holder_name, recipient.details)


def quote_request(invoice: APInvoice, source_currency: str) -> dict[str, Any]:
    """Keyword arguments for WiseClient.create_quote: pay the invoice amount in its own currency."""
    record_id = invoice.invoice_key
    if invoice.status != "open":
        raise ValidationFailed(
            record_id, "status", f"invoice is {invoice.status}, only open invoices are paid"
        )
    if not invoice.amount.is_finite() or invoice.amount <= Decimal(0):
        raise ValidationFailed(record_id, "amount", f"amount {invoice.amount} is not a positive number")
    return {
        "source_currency": _currency(record_id, "source_currency", source_currency),
        "target_currency": _currency(record_id, "currency", invoice.currency),
        "target_amount": invoice.amount,
    }


def transfer_customer_transaction_id(tenant: str, invoice_key: str) -> str:
    """Wise's idempotency key for paying one invoice: the same on every run and every replay."""
    return str(uuid.uuid5(_TRANSFER_NAMESPACE, f"{tenant}\n{invoice_key}"))


def payout_status_for(state: str) -> str:
    """The payout status written back to Infor; a state Wise adds later shows as "unknown"."""
    return PAYOUT_STATUS_BY_STATE.get(state.lower(), "unknown")
