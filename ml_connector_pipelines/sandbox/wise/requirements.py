"""Account requirements ("dynamic forms", contract 5.4): the recipient types and ``details`` fields the
sandbox offers per target currency, and the check of a create body against them.

Sources. The response shape is Wise's (contract 5.4; S9b; S7 ``_recipients.md``, "Requirements"). The
type names and the required details per currency are those of the 2020 Wise docs (S7, "Create <CCY>
Recipient" sections): ``iban`` IBAN; ``sort_code`` sortCode + accountNumber; ``aba`` abartn +
accountNumber + accountType + address; ``australian`` bsbCode + accountNumber; ``canadian``
institutionNumber + transitNumber + accountNumber + accountType; ``japanese`` bankCode + branchCode +
accountType + accountNumber; ``newzealand`` accountNumber; ``singapore`` / ``hongkong`` bankCode +
accountNumber; ``indian`` ifscCode + accountNumber; ``southafrica`` swiftCode + accountNumber;
``mexican`` clabe; ``sweden_local`` clearingNumber + accountNumber; ``polish`` / ``hungarian``
accountNumber; ``email`` email. USD to an account outside the US is a ``swift_code`` recipient (current
docs, "Global Currencies"). The regexes and lengths are the sandbox's own where the docs give only an
example value (``[I]``, listed in docs/wise.md); the ABA, email and name patterns are Wise's own.

Modelled, not documented per currency ([I]):
- an ``iban`` recipient takes only IBANs of the currency's own countries (EUR: SEPA; GBP: GB only;
  Wise's "Global Currencies" product may accept other
  IBANs in GBP over SWIFT, the sandbox does not);
- ``email`` is offered in every currency (the docs say to look for it in the requirements);
- address fields are listed (required) for USD targets and for USD or AUD sources (contract 5.1), and
  for every type when ``addressRequired=true``; an ``address`` object is accepted on any type;
- with ``Accept-Minor-Version: 1`` every type also lists ``accountHolderName`` (contract 5.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import FieldError

_BIC = r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$"
# S7's example regex for a name (v1.1 form), and Wise's email pattern (contract 5.4 example).
_NAME = r"^[0-9A-Za-zÀ-ÖØ-öø-ÿ\-_()'*,.%#^@{}~<>+$\"\[\]\\ ]+$"
_EMAIL = r"^[^\s]+@[^\s]+\.[^\s]{2,}$"
# EUR goes to SEPA IBANs ("Global Currencies": EUR to a non-SEPA IBAN is a swift_code recipient).
SEPA_COUNTRIES = (
    "AD", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GI", "GR", "HR",
    "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI",
    "SK", "SM", "VA",
)  # fmt: skip
IBAN_COUNTRIES = {
    "EUR": SEPA_COUNTRIES, "GBP": ("GB",), "CHF": ("CH", "LI"), "SEK": ("SE",), "NOK": ("NO",),
    "DKK": ("DK",), "PLN": ("PL",), "CZK": ("CZ",), "HUF": ("HU",),
}  # fmt: skip
# Address fields are needed for these targets, or these sources (contract 5.1).
ADDRESS_TARGETS = frozenset({"USD", "PHP", "THB", "TRY"})
ADDRESS_SOURCES = frozenset({"USD", "AUD"})
ADDRESS_KEYS = ("country", "countryCode", "firstLine", "city", "postCode", "state")


@dataclass(frozen=True)
class Field:
    """One entry of a requirement's ``fields[].group[]``."""

    key: str
    name: str
    required: bool = True
    type: str = "text"
    regex: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    values: tuple[tuple[str, str], ...] | None = None
    example: str = ""
    refresh: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": [
                {
                    "key": self.key,
                    "name": self.name,
                    "type": self.type,
                    "refreshRequirementsOnChange": self.refresh,
                    "required": self.required,
                    "displayFormat": None,
                    "example": self.example,
                    "minLength": self.min_length,
                    "maxLength": self.max_length,
                    "validationRegexp": self.regex,
                    "validationAsync": None,
                    "valuesAllowed": (
                        None if self.values is None else [{"key": k, "name": n} for k, n in self.values]
                    ),
                }
            ],
        }

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not satisfy this field, or None."""
        if value is None or value == "":
            return f"{self.name} is required." if self.required else None
        if not isinstance(value, str):
            return f"{self.name} must be a string."
        if self.min_length is not None and len(value) < self.min_length:
            return f"{self.name} must be at least {self.min_length} characters."
        if self.max_length is not None and len(value) > self.max_length:
            return f"{self.name} must be at most {self.max_length} characters."
        if self.regex is not None and not re.search(self.regex, value):
            return f"{self.name} is not valid."
        if self.values is not None and value not in {key for key, _ in self.values}:
            return f"{self.name} must be one of {', '.join(key for key, _ in self.values)}."
        return None


def _digits(key: str, name: str, low: int, high: int | None = None, example: str = "") -> Field:
    span = f"{{{low}}}" if high is None else f"{{{low},{high}}}"
    return Field(key, name, regex=rf"^\d{span}$", min_length=low, max_length=high or low, example=example)


LEGAL_TYPE = Field(
    "legalType", "Recipient type", type="select", values=(("PRIVATE", "Person"), ("BUSINESS", "Business"))
)
ACCOUNT_HOLDER = Field("accountHolderName", "Full Name", regex=_NAME, min_length=2, max_length=140)
ADDRESS_FIELDS = (
    Field("address.country", "Country", type="select", regex=r"^[A-Z]{2}$", refresh=True),
    Field("address.city", "City", regex=r"^.{1,255}$", min_length=1, max_length=255),
    Field("address.firstLine", "Recipient address", regex=r"^.{1,255}$", min_length=1, max_length=255),
    Field("address.postCode", "Post code", regex=r"^.{1,32}$", min_length=1, max_length=32),
)
BIC_FIELD = Field("BIC", "Bank code (BIC/SWIFT)", required=False, regex=_BIC, example="COBADEFFXXX")

# type -> (title, its own fields after legalType); the IBAN field is added per currency.
TYPES: dict[str, tuple[str, tuple[Field, ...]]] = {
    "iban": ("IBAN", (BIC_FIELD,)),
    "sort_code": (
        "Local bank account",
        (
            # S7's own examples send "40-30-20": dashes are accepted (and dropped when stored).
            Field("sortCode", "UK sort code", regex=r"^\d{2}-?\d{2}-?\d{2}$", min_length=6, max_length=8),
            _digits("accountNumber", "Account number", 8),
        ),
    ),
    "aba": (
        "Local bank account",
        (
            _digits("abartn", "ACH routing number", 9, example="026009593"),
            _digits("accountNumber", "Account number", 4, 17, example="12345678"),
            Field(
                "accountType",
                "Account type",
                type="radio",
                values=(("CHECKING", "Checking"), ("SAVINGS", "Savings")),
                example="CHECKING",
            ),
        ),
    ),
    "swift_code": (
        "Swift",
        (
            Field("swiftCode", "SWIFT / BIC code", regex=_BIC, example="COBADEFFXXX"),
            Field(
                "accountNumber",
                "IBAN / Account number",
                regex=r"^[A-Z0-9]{4,34}$",
                min_length=4,
                max_length=34,
            ),
        ),
    ),
    "email": ("Email", (Field("email", "E-mail", regex=_EMAIL, example="example@example.ex"),)),
    "australian": (
        "Local bank account",
        (
            _digits("bsbCode", "BSB code", 6, example="023604"),
            _digits("accountNumber", "Account number", 4, 9, example="123456789"),
            # S7: "businessNumber - 9..14 digits (for business recipients only)"; optional here [I].
            Field("businessNumber", "ABN or ACN", required=False, regex=r"^[\d ]{9,17}$"),
        ),
    ),
    "canadian": (
        "Local bank account",
        (
            _digits("institutionNumber", "Institution number", 3, example="006"),
            _digits("transitNumber", "Transit number", 5, example="04841"),
            _digits("accountNumber", "Account number", 7, 12, example="3456712"),
            Field(
                "accountType",
                "Account type",
                type="radio",
                values=(("Checking", "Checking"), ("Saving", "Saving")),
                example="Checking",
            ),
        ),
    ),
    "japanese": (
        "Local bank account",
        (
            _digits("bankCode", "Bank code", 4, example="6470"),
            _digits("branchCode", "Branch code", 3, example="100"),
            Field(
                "accountType",
                "Account type",
                type="radio",
                values=(("CURRENT", "Current"), ("SAVINGS", "Savings"), ("CHECKING", "Checking")),
            ),
            _digits("accountNumber", "Account number", 7, example="1234567"),
        ),
    ),
    "newzealand": (
        "Local bank account",
        (
            Field(
                "accountNumber",
                "Account number",
                regex=r"^\d{2}-?\d{4}-?\d{7}-?\d{2,3}$",
                example="03-1587-0050000-00",
            ),
        ),
    ),
    "singapore": (
        "Local bank account",
        (
            _digits("bankCode", "Bank code", 4, example="7418"),
            _digits("accountNumber", "Account number", 6, 17),
        ),
    ),
    "hongkong": (
        "Local bank account",
        (
            _digits("bankCode", "Bank code", 3, example="307"),
            Field("accountNumber", "Account number", regex=r"^[\d-]{6,15}$", example="005-231289-112"),
        ),
    ),
    "indian": (
        "Local bank account",
        (
            Field("ifscCode", "IFSC code", regex=r"^[A-Z]{4}0[A-Z0-9]{6}$", example="YESB0236041"),
            _digits("accountNumber", "Account number", 6, 18, example="678911234567891"),
        ),
    ),
    "southafrica": (
        "Local bank account",
        (
            Field("swiftCode", "SWIFT code", regex=_BIC, example="ALBRZAJJ"),
            _digits("accountNumber", "Account number", 6, 16, example="0000000052312891"),
        ),
    ),
    "mexican": ("CLABE", (_digits("clabe", "CLABE", 18, example="032180000118359719"),)),
    "sweden_local": (
        "Local bank account",
        (
            _digits("clearingNumber", "Clearing number", 4, 5),
            _digits("accountNumber", "Account number", 6, 10),
        ),
    ),
    "polish": ("Local bank account", (_digits("accountNumber", "Account number", 26),)),
    "hungarian": (
        "Local bank account",
        (Field("accountNumber", "Account number", regex=r"^\d{8}-?\d{8}(-?\d{8})?$"),),
    ),
}
# Target currency -> the types offered, in the order they are listed.
CURRENCY_TYPES: dict[str, tuple[str, ...]] = {
    "EUR": ("iban", "email"),
    "GBP": ("sort_code", "iban", "email"),
    "USD": ("aba", "swift_code", "email"),
    "CHF": ("iban", "email"),
    "SEK": ("iban", "sweden_local", "email"),
    "NOK": ("iban", "email"),
    "DKK": ("iban", "email"),
    "PLN": ("iban", "polish", "email"),
    "CZK": ("iban", "email"),
    "HUF": ("iban", "hungarian", "email"),
    "AUD": ("australian", "email"),
    "CAD": ("canadian", "email"),
    "JPY": ("japanese", "email"),
    "NZD": ("newzealand", "email"),
    "SGD": ("singapore", "email"),
    "HKD": ("hongkong", "email"),
    "INR": ("indian", "email"),
    "ZAR": ("southafrica", "email"),
    "MXN": ("mexican", "email"),
}


def v2_type_name(account_type: str) -> str:
    """v1 ``sort_code`` is v2 ``SortCode`` (contract 5.2); the same rule for every type [I]."""
    return "".join(part.capitalize() for part in account_type.split("_"))


def _iban_field(currency: str) -> Field:
    countries = "|".join(IBAN_COUNTRIES[currency])
    return Field(
        "IBAN", "IBAN", regex=rf"^({countries})\d{{2}}[A-Z0-9]{{11,30}}$", min_length=15, max_length=34
    )


def fields_for(account_type: str, source: str, target: str, *, address: bool, names: bool) -> list[Field]:
    """Every field of one type on the route source -> target."""
    _, own = TYPES[account_type]
    fields = [LEGAL_TYPE] + ([ACCOUNT_HOLDER] if names else [])
    if account_type == "iban":
        fields.append(_iban_field(target))
    fields += own
    if (
        address
        or account_type in ("aba", "swift_code")
        or target in ADDRESS_TARGETS
        or source in ADDRESS_SOURCES
    ):
        fields += ADDRESS_FIELDS
    return fields


def requirements_json(source: str, target: str, *, address: bool, names: bool) -> list[dict[str, Any]]:
    """The ``GET /v1/account-requirements`` body for a route."""
    return [
        {
            "type": account_type,
            "title": TYPES[account_type][0],
            "usageInfo": None,
            "fields": [
                field.to_json()
                for field in fields_for(account_type, source, target, address=address, names=names)
            ],
        }
        for account_type in CURRENCY_TYPES[target]
    ]


def check_details(
    account_type: str, currency: str, body: dict[str, Any], details: dict[str, Any]
) -> list[FieldError]:
    """The create body against the type's fields: known keys only, required ones present, patterns met.

    A create names no source currency, so only the target's address rule applies here."""
    fields = fields_for(account_type, "", currency, address=False, names=True)
    known = {field.key for field in fields if not field.key.startswith("address.")} | {"address"}
    errors = [
        FieldError(
            "NOT_VALID", f"{key} is not a field of {account_type} recipients.", f"details.{key}", [key]
        )
        for key in details
        if key not in known
    ]
    address = details.get("address")
    if address is not None and not isinstance(address, dict):
        errors.append(FieldError("NOT_VALID", "address must be an object.", "details.address"))
        address = {}
    for key in address or {}:
        if key not in ADDRESS_KEYS:
            errors.append(
                FieldError("NOT_VALID", f"address.{key} is not an address field.", f"details.address.{key}")
            )
    for field in fields:
        if field.key in ("accountHolderName", "legalType"):
            continue  # checked with the name rules, which depend on legalType
        if field.key.startswith("address."):
            sub = field.key.split(".", 1)[1]
            value = (address or {}).get(sub, (address or {}).get("countryCode") if sub == "country" else None)
            path = f"details.{field.key}"
        else:
            value, path = details.get(field.key), f"details.{field.key}"
        problem = field.problem(value)
        if problem is not None:
            errors.append(FieldError("NOT_VALID", problem, path, [value] if value else []))
    return errors
