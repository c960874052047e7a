"""Recipient ("account") validation and its v1 / v2 representations (contract section 5).

Pure functions: the simulator owns storage, ids and ownership checks.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import FieldError

# v1 type name -> v2 type name (the versions spell them differently, contract 5.2).
V2_TYPE_NAMES = {"iban": "Iban", "sort_code": "SortCode", "aba": "Aba", "email": "Email"}
LEGAL_TYPES = ("PRIVATE", "BUSINESS")
# Address data is needed for these target currencies (contract 5.1).
ADDRESS_CURRENCIES = frozenset({"USD", "PHP", "THB", "TRY"})

_NAME_CHARS = re.compile(r"^[0-9A-Za-zÀ-ÖØ-öø-ÿ\-_()'*,.\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Lengths for the countries a sandbox user is likely to type; other countries only get 15..34.
_IBAN_LENGTHS = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27, "GB": 22,
    "HU": 28, "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "SE": 24,
}  # fmt: skip

# Keys every v1 ``details`` object carries, null unless the type uses them (contract 5.1).
_V1_DETAIL_KEYS = (
    "address", "email", "legalType", "accountNumber", "sortCode", "abartn", "accountType", "iban", "IBAN",
    "bic", "BIC", "bankCode", "swiftCode", "bankName", "city", "postCode",
)  # fmt: skip


@dataclass(frozen=True)
class RecipientFields:
    """A validated create request, normalised (upper-case IBAN, digits-only sort code...)."""

    profile_id: int
    currency: str
    type: str  # v1 name, lower case
    account_holder_name: str
    legal_type: str
    owned_by_customer: bool
    country: str | None
    details: dict[str, Any]


def validate_create(body: dict[str, Any]) -> tuple[RecipientFields | None, list[FieldError]]:
    """Check a ``POST /v1/accounts`` body; return the fields, or every problem found."""
    errors: list[FieldError] = []
    profile = body.get("profile")
    if not isinstance(profile, int) or isinstance(profile, bool):
        errors.append(FieldError("NOT_VALID", "Please specify the profile id.", "profile"))
    currency = body.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        errors.append(FieldError("NOT_VALID", "Please specify a valid currency.", "currency"))
    raw_type = body.get("type")
    # Matched case-insensitively: the official sample sends "ABA" (contract 5.1).
    account_type = raw_type.lower() if isinstance(raw_type, str) else None
    if account_type not in V2_TYPE_NAMES:
        errors.append(
            FieldError("NOT_VALID", f"Unsupported recipient type: {raw_type!r}.", "type", [raw_type])
        )
    details = body.get("details")
    if not isinstance(details, dict):
        errors.append(FieldError("NOT_VALID", "Please specify the account details.", "details"))
        details = {}
    legal_type = details.get("legalType")
    if legal_type not in LEGAL_TYPES:
        errors.append(FieldError("NOT_VALID", "legalType must be PRIVATE or BUSINESS.", "details.legalType"))
    name = body.get("accountHolderName")
    errors += _check_holder_name(name, legal_type)
    owned = body.get("ownedByCustomer", False)
    if not isinstance(owned, bool):
        errors.append(FieldError("NOT_VALID", "ownedByCustomer must be true or false.", "ownedByCustomer"))

    country: str | None = None
    normalised: dict[str, Any] = {"legalType": legal_type}
    if account_type == "iban":
        country, problems = _check_iban(details, normalised)
        errors += problems
    elif account_type == "sort_code":
        country = "GB"
        errors += _check_sort_code(details, normalised, currency)
    elif account_type == "aba":
        country = "US"
        errors += _check_aba(details, normalised, currency)
    elif account_type == "email":
        email = details.get("email")
        if not isinstance(email, str) or not _EMAIL.match(email):
            errors.append(FieldError("NOT_VALID", "Please specify a valid email address.", "details.email"))
        normalised["email"] = email
    if account_type != "aba" and currency in ADDRESS_CURRENCIES:
        address, problems = _check_address(details.get("address"))
        errors += problems
        normalised["address"] = address
    if errors:
        return None, errors
    fields = RecipientFields(
        profile_id=profile,
        currency=currency,
        type=account_type,
        account_holder_name=" ".join(name.split()),
        legal_type=legal_type,
        owned_by_customer=owned,
        country=country,
        details=normalised,
    )
    return fields, []


def _check_holder_name(name: Any, legal_type: Any) -> list[FieldError]:
    path = "accountHolderName"
    if not isinstance(name, str) or not name.strip():
        return [FieldError("NOT_VALID", "Please specify the account holder name.", path)]
    if not _NAME_CHARS.match(name):
        return [
            FieldError("NOT_VALID", "The account holder name contains characters we cannot accept.", path)
        ]
    if legal_type == "BUSINESS":
        return []  # a business name may be a single word, digits allowed
    parts = name.split()
    if len(parts) < 2 or any(len(part) < 2 for part in parts):
        return [FieldError("NOT_VALID", "Please enter the recipient's first and last name.", path)]
    if any(char.isdigit() for char in name):
        return [FieldError("NOT_VALID", "A person's name cannot contain digits.", path)]
    return []


def _check_iban(details: dict[str, Any], out: dict[str, Any]) -> tuple[str | None, list[FieldError]]:
    raw = details.get("IBAN", details.get("iban"))
    iban = re.sub(r"\s", "", raw).upper() if isinstance(raw, str) else ""
    if not iban_is_valid(iban):
        return None, [FieldError("NOT_VALID", "Please specify a valid IBAN.", "details.IBAN", [raw])]
    out["IBAN"] = out["iban"] = iban
    bic = details.get("BIC", details.get("bic"))
    if bic is not None:
        out["BIC"] = out["bic"] = str(bic).upper()
    return iban[:2], []


def iban_is_valid(iban: str) -> bool:
    """Country letters, known length, and the ISO 13616 mod-97 checksum."""
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", iban):
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return int(digits) % 97 == 1


def _check_sort_code(details: dict[str, Any], out: dict[str, Any], currency: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    if currency != "GBP":
        errors.append(FieldError("NOT_VALID", "sort_code recipients must be in GBP.", "currency", [currency]))
    sort_code = re.sub(r"[\s-]", "", str(details.get("sortCode") or ""))
    if not re.fullmatch(r"[0-9]{6}", sort_code):
        errors.append(FieldError("NOT_VALID", "Please specify a valid sort code.", "details.sortCode"))
    account_number = str(details.get("accountNumber") or "").strip()
    if not re.fullmatch(r"[0-9]{8}", account_number):
        errors.append(
            FieldError("NOT_VALID", "Please specify a valid account number.", "details.accountNumber")
        )
    out.update(sortCode=sort_code, accountNumber=account_number)
    return errors


def aba_routing_is_valid(routing: str) -> bool:
    """Nine digits with the ABA weighted checksum (3, 7, 1)."""
    if not re.fullmatch(r"[0-9]{9}", routing):
        return False
    digits = [int(char) for char in routing]
    total = sum(weight * digit for weight, digit in zip([3, 7, 1] * 3, digits, strict=True))
    return total % 10 == 0


def _check_aba(details: dict[str, Any], out: dict[str, Any], currency: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    if currency != "USD":
        errors.append(FieldError("NOT_VALID", "aba recipients must be in USD.", "currency", [currency]))
    routing = str(details.get("abartn") or "").strip()
    if not aba_routing_is_valid(routing):
        errors.append(FieldError("NOT_VALID", "Please specify a valid ACH routing number.", "details.abartn"))
    account_number = str(details.get("accountNumber") or "").strip()
    if not re.fullmatch(r"[0-9]{4,17}", account_number):
        errors.append(
            FieldError("NOT_VALID", "Please specify a valid account number.", "details.accountNumber")
        )
    account_type = details.get("accountType")
    if account_type not in ("CHECKING", "SAVINGS"):
        errors.append(
            FieldError("NOT_VALID", "accountType must be CHECKING or SAVINGS.", "details.accountType")
        )
    address, problems = _check_address(details.get("address"))
    errors += problems
    out.update(abartn=routing, accountNumber=account_number, accountType=account_type, address=address)
    return errors


def _check_address(address: Any) -> tuple[dict[str, Any] | None, list[FieldError]]:
    if not isinstance(address, dict):
        return None, [FieldError("NOT_VALID", "Please specify the recipient's address.", "details.address")]
    country = address.get("country", address.get("countryCode"))
    normalised = {
        "country": country,
        "countryCode": country,
        "firstLine": address.get("firstLine"),
        "city": address.get("city"),
        "postCode": address.get("postCode"),
        "state": address.get("state"),
    }
    errors = [
        FieldError("NOT_VALID", f"Please specify the address {key}.", f"details.address.{key}")
        for key in ("country", "firstLine", "city", "postCode")
        if not isinstance(normalised[key], str) or not normalised[key].strip()
    ]
    if country == "US" and not normalised["state"]:
        errors.append(FieldError("NOT_VALID", "Please specify the state.", "details.address.state"))
    return normalised, errors


@dataclass
class Recipient:
    """A stored recipient. Immutable apart from ``active`` (Wise has no update endpoint)."""

    id: int
    user_id: int
    profile_id: int
    currency: str
    type: str
    account_holder_name: str
    legal_type: str
    owned_by_customer: bool
    country: str | None
    details: dict[str, Any]
    active: bool = True


def v1_json(recipient: Recipient, business_profile: bool) -> dict[str, Any]:
    """The ``/v1/accounts`` shape."""
    details = {key: recipient.details.get(key) for key in _V1_DETAIL_KEYS}
    return {
        "id": recipient.id,
        "business": recipient.profile_id if business_profile else None,
        "profile": recipient.profile_id,
        "accountHolderName": recipient.account_holder_name,
        "currency": recipient.currency,
        "country": recipient.country,
        "type": recipient.type,
        "details": details,
        "user": recipient.user_id,
        "active": recipient.active,
        "ownedByCustomer": recipient.owned_by_customer,
    }


def v2_json(recipient: Recipient) -> dict[str, Any]:
    """The ``/v2/accounts`` shape: v2 type names, a structured name, a summary and a content hash."""
    details = {key: value for key, value in recipient.details.items() if value is not None}
    details.pop("legalType", None)
    person = recipient.legal_type == "PRIVATE"
    parts = recipient.account_holder_name.split()
    name = {
        "fullName": recipient.account_holder_name,
        "givenName": parts[0] if person else None,
        "familyName": parts[-1] if person else None,
        "middleName": (" ".join(parts[1:-1]) or None) if person else None,
        "patronymicName": None,
        "cannotHavePatronymicName": None,
    }
    summary, long_summary, display = _summaries(recipient)
    hashed = json.dumps({"name": recipient.account_holder_name, "details": details}, sort_keys=True)
    return {
        "id": recipient.id,
        "creatorId": recipient.user_id,
        "profileId": recipient.profile_id,
        "name": name,
        "currency": recipient.currency,
        "country": recipient.country,
        "type": V2_TYPE_NAMES[recipient.type],
        "legalEntityType": "PERSON" if person else "BUSINESS",
        "active": recipient.active,
        "details": {"reference": None, **details},
        "commonFieldMap": _common_field_map(recipient.type),
        "hash": hashlib.sha256(hashed.encode()).hexdigest(),
        "accountSummary": summary,
        "longAccountSummary": long_summary,
        "displayFields": display,
        "isInternal": False,
        "ownedByCustomer": recipient.owned_by_customer,
    }


def _common_field_map(account_type: str) -> dict[str, str]:
    return {
        "iban": {"accountNumberField": "IBAN"},
        "sort_code": {"accountNumberField": "accountNumber", "bankCodeField": "sortCode"},
        "aba": {"accountNumberField": "accountNumber", "bankCodeField": "abartn"},
        "email": {},
    }[account_type]


def _summaries(recipient: Recipient) -> tuple[str, str, list[dict[str, str]]]:
    details, currency = recipient.details, recipient.currency
    if recipient.type == "iban":
        iban = details["IBAN"]
        grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return grouped, f"{currency} account ending in {iban[-4:]}", [_field("IBAN", "IBAN", grouped)]
    if recipient.type == "sort_code":
        code, number = details["sortCode"], details["accountNumber"]
        dashed = f"{code[:2]}-{code[2:4]}-{code[4:]}"
        return (
            f"({dashed}) {number}",
            f"{currency} account ending in {number[-4:]}",
            [_field("sortCode", "UK sort code", dashed), _field("accountNumber", "Account number", number)],
        )
    if recipient.type == "aba":
        routing, number = details["abartn"], details["accountNumber"]
        return (
            number,
            f"{currency} account ending in {number[-4:]}",
            [
                _field("abartn", "ACH routing number", routing),
                _field("accountNumber", "Account number", number),
            ],
        )
    email = details["email"]
    return email, f"{currency} account with email {email}", [_field("email", "Email", email)]


def _field(key: str, label: str, value: str) -> dict[str, str]:
    return {"key": key, "label": label, "value": value}
