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
from .requirements import ADDRESS_KEYS, CURRENCY_TYPES, TYPES, check_details, fields_for, v2_type_name

LEGAL_TYPES = ("PRIVATE", "BUSINESS")

_NAME_CHARS = re.compile(r"^[0-9A-Za-zÀ-ÖØ-öø-ÿ\-_()'*,.\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Lengths for the countries a sandbox user is likely to type; other countries only get 15..34.
_IBAN_LENGTHS = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27, "GB": 22,
    "HU": 28, "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "SE": 24,
}  # fmt: skip
# The bank's country for the local (non-IBAN, non-SWIFT) types.
_TYPE_COUNTRIES = {
    "sort_code": "GB", "aba": "US", "australian": "AU", "canadian": "CA", "japanese": "JP",
    "newzealand": "NZ", "singapore": "SG", "hongkong": "HK", "indian": "IN", "southafrica": "ZA",
    "mexican": "MX", "sweden_local": "SE", "polish": "PL", "hungarian": "HU",
}  # fmt: skip

# Keys every v1 ``details`` object carries, null unless the type uses them (S7 example responses).
_V1_DETAIL_KEYS = (
    "address", "email", "legalType", "accountNumber", "sortCode", "abartn", "accountType", "bankgiroNumber",
    "ifscCode", "bsbCode", "institutionNumber", "transitNumber", "phoneNumber", "bankCode", "russiaRegion",
    "routingNumber", "branchCode", "cpf", "cardNumber", "idType", "idNumber", "idCountryIso3", "idValidFrom",
    "idValidTo", "clabe", "swiftCode", "dateOfBirth", "clearingNumber", "bankName", "branchName",
    "businessNumber", "province", "city", "rut", "token", "cnpj", "payinReference", "pspReference", "orderId",
    "idDocumentType", "idDocumentNumber", "targetProfile", "taxId", "iban", "bic", "IBAN", "BIC",
    "interacAccount",
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
    """Check a ``POST /v1/accounts`` body against the account requirements of its currency; return the
    fields, or every problem found."""
    errors: list[FieldError] = []
    profile = body.get("profile")
    if not isinstance(profile, int) or isinstance(profile, bool):
        errors.append(FieldError("NOT_VALID", "Please specify the profile id.", "profile"))
    currency = body.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        errors.append(FieldError("NOT_VALID", "Please specify a valid currency.", "currency"))
    elif currency not in CURRENCY_TYPES:
        errors.append(
            FieldError(
                "error.route.not.supported", f"We don't pay out in {currency}.", "currency", [currency]
            )
        )
    raw_type = body.get("type")
    # Matched case-insensitively: the official sample sends "ABA" (contract 5.1).
    account_type = raw_type.lower() if isinstance(raw_type, str) else None
    if account_type not in TYPES:
        errors.append(
            FieldError("NOT_VALID", f"Unsupported recipient type: {raw_type!r}.", "type", [raw_type])
        )
    elif currency in CURRENCY_TYPES and account_type not in CURRENCY_TYPES[currency]:
        offered = ", ".join(CURRENCY_TYPES[currency])
        message = f"{account_type} recipients are not available in {currency} (offered: {offered})."
        errors.append(FieldError("NOT_VALID", message, "type", [raw_type]))
        account_type = None  # its details cannot be checked against a type the currency lacks
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
    normalised: dict[str, Any] = {}
    if account_type in TYPES and currency in CURRENCY_TYPES:
        problems = check_details(account_type, currency, body, details)
        errors += problems
        if not problems:
            country, semantic = _check_semantics(account_type, details)
            errors += semantic
        normalised = _normalise(details)
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


def _check_semantics(account_type: str, details: dict[str, Any]) -> tuple[str | None, list[FieldError]]:
    """What a pattern cannot see: check digits, and a state for US addresses. Returns the bank country."""
    errors: list[FieldError] = []
    country = _TYPE_COUNTRIES.get(account_type)
    if account_type == "iban":
        country = details["IBAN"][:2]
        if not iban_is_valid(details["IBAN"]):
            errors.append(
                FieldError("NOT_VALID", "Please specify a valid IBAN.", "details.IBAN", [details["IBAN"]])
            )
    elif account_type == "swift_code":
        country = details["swiftCode"][4:6]
    elif account_type == "aba" and not aba_routing_is_valid(details["abartn"]):
        errors.append(FieldError("NOT_VALID", "Please specify a valid ACH routing number.", "details.abartn"))
    address = details.get("address") or {}
    if address.get("country", address.get("countryCode")) in ("US", "CA") and not address.get("state"):
        errors.append(FieldError("NOT_VALID", "Please specify the state.", "details.address.state"))
    return country, errors


def _normalise(details: dict[str, Any]) -> dict[str, Any]:
    """The stored details: v1 carries both spellings of IBAN and BIC, and country and countryCode."""
    normalised = dict(details)
    if isinstance(details.get("sortCode"), str):
        normalised["sortCode"] = re.sub(r"[\s-]", "", details["sortCode"])
    for upper, lower in (("IBAN", "iban"), ("BIC", "bic")):
        if details.get(upper) is not None:
            normalised[lower] = details[upper]
    address = details.get("address")
    if isinstance(address, dict):
        country = address.get("country", address.get("countryCode"))
        normalised["address"] = {
            **{key: address.get(key) for key in ADDRESS_KEYS},
            "country": country,
            "countryCode": country,
        }
    return normalised


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


def aba_routing_is_valid(routing: str) -> bool:
    """Nine digits with the ABA weighted checksum (3, 7, 1)."""
    if not re.fullmatch(r"[0-9]{9}", routing):
        return False
    digits = [int(char) for char in routing]
    total = sum(weight * digit for weight, digit in zip([3, 7, 1] * 3, digits, strict=True))
    return total % 10 == 0


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
        "type": v2_type_name(recipient.type),
        "legalEntityType": "PERSON" if person else "BUSINESS",
        "active": recipient.active,
        "details": {"reference": None, **details},
        "commonFieldMap": _common_field_map(recipient.type, recipient.details),
        "hash": hashlib.sha256(hashed.encode()).hexdigest(),
        "accountSummary": summary,
        "longAccountSummary": long_summary,
        "displayFields": display,
        "isInternal": False,
        "ownedByCustomer": recipient.owned_by_customer,
    }


# The bank-code field of each local type, for ``commonFieldMap`` [I: Wise documents only sortCode's].
_BANK_CODE_FIELDS = (
    "sortCode", "abartn", "bsbCode", "institutionNumber", "bankCode", "ifscCode", "swiftCode",
    "clearingNumber",
)  # fmt: skip


def _common_field_map(account_type: str, details: dict[str, Any]) -> dict[str, str]:
    if account_type == "email":
        return {}
    number = next((key for key in ("IBAN", "accountNumber", "clabe") if details.get(key)), None)
    bank = next((key for key in _BANK_CODE_FIELDS if details.get(key)), None)
    found = {"accountNumberField": number, "bankCodeField": bank}
    return {key: value for key, value in found.items() if value is not None}


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
    if recipient.type == "email":
        email = details["email"]
        return email, f"{currency} account with email {email}", [_field("email", "Email", email)]
    # Every other type: its own fields, labelled as its account requirements name them.
    fields = fields_for(recipient.type, currency, currency, address=False, names=False)
    shown = [
        _field(field.key, field.name, details[field.key])
        for field in fields
        if not field.key.startswith("address.") and field.key != "legalType" and details.get(field.key)
    ]
    number = details.get("accountNumber") or details.get("clabe") or ""
    return number, f"{currency} account ending in {number[-4:]}", shown


def _field(key: str, label: str, value: str) -> dict[str, str]:
    return {"key": key, "label": label, "value": value}
