"""Infor -> Wise field mapping. Pure functions: no I/O, no Dagster.

Bad source data is caught here and raised as ValidationFailed, so the record is flagged with a
clear reason before anything is sent to Wise (a payment to a mistyped account is hard to undo).

Recipient details are built from Wise's account requirements for the payout currency (wise.md §5.4):
the first recipient type offered whose fields the supplier's bank data fills is used, and every value
is checked against its field (required, pattern, length, allowed values) before the call. A flag names
the Infor field and the requirement's key (e.g. ``sort_code: Wise requirement sortCode ...``).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pycountry
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from ml_connector_pipelines.core.errors import TargetRejected, ValidationFailed
from ml_connector_pipelines.systems.infor.models import APInvoice, BankAccount, Supplier
from ml_connector_pipelines.systems.wise.models import AccountRequirement, Recipient

# wise.md §5.1: characters Wise accepts in accountHolderName.
_HOLDER_NAME = re.compile(r"[0-9A-Za-zÀ-ÖØ-öø-ÿ\-_()'*,.\s]+")
# Namespace for transfer idempotency keys; changing it would let a replay pay an invoice twice.
_TRANSFER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://ml-connector/wise/transfers")

# The account requirements for paying out in a currency (WiseClient.account_requirements).
RequirementsLookup = Callable[[str], Sequence[AccountRequirement]]

# Wise details key -> the BankAccount fields that can fill it, first non-empty wins. bank_code,
# branch_code and clearing_number are the local bank identifiers (BSB, institution / transit number,
# IFSC, Japanese bank / branch code, Swedish clearing number); a model without them reads as missing.
_SOURCES: dict[str, tuple[str, ...]] = {
    "accountHolderName": ("account_holder",),  # listed as a field by requirements v1.1
    "IBAN": ("iban",),
    "BIC": ("bic",),
    "swiftCode": ("bic",),
    "sortCode": ("sort_code",),
    "abartn": ("aba_routing",),
    "accountNumber": ("account_number", "iban"),  # a swift_code recipient takes the IBAN as its number
    "accountType": ("account_type",),
    "email": ("email",),
    "bsbCode": ("bank_code",),
    "bankCode": ("bank_code",),
    "institutionNumber": ("bank_code",),
    "ifscCode": ("bank_code",),
    "branchCode": ("branch_code",),
    "transitNumber": ("branch_code",),
    "clearingNumber": ("clearing_number",),
    "clabe": ("account_number",),
    "address.country": ("country",),
    "address.city": ("city",),
    "address.postCode": ("post_code",),
    "address.firstLine": ("address_line",),
    "address.state": ("state",),
}
# Bank numbers are sent without the spaces and dashes people type; names and addresses as they are.
_FREE_TEXT = {"email", "address.city", "address.postCode", "address.firstLine", "accountHolderName"}
# Recipient types that fit each kind of Infor bank account, best first.
_TYPES_FOR_KIND = {
    "iban": ("iban", "swift_code"),
    "sort_code": ("sort_code",),
    "aba": ("aba",),
    "email": ("email",),
}
_NOT_BANK_TYPES = {"email", "interac"}

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


def _aba_checksum_ok(routing: str) -> bool:
    weights = (3, 7, 1) * 3
    return sum(int(digit) * weight for digit, weight in zip(routing, weights, strict=True)) % 10 == 0


def _bank_values(record_id: str, account: BankAccount, fallback_country: str | None) -> dict[str, str]:
    """Every value the account can give Wise, by Wise details key, normalised. What a pattern cannot
    see (IBAN and ABA check digits, a real BIC, country and state codes) is checked here."""
    raw = account.model_dump()
    values: dict[str, str] = {}
    for key, fields in _SOURCES.items():
        found = next((str(raw[name]).strip() for name in fields if raw.get(name)), "")
        if found:
            values[key] = " ".join(found.split()) if key in _FREE_TEXT else _compact(found)
    if "IBAN" in values:
        try:
            values["IBAN"] = IBAN(values["IBAN"]).compact
        except SchwiftyException as exc:
            raise ValidationFailed(record_id, "iban", f"invalid IBAN: {exc} (Wise requirement IBAN)") from exc
    if "BIC" in values:
        try:
            values["BIC"] = values["swiftCode"] = BIC(values["BIC"]).compact
        except SchwiftyException as exc:
            raise ValidationFailed(record_id, "bic", f"invalid BIC: {exc} (Wise requirement BIC)") from exc
    routing = values.get("abartn")
    if routing is not None and not (len(routing) == 9 and routing.isdigit() and _aba_checksum_ok(routing)):
        raise ValidationFailed(
            record_id,
            "aba_routing",
            "not a 9-digit ABA routing number with a valid checksum (Wise requirement abartn)",
        )
    if account.country or fallback_country:
        country = _country(record_id, "country", account.country or fallback_country)
        values["address.country"] = country
        if country in ("US", "CA") and "address.state" in values:
            if pycountry.subdivisions.get(code=f"{country}-{values['address.state']}") is None:
                raise ValidationFailed(record_id, "state", f"{account.state!r} is not a {country} state code")
    return values


def _infor_field(key: str) -> str:
    """The Infor field a Wise key is read from, for the flag; the Wise key itself if there is none."""
    fields = _SOURCES.get(key)
    return fields[0] if fields else key


def _allowed(wanted: str, options: list[str]) -> str:
    """An allowed value in Wise's spelling ("Saving" for SAVINGS), else the value as it is."""
    for option in options:
        if option.upper().rstrip("S") == wanted.upper().rstrip("S"):
            return option
    return wanted


class _Unfillable(Exception):
    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem


def _fill(requirement: AccountRequirement, values: dict[str, str]) -> dict[str, Any]:
    """The ``details`` for one recipient type, or _Unfillable naming the first field at fault."""
    details: dict[str, Any] = {}
    address: dict[str, str] = {}
    for field in requirement.fields:
        # Suppliers are businesses; every other value comes from the Infor bank account.
        value = "BUSINESS" if field.key == "legalType" else values.get(field.key)
        if value and field.values_allowed:
            value = _allowed(value, [allowed.key for allowed in field.values_allowed])
        problem = field.problem(value)
        if problem is not None:
            raise _Unfillable(field.key, problem)
        if not value or field.key == "accountHolderName":
            continue  # the name is a top-level field of the create body
        if field.key.startswith("address."):
            address[field.key.split(".", 1)[1]] = value
        else:
            details[field.key] = value
    # A complete address on file is sent even where Wise does not ask for one (it never hurts).
    known = {key.split(".", 1)[1]: value for key, value in values.items() if key.startswith("address.")}
    if not address and all(known.get(key) for key in ("country", "city", "postCode", "firstLine")):
        address = known
    if address.get("country") in ("US", "CA"):
        # Wise reveals the state field once the country is set (refreshRequirementsOnChange, §5.4).
        if not values.get("address.state"):
            raise _Unfillable("address.state", f"is required for an address in {address['country']}")
        address["state"] = values["address.state"]
    if address:
        details["address"] = address
    return details


def recipient_payload(
    supplier: Supplier, profile_id: int, requirements: RequirementsLookup
) -> dict[str, Any]:
    """The POST /v1/accounts body for a supplier's bank account (wise.md §5.1, §5.4).

    `requirements` gives Wise's account requirements for a payout currency; it is asked only after
    the supplier's own data passed its checks."""
    record_id = supplier.supplier_id
    account = supplier.bank_account
    if account is None:
        raise ValidationFailed(record_id, "bank_account", "supplier has no bank details")
    currency = _currency(record_id, "currency", account.currency)
    holder = _holder_name(record_id, account.account_holder)
    values = _bank_values(record_id, account, supplier.country)
    try:
        offered = list(requirements(currency))
    except TargetRejected as exc:
        raise ValidationFailed(record_id, "currency", f"Wise has no recipients in {currency}: {exc}") from exc

    kind_types = _TYPES_FOR_KIND.get(account.kind)
    if kind_types is None:
        # A kind without a fixed type (local bank details): any bank type the data fills.
        candidates = [r for r in offered if r.type not in _NOT_BANK_TYPES]
    else:
        # Only the types of the account's own kind: never pay an IBAN left over on a sort-code account.
        candidates = [r for kind in kind_types for r in offered if r.type == kind]
    failures: list[tuple[AccountRequirement, _Unfillable]] = []
    for requirement in candidates:
        try:
            details = _fill(requirement, values)
        except _Unfillable as exc:
            failures.append((requirement, exc))
            continue
        return {
            "profile": profile_id,
            "currency": currency,
            "type": requirement.type,
            "accountHolderName": holder,
            "ownedByCustomer": False,
            "details": {"legalType": "BUSINESS", **details},
        }
    offered_types = ", ".join(r.type for r in offered) or "none"
    if not candidates:
        raise ValidationFailed(
            record_id,
            "currency",
            f"Wise offers no {account.kind} recipient in {currency} (offered: {offered_types})",
        )
    requirement, failure = failures[0]
    raise ValidationFailed(
        record_id,
        _infor_field(failure.key),
        f"Wise requirement {failure.key} of {requirement.type} recipients in {currency} {failure.problem}",
    )


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
            if value is None and field in _LATER_FIELDS:
                continue  # absent as before they existed: adding them must not recreate recipients
            if isinstance(value, str):
                compact_field = field in (
                    "iban", "bic", "sort_code", "account_number", "aba_routing", "bank_code", "branch_code",
                    "clearing_number",
                )  # fmt: skip
                value = _compact(value) if compact_field else " ".join(value.split())
            canonical[field] = value
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


# BankAccount fields added after digests were first stored.
_LATER_FIELDS = frozenset({"bank_code", "branch_code", "clearing_number"})

# The details that identify a payee account, per recipient type (v1 and v2 use the same keys).
_IDENTIFYING_DETAILS = {
    "iban": ("IBAN",),
    "sortcode": ("sortCode", "accountNumber"),
    "aba": ("abartn", "accountNumber"),
    "email": ("email",),
    "swiftcode": ("swiftCode", "accountNumber"),
    "australian": ("bsbCode", "accountNumber"),
    "canadian": ("institutionNumber", "transitNumber", "accountNumber"),
    "japanese": ("bankCode", "branchCode", "accountNumber"),
    "newzealand": ("accountNumber",),
    "singapore": ("bankCode", "accountNumber"),
    "hongkong": ("bankCode", "accountNumber"),
    "indian": ("ifscCode", "accountNumber"),
    "southafrica": ("swiftCode", "accountNumber"),
    "mexican": ("clabe",),
    "swedenlocal": ("clearingNumber", "accountNumber"),
    "polish": ("accountNumber",),
    "hungarian": ("accountNumber",),
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
