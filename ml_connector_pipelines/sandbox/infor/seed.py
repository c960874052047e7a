"""Deterministic seed data for one sandbox tenant, in canonical form (the field names of
``systems/infor/models.py``), JSON-able: dates are ISO strings, amounts are decimal strings.

Everything is drawn from ``random.Random(f"{seed}:{tenant}:{entity}")`` so the same seed and tenant
always give the same data, and changing the count of one entity does not reshuffle the others.
Bank details are valid by construction (IBAN mod-97 check digits, ABA checksum), except for two
IBANs that are broken on purpose so the pipelines' validation has something to catch.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

DIVISION = "AAA"  # [I] the one M3 division (and SyteLine site) every seeded invoice belongs to
DEFAULT_COUNTS: dict[str, int] = {
    "suppliers": 60,
    "customers": 40,
    "ap_invoices": 120,
    "ar_invoices": 80,
    "purchase_orders": 30,
    "gl_accounts": 40,
}
INVALID_IBANS = 2  # "a couple" of suppliers whose IBAN checksum is wrong on purpose

Record = dict[str, Any]


@dataclass
class Dataset:
    suppliers: list[Record] = field(default_factory=list)
    customers: list[Record] = field(default_factory=list)
    ap_invoices: list[Record] = field(default_factory=list)
    ar_invoices: list[Record] = field(default_factory=list)
    purchase_orders: list[Record] = field(default_factory=list)
    gl_accounts: list[Record] = field(default_factory=list)


# Bank identifiers ---------------------------------------------------------------------------------


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616: move country + "00" behind the BBAN, letters to numbers, 98 - (n mod 97)."""
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


def make_iban(country: str, bban: str) -> str:
    return f"{country}{iban_check_digits(country, bban)}{bban}"


def aba_check_digit(first8: str) -> str:
    """ABA routing checksum: 3*(d1+d4+d7) + 7*(d2+d5+d8) + (d3+d6+d9) is a multiple of 10."""
    d = [int(c) for c in first8]
    total = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5])
    return str((10 - total % 10) % 10)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


# country: (currency, [(bank code, BIC)], digits after the bank code, cities, post code digits)
IBAN_COUNTRIES: dict[str, tuple[str, list[tuple[str, str]], int, list[str], int]] = {
    "DE": (
        "EUR",
        [("37040044", "COBADEFFXXX"), ("50010517", "INGDDEFFXXX")],
        10,
        ["Berlin", "Hamburg", "Munich", "Cologne"],
        5,
    ),
    "NL": (
        "EUR",
        [("INGB", "INGBNL2A"), ("ABNA", "ABNANL2A"), ("RABO", "RABONL2U")],
        10,
        ["Amsterdam", "Rotterdam", "Utrecht"],
        4,
    ),
    "FR": ("EUR", [("30004", "BNPAFRPP"), ("30003", "SOGEFRPP")], 18, ["Paris", "Lyon", "Lille"], 5),
    "AT": ("EUR", [("12000", "BKAUATWW"), ("20111", "GIBAATWW")], 11, ["Vienna", "Graz", "Linz"], 4),
    "FI": ("EUR", [("100012", "NDEAFIHH"), ("500001", "OKOYFIHH")], 8, ["Helsinki", "Espoo", "Tampere"], 5),
    "IE": (
        "EUR",
        [("AIBK931152", "AIBKIE2D"), ("BOFI900017", "BOFIIE2D")],
        8,
        ["Dublin", "Cork", "Galway"],
        0,
    ),
    "CH": ("CHF", [("00230", "UBSWCHZH80A"), ("00700", "ZKBKCHZZ80A")], 12, ["Zurich", "Basel", "Geneva"], 4),
    "SE": ("SEK", [("500", "ESSESESS"), ("800", "SWEDSESS")], 17, ["Stockholm", "Gothenburg", "Malmo"], 5),
    "NO": ("NOK", [("1503", "DNBANOKK"), ("9710", "NDEANOKK")], 7, ["Oslo", "Bergen", "Trondheim"], 4),
    "DK": ("DKK", [("3000", "DABADKKK"), ("2000", "NDEADKKK")], 10, ["Copenhagen", "Aarhus", "Odense"], 4),
    "PL": (
        "PLN",
        [("10501445", "INGBPLPW"), ("10201026", "BPKOPLPW")],
        16,
        ["Warsaw", "Krakow", "Gdansk"],
        5,
    ),
    "CZ": ("CZK", [("0800", "GIBACZPX"), ("0100", "KOMBCZPP")], 16, ["Prague", "Brno", "Ostrava"], 5),
    "HU": ("HUF", [("117", "OTPVHUHB"), ("107", "CIBEHUHB")], 21, ["Budapest", "Debrecen", "Szeged"], 4),
}
UK_BANKS = [("20", "BARCGB22"), ("30", "LOYDGB2L"), ("40", "HBUKGB4B"), ("60", "NWBKGB2L")]
UK_CITIES = [("London", "EC2V 7HH"), ("Manchester", "M1 1AE"), ("Leeds", "LS1 4DY"), ("Bristol", "BS1 5TR")]
US_CITIES = [
    ("New York", "NY", "10001"),
    ("Chicago", "IL", "60601"),
    ("Austin", "TX", "78701"),
    ("Seattle", "WA", "98101"),
    ("Atlanta", "GA", "30303"),
    ("Denver", "CO", "80202"),
]
# Email payees: currencies where a payout provider can pay to an email address.
EMAIL_COUNTRIES = [
    ("AU", "AUD", "Sydney"),
    ("CA", "CAD", "Toronto"),
    ("JP", "JPY", "Osaka"),
    ("NZ", "NZD", "Auckland"),
    ("SG", "SGD", "Singapore"),
]
LEGAL_SUFFIX = {
    "DE": "GmbH",
    "NL": "B.V.",
    "FR": "SARL",
    "AT": "GmbH",
    "FI": "Oy",
    "IE": "Ltd",
    "CH": "AG",
    "SE": "AB",
    "NO": "AS",
    "DK": "ApS",
    "PL": "Sp. z o.o.",
    "CZ": "s.r.o.",
    "HU": "Kft.",
    "GB": "Ltd",
    "US": "Inc.",
    "AU": "Pty Ltd",
    "CA": "Inc.",
    "JP": "K.K.",
    "NZ": "Ltd",
    "SG": "Pte Ltd",
}
NAME_FIRST = [
    "Nordic",
    "Alpine",
    "Baltic",
    "Atlas",
    "Summit",
    "Harbor",
    "Granite",
    "Silver",
    "Pioneer",
    "Evergreen",
    "Meridian",
    "Cobalt",
    "Falcon",
    "Orion",
    "Redwood",
    "Beacon",
    "Crescent",
    "Delta",
    "Keystone",
    "Lakeside",
]
NAME_SECOND = [
    "Logistics",
    "Metals",
    "Foods",
    "Packaging",
    "Components",
    "Textiles",
    "Chemicals",
    "Plastics",
    "Electronics",
    "Timber",
    "Fasteners",
    "Hydraulics",
    "Paper",
    "Tooling",
    "Freight",
    "Coatings",
]
STREETS = ["Main Street", "Harbour Road", "Industrial Way", "Station Road", "Market Square", "Mill Lane"]
CUSTOMER_COUNTRIES = [
    ("US", "USD", "Boston"),
    ("GB", "GBP", "Birmingham"),
    ("DE", "EUR", "Frankfurt"),
    ("FR", "EUR", "Toulouse"),
    ("NL", "EUR", "Eindhoven"),
    ("SE", "SEK", "Uppsala"),
    ("CA", "CAD", "Vancouver"),
    ("AU", "AUD", "Melbourne"),
]
ITEMS = [
    ("BLT-M8-40", "Steel bolt M8x40"),
    ("NUT-M8", "Hex nut M8"),
    ("WSH-8", "Washer 8 mm"),
    ("PLT-2MM", "Aluminium plate 2 mm"),
    ("CBL-3X15", "Cable 3x1.5 mm2"),
    ("PAL-EUR", "Euro pallet"),
    ("BOX-40", "Carton box 40x30x20"),
    ("GLV-NIT", "Nitrile gloves (box)"),
    ("HYD-OIL", "Hydraulic oil 20 l"),
    ("BRG-6204", "Ball bearing 6204"),
    ("PNT-RAL9", "Paint RAL 9010 5 l"),
    ("TAP-50", "Packing tape 50 mm"),
]
GL_DIMENSION_1 = [
    ("1000", "Cash"),
    ("1010", "Bank EUR"),
    ("1020", "Bank USD"),
    ("1030", "Bank GBP"),
    ("1100", "Accounts receivable"),
    ("1200", "Inventory raw materials"),
    ("1210", "Inventory finished goods"),
    ("1300", "Prepaid expenses"),
    ("1500", "Machinery"),
    ("1510", "Vehicles"),
    ("2000", "Accounts payable"),
    ("2010", "Payables clearing"),
    ("2100", "VAT payable"),
    ("2200", "Accrued expenses"),
    ("3000", "Sales domestic"),
    ("3010", "Sales export"),
    ("3100", "Freight income"),
    ("4000", "Purchases raw materials"),
    ("4010", "Purchases components"),
    ("4100", "Freight in"),
    ("5000", "Salaries"),
    ("5100", "Rent"),
    ("5200", "Utilities"),
    ("5300", "IT services"),
    ("5400", "Travel"),
    ("5500", "Office supplies"),
    ("6000", "Bank charges"),
    ("6100", "Exchange differences"),
]
GL_DIMENSION_2 = [
    ("CC100", "Finance"),
    ("CC110", "Purchasing"),
    ("CC120", "Sales"),
    ("CC130", "Production"),
    ("CC140", "Warehouse"),
    ("CC150", "IT"),
    ("CC160", "HR"),
    ("CC170", "Maintenance"),
    ("CC180", "Quality"),
    ("CC190", "Logistics"),
    ("CC200", "R&D"),
    ("CC210", "Management"),
]


# Entities -----------------------------------------------------------------------------------------


def _rng(seed: int, tenant: str, entity: str) -> random.Random:
    return random.Random(f"{seed}:{tenant}:{entity}")


def _modified(rng: random.Random, today: date) -> str:
    """A change date within the 10 days up to and including today."""
    return (today - timedelta(days=rng.randrange(10))).isoformat()


def _amount(rng: random.Random, currency: str, low: int, high: int) -> str:
    if currency in ("JPY", "HUF"):  # no minor unit in practice: keep whole amounts
        return str(rng.randint(low, high) * (100 if currency == "JPY" else 300))
    return str(Decimal(rng.randint(low * 100, high * 100)) / 100)


def _company_name(rng: random.Random, country: str) -> str:
    return f"{rng.choice(NAME_FIRST)} {rng.choice(NAME_SECOND)} {LEGAL_SUFFIX[country]}"


def _slug(name: str) -> str:
    return "".join(ch for ch in name.split()[0] + name.split()[1] if ch.isalnum()).lower()


def _width(count: int) -> int:
    return max(5, len(str(count)))


def _supplier_kinds(rng: random.Random, n: int) -> list[str]:
    """~45% IBAN, ~20% sort code, ~20% ABA, rest email payees; shuffled so ids do not reveal the kind."""
    iban, sort_code, aba = round(n * 0.45), round(n * 0.2), round(n * 0.2)
    kinds = ["iban"] * iban + ["sort_code"] * sort_code + ["aba"] * aba
    kinds += ["email"] * (n - len(kinds))
    rng.shuffle(kinds)
    return kinds


def _bank_account(rng: random.Random, kind: str, ordinal: int) -> Record:
    """A payee of `kind`; the `ordinal`-th of its kind takes the next country in turn, so every
    tenant's suppliers span all the currencies (12+) instead of whatever the draws happen to give."""
    account: Record = {
        "kind": kind,
        "account_holder": "",
        "iban": None,
        "bic": None,
        "sort_code": None,
        "account_number": None,
        "aba_routing": None,
        "account_type": None,
        "bank_code": None,
        "branch_code": None,
        "clearing_number": None,
        "email": None,
        "city": None,
        "post_code": None,
        "address_line": None,
        "state": None,
    }
    street = f"{rng.randint(1, 200)} {rng.choice(STREETS)}"
    if kind == "iban":
        country = sorted(IBAN_COUNTRIES)[ordinal % len(IBAN_COUNTRIES)]
        currency, banks, rest, cities, post_digits = IBAN_COUNTRIES[country]
        bank_code, bic = rng.choice(banks)
        account.update(
            country=country,
            currency=currency,
            bic=bic,
            iban=make_iban(country, bank_code + _digits(rng, rest)),
            city=rng.choice(cities),
            address_line=street,
            post_code=_digits(rng, post_digits) or None,
        )
    elif kind == "sort_code":
        prefix, bic = rng.choice(UK_BANKS)
        city, post_code = rng.choice(UK_CITIES)
        account.update(
            country="GB",
            currency="GBP",
            bic=bic,
            sort_code=prefix + _digits(rng, 4),
            account_number=_digits(rng, 8),
            city=city,
            post_code=post_code,
            address_line=street,
        )
    elif kind == "aba":
        first8 = f"{rng.randint(1, 12):02d}" + _digits(rng, 6)  # Federal Reserve district prefix 01-12
        city, state, zip_code = rng.choice(US_CITIES)
        account.update(
            country="US",
            currency="USD",
            aba_routing=first8 + aba_check_digit(first8),
            account_number=_digits(rng, rng.randint(9, 12)),
            account_type=rng.choice(["CHECKING", "SAVINGS"]),
            city=city,
            state=state,
            post_code=zip_code,
            address_line=street,
        )
    else:
        country, currency, city = EMAIL_COUNTRIES[ordinal % len(EMAIL_COUNTRIES)]
        account.update(country=country, currency=currency, city=city)  # email set once the name is known
    return account


def _local_details(rng: random.Random, country: str) -> Record:
    """Domestic bank details in the shapes Wise's local recipient types take (docs/wise.md) [I]."""
    if country == "AU":  # BSB + account number
        return {"bank_code": _digits(rng, 6), "account_number": _digits(rng, rng.randint(6, 9))}
    if country == "CA":  # institution + transit + account number + type
        return {
            "bank_code": _digits(rng, 3),
            "branch_code": _digits(rng, 5),
            "account_number": _digits(rng, rng.randint(7, 12)),
            "account_type": rng.choice(["CHECKING", "SAVINGS"]),
        }
    if country == "JP":  # Zengin bank + branch code, 7-digit account number
        return {
            "bank_code": _digits(rng, 4),
            "branch_code": _digits(rng, 3),
            "account_number": _digits(rng, 7),
            "account_type": rng.choice(["CHECKING", "SAVINGS"]),
        }
    if country == "NZ":  # bank-branch-account-suffix in one number
        return {"account_number": f"{_digits(rng, 2)}-{_digits(rng, 4)}-{_digits(rng, 7)}-{_digits(rng, 2)}"}
    return {"bank_code": _digits(rng, 4), "account_number": _digits(rng, rng.randint(8, 12))}  # SG


def _as_local_payee(supplier: Record) -> None:
    """Turn an email payee into one with a domestic bank account in the same country. Drawn from its
    own generator, so the rest of the seed (every other record) stays what it was."""
    rng = random.Random(f"local-bank/{supplier['supplier_id']}")
    account = supplier["bank_account"]
    account.update(kind="local", email=None, address_line=f"{rng.randint(1, 200)} {rng.choice(STREETS)}")
    account.update(post_code=_digits(rng, 4), **_local_details(rng, account["country"]))


def _break_iban(iban: str) -> str:
    """Same IBAN with different check digits: structurally plausible, checksum wrong."""
    wrong = (int(iban[2:4]) + 1) % 97 + 2
    return f"{iban[:2]}{wrong:02d}{iban[4:]}"


def _suppliers(rng: random.Random, n: int, today: date) -> list[Record]:
    width = _width(n)
    suppliers = []
    seen: Counter[str] = Counter()
    for i, kind in enumerate(_supplier_kinds(rng, n), start=1):
        # The name's country must match the bank's, so draw the bank first with a placeholder holder.
        account = _bank_account(rng, kind, seen[kind])
        seen[kind] += 1
        name = _company_name(rng, account["country"])
        account["account_holder"] = name
        if kind == "email":
            account["email"] = f"payments@{_slug(name)}{i}.example.com"
        suppliers.append(
            {
                "supplier_id": f"S{i:0{width}d}",
                "name": name,
                "currency": account["currency"],
                "status": "active" if rng.random() > 0.05 else "inactive",
                "country": account["country"],
                "bank_account": account,
                "modified_date": _modified(rng, today),
            }
        )
    # The first payee of each email country (AUD, CAD, JPY, NZD, SGD) is paid to a local bank instead.
    for supplier in [s for s in suppliers if s["bank_account"]["kind"] == "email"][: len(EMAIL_COUNTRIES)]:
        _as_local_payee(supplier)
    iban_holders = [s for s in suppliers if s["bank_account"]["kind"] == "iban"]
    for supplier in rng.sample(iban_holders, min(INVALID_IBANS, len(iban_holders))):
        supplier["bank_account"]["iban"] = _break_iban(supplier["bank_account"]["iban"])
    return suppliers


def _customers(rng: random.Random, n: int, today: date) -> list[Record]:
    width = _width(n)
    customers = []
    for i in range(1, n + 1):
        country, currency, city = rng.choice(CUSTOMER_COUNTRIES)
        name = _company_name(rng, country)
        customers.append(
            {
                "customer_id": f"C{i:0{width}d}",
                "name": name,
                "currency": currency,
                "email": f"billing@{_slug(name)}{i}.example.com",
                "country": country,
                "address_line": f"{rng.randint(1, 300)} {rng.choice(STREETS)}",
                "city": city,
                "post_code": _digits(rng, 5),
                "modified_date": _modified(rng, today),
            }
        )
    return customers


def _ap_invoices(rng: random.Random, n: int, today: date, suppliers: list[Record]) -> list[Record]:
    invoices = []
    for i in range(1, n + 1):
        supplier = rng.choice(suppliers)
        modified = date.fromisoformat(_modified(rng, today))
        invoice_date = modified - timedelta(days=rng.randint(0, 45))
        status = rng.choices(["open", "paid", "cancelled"], weights=[80, 12, 8])[0]
        invoices.append(
            {
                "division": DIVISION,
                "supplier_id": supplier["supplier_id"],
                "invoice_number": f"INV-{100000 + i}",
                "invoice_year": invoice_date.year,
                "invoice_date": invoice_date.isoformat(),
                "due_date": (invoice_date + timedelta(days=rng.choice([14, 30, 45, 60]))).isoformat(),
                "currency": supplier["currency"],
                "amount": _amount(rng, supplier["currency"], 50, 25000),
                "status": status,
                "modified_date": modified.isoformat(),
            }
        )
    return invoices


def _ar_invoices(rng: random.Random, n: int, today: date, customers: list[Record]) -> list[Record]:
    invoices = []
    for i in range(1, n + 1):
        customer = rng.choice(customers)
        modified = date.fromisoformat(_modified(rng, today))
        invoice_date = modified - timedelta(days=rng.randint(0, 45))
        status = rng.choices(["open", "paid", "cancelled"], weights=[75, 20, 5])[0]
        amount = _amount(rng, customer["currency"], 100, 15000)
        open_amount = amount if status == "open" else "0"
        if status == "open" and rng.random() < 0.15:  # a few partly paid invoices
            open_amount = str((Decimal(amount) / 2).quantize(Decimal("0.01")))
        invoices.append(
            {
                "division": DIVISION,
                "customer_id": customer["customer_id"],
                "invoice_number": str(5000000 + i),
                "invoice_year": invoice_date.year,
                "invoice_date": invoice_date.isoformat(),
                "due_date": (invoice_date + timedelta(days=30)).isoformat(),
                "currency": customer["currency"],
                "amount": amount,
                "open_amount": open_amount,
                "status": status,
                "modified_date": modified.isoformat(),
            }
        )
    return invoices


def _purchase_orders(rng: random.Random, n: int, today: date, suppliers: list[Record]) -> list[Record]:
    orders = []
    for i in range(1, n + 1):
        supplier = rng.choice(suppliers)
        modified = date.fromisoformat(_modified(rng, today))
        lines = []
        for line_number, (item, description) in enumerate(rng.sample(ITEMS, rng.randint(1, 5)), start=1):
            lines.append(
                {
                    "line_number": line_number,
                    "item_number": item,
                    "description": description,
                    "quantity": str(rng.randint(1, 500)),
                    "unit_price": _amount(rng, supplier["currency"], 1, 400),
                }
            )
        orders.append(
            {
                "po_number": str(4000000 + i),
                "supplier_id": supplier["supplier_id"],
                "order_date": (modified - timedelta(days=rng.randint(0, 20))).isoformat(),
                "currency": supplier["currency"],
                "status": rng.choices(["open", "closed"], weights=[85, 15])[0],
                "facility": "A01",
                "warehouse": rng.choice(["100", "200"]),
                "external_ref": None,
                "lines": lines,
                "modified_date": modified.isoformat(),
            }
        )
    return orders


def _gl_accounts(rng: random.Random, n: int, today: date) -> list[Record]:
    """~70% dimension 1 (accounts), the rest dimension 2 (cost centres); synthetic codes past the lists."""
    n1 = round(n * 0.7)
    dim1 = GL_DIMENSION_1 + [
        (str(7000 + 10 * k), f"Other expense {k + 1}") for k in range(max(0, n1 - len(GL_DIMENSION_1)))
    ]
    dim2 = GL_DIMENSION_2 + [
        (f"CC{300 + 10 * k}", f"Cost centre {300 + 10 * k}")
        for k in range(max(0, n - n1 - len(GL_DIMENSION_2)))
    ]
    accounts = [(1, code, text) for code, text in dim1[:n1]] + [
        (2, code, text) for code, text in dim2[: n - n1]
    ]
    return [
        {"dimension": dim, "account_id": code, "description": text, "modified_date": _modified(rng, today)}
        for dim, code, text in accounts
    ]


def generate(seed: int, tenant: str, today: date, counts: dict[str, int] | None = None) -> Dataset:
    wanted = {**DEFAULT_COUNTS, **(counts or {})}
    suppliers = _suppliers(_rng(seed, tenant, "suppliers"), wanted["suppliers"], today)
    customers = _customers(_rng(seed, tenant, "customers"), wanted["customers"], today)
    return Dataset(
        suppliers=suppliers,
        customers=customers,
        ap_invoices=_ap_invoices(_rng(seed, tenant, "ap_invoices"), wanted["ap_invoices"], today, suppliers)
        if suppliers
        else [],
        ar_invoices=_ar_invoices(_rng(seed, tenant, "ar_invoices"), wanted["ar_invoices"], today, customers)
        if customers
        else [],
        purchase_orders=_purchase_orders(
            _rng(seed, tenant, "purchase_orders"), wanted["purchase_orders"], today, suppliers
        )
        if suppliers
        else [],
        gl_accounts=_gl_accounts(_rng(seed, tenant, "gl_accounts"), wanted["gl_accounts"], today),
    )
