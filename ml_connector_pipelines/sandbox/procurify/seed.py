"""One Procurify domain's seeded data, set up the way customers set Procurify up: from their Infor
master data. Vendors, account codes and departments are drawn from the Infor sandbox seed of the
tenant with the same name (so a flow has counterparts to find), with deliberate gaps:

- vendors: most carry the Infor supplier number as ``external_id``; some carry it typed loosely
  (lower case, padded), some have no external id and only the supplier's (unique) name; one vendor
  is unknown to Infor.
- account codes: Infor dimension-1 accounts by code, one with a differing description, and one code
  Infor does not have.
- departments: Infor cost centres (dimension 2) by ``external_id``, one by name only, and one unknown.

Purchase orders and bills spread over the last 10 days; the first PO of the domain names the unknown
account code, the second the unknown vendor, the third the unknown department (bills likewise), so
tests and the demo always meet them. Records here are the simulator's own shape; ``render.py`` turns
them into the API's.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ..infor.seed import generate as infor_dataset

Record = dict[str, Any]

# PO state codes [C contract 3.1]; bill statuses are integers whose names are unpublished [C values].
PO_PURCHASED, PO_CANCELLED, PO_CLOSED, PO_PAID, PO_REOPENED = 0, 1, 3, 4, 5
BILL_APPROVED = 2  # [I] the simulator's "approved" bill status (names are not published)
BILL_OTHER_STATUSES = (0, 1, 3)  # [I] draft / pending / denied stand-ins: never pushed
UNKNOWN_ACCOUNT_CODE = ("6999", "Conference fees")
UNKNOWN_VENDOR = ("Unlisted Supplies Ltd", "S99999")
UNKNOWN_DEPARTMENT = ("Marketing Lab", "CC999")
DEFAULT_COUNTS = {"vendors": 16, "purchase_orders": 24, "bills": 18}
CHANGE_WINDOW_DAYS = 10
ITEMS = [
    ("Printer paper A4", "PAP-A4", "box"),
    ("Safety gloves", "SAF-GLV", "pair"),
    ("Laptop stand", "LAP-STD", "each"),
    ("Hydraulic oil 20L", "HYD-020", "can"),
    ("Cable ties 200mm", "CAB-200", "pack"),
    ("Cleaning service", "", "hour"),
    ("Forklift rental", "FRK-RNT", "day"),
    ("Ink cartridge black", "INK-BLK", "each"),
]


@dataclass
class Dataset:
    currencies: list[Record] = field(default_factory=list)
    vendors: list[Record] = field(default_factory=list)
    account_codes: list[Record] = field(default_factory=list)
    departments: list[Record] = field(default_factory=list)
    locations: list[Record] = field(default_factory=list)
    accounts: list[Record] = field(default_factory=list)  # account code x department (budget lines)
    users: list[Record] = field(default_factory=list)
    purchase_orders: list[Record] = field(default_factory=list)
    bills: list[Record] = field(default_factory=list)


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _moment(rng: random.Random, today: date) -> datetime:
    day = today - timedelta(days=rng.randrange(CHANGE_WINDOW_DAYS))
    return datetime.combine(day, time(rng.randrange(24), rng.randrange(60), rng.randrange(60)), UTC)


def generate(seed: int, domain: str, today: date, counts: dict[str, int] | None = None) -> Dataset:
    wanted = {**DEFAULT_COUNTS, **(counts or {})}
    rng = random.Random(f"{seed}:{domain}:procurify")
    infor = infor_dataset(seed, domain, today)
    data = Dataset()

    suppliers = [s for s in infor.suppliers if s["status"] == "active"][: wanted["vendors"]]
    currency_names = sorted({"USD", *(s["currency"] for s in suppliers)})
    data.currencies = [
        {"id": i, "name": name, "rate": "1.000000", "base": name == "USD"}
        for i, name in enumerate(currency_names, start=1)
    ]
    currency_id = {c["name"]: c["id"] for c in data.currencies}

    names = Counter(s["name"].casefold() for s in infor.suppliers)
    for i, supplier in enumerate(suppliers, start=1):
        external_id: str | None = supplier["supplier_id"]
        if i % 5 == 3 and names[supplier["name"].casefold()] == 1:
            external_id = None  # only the name links it to Infor (a unique name: no ambiguity)
        elif i % 7 == 5:
            external_id = f" {supplier['supplier_id'].lower()} "  # typed loosely
        data.vendors.append(
            _vendor(rng, i, supplier["name"], external_id, currency_id[supplier["currency"]], today)
        )
    unknown_name, unknown_ref = UNKNOWN_VENDOR
    data.vendors.append(
        _vendor(rng, len(data.vendors) + 1, unknown_name, unknown_ref, currency_id["USD"], today)
    )

    accounts = [a for a in infor.gl_accounts if a["dimension"] == 1 and a["account_id"] >= "4000"][:12]
    accounts = accounts or [a for a in infor.gl_accounts if a["dimension"] == 1][:12]
    for i, account in enumerate(accounts, start=1):
        text = account["description"] + (" (Procurify)" if i == 2 else "")
        data.account_codes.append(_account_code(i, account["account_id"], text))
    data.account_codes.append(_account_code(len(data.account_codes) + 1, *UNKNOWN_ACCOUNT_CODE))

    data.locations = [
        {
            "id": 1,
            "name": "Head office",
            "currency": currency_id["USD"],
            "headquarter": True,
            "external_id": "HQ",
        },
        {"id": 2, "name": "Plant", "currency": currency_id["USD"], "headquarter": False, "external_id": None},
    ]
    centres = [a for a in infor.gl_accounts if a["dimension"] == 2][:8]
    for i, centre in enumerate(centres, start=1):
        by_name_only = i == 4
        data.departments.append(
            {
                "id": i,
                "name": centre["description"],
                "active": True,
                "external_id": None if by_name_only else centre["account_id"],
                "location": 1 if i % 2 else 2,
            }
        )
    name, ref = UNKNOWN_DEPARTMENT
    data.departments.append(
        {"id": len(data.departments) + 1, "name": name, "active": True, "external_id": ref, "location": 1}
    )

    for department in data.departments:
        data.users.append(
            {
                "id": department["id"],
                "firstName": "Pat",
                "lastName": f"Buyer{department['id']}",
                "email": f"buyer{department['id']}@{domain.lower()}.example.com",
                "department": department["id"],
            }
        )
    known_codes = data.account_codes[:-1]
    known_departments = data.departments[:-1]
    for code in data.account_codes:
        for department in data.departments:
            data.accounts.append(
                {"id": len(data.accounts) + 1, "account_code": code["id"], "department": department["id"]}
            )

    def account_id(code: Record, department: Record) -> int:
        return next(
            a["id"]
            for a in data.accounts
            if a["account_code"] == code["id"] and a["department"] == department["id"]
        )

    known_vendors = [v for v in data.vendors if v["name"] != unknown_name]
    unknown_vendor = data.vendors[-1]
    vendor_currency = {v["id"]: v["currency"] for v in data.vendors}
    for n in range(1, wanted["purchase_orders"] + 1):
        vendor = unknown_vendor if n == 2 else rng.choice(known_vendors)
        code = data.account_codes[-1] if n == 1 else rng.choice(known_codes)
        department = data.departments[-1] if n == 3 else rng.choice(known_departments)
        state = PO_CANCELLED if n == 4 else rng.choice([PO_PURCHASED] * 6 + [PO_CLOSED, PO_PAID, PO_REOPENED])
        modified = _moment(rng, today)
        created = modified - timedelta(days=rng.randrange(0, 3), hours=rng.randrange(0, 5))
        lines = []
        for line_number in range(1, rng.randint(1, 3) + 1):
            name, sku, unit = rng.choice(ITEMS)
            # The first three POs name their gap on every line; the others vary their coding.
            line_code, line_department = (
                (code, department)
                if line_number == 1 or n <= 3
                else (rng.choice(known_codes), rng.choice(known_departments))
            )
            lines.append(
                {
                    "id": n * 10 + line_number,
                    "PO_line_num": line_number,
                    "name": name,
                    "sku": sku,
                    "unit": unit,
                    "quantity": Decimal(rng.randint(1, 20)),
                    "price": Decimal(rng.randint(500, 50000)) / 100,
                    "account": account_id(line_code, line_department),
                    "approved_datetime": timestamp(created - timedelta(hours=1)),
                }
            )
        data.purchase_orders.append(
            {
                "procurify_PO": n,
                "uuid": _uuid(rng),
                "number": f"PO-{n:05d}",
                "vendor": vendor["id"],
                "purchaser": department["id"],
                "currency": vendor_currency[vendor["id"]],
                "date": timestamp(created),
                "promise_date": timestamp(created + timedelta(days=rng.randint(7, 30))),
                "state": state,
                "fulfilment_status": "empty" if state in (PO_PURCHASED, PO_REOPENED) else "full",
                "last_modified": timestamp(modified),
                "lines": lines,
            }
        )

    for n in range(1, wanted["bills"] + 1):
        vendor = unknown_vendor if n == 2 else rng.choice(known_vendors)
        code = data.account_codes[-1] if n == 1 else rng.choice(known_codes)
        department = data.departments[-1] if n == 3 else rng.choice(known_departments)
        modified = _moment(rng, today)
        invoice_day = modified.date() - timedelta(days=rng.randrange(0, 20))
        items = []
        for k in range(1, rng.randint(1, 3) + 1):
            name, sku, unit = rng.choice(ITEMS)
            quantity = Decimal(rng.randint(1, 10))
            unit_cost = Decimal(rng.randint(500, 20000)) / 100
            items.append(
                {
                    "id": n * 10 + k,
                    "description": name,
                    "sku": sku,
                    "unit": unit,
                    "quantity": quantity,
                    "amount": quantity * unit_cost,
                    "account": account_id(code, department)
                    if k == 1 or n <= 3
                    else account_id(rng.choice(known_codes), rng.choice(known_departments)),
                }
            )
        data.bills.append(
            {
                "id": n,
                "uuid": _uuid(rng),
                "vendor": vendor["id"],
                "user": department["id"],
                "currency": vendor_currency[vendor["id"]],
                "invoice_number": f"INV-{domain[:4].upper()}-{n:04d}",
                "invoice_date": timestamp(datetime.combine(invoice_day, time(0), UTC)),
                "due_date": timestamp(datetime.combine(invoice_day + timedelta(days=30), time(0), UTC)),
                "submitted_date": timestamp(modified - timedelta(hours=2)),
                "status": BILL_APPROVED if n <= 3 or n % 6 else rng.choice(BILL_OTHER_STATUSES),
                "type": 0,
                "last_modified_datetime": timestamp(modified),
                "items": items,
            }
        )
    return data


def _vendor(
    rng: random.Random, vendor_id: int, name: str, external_id: str | None, currency: int, today: date
) -> Record:
    slug = "".join(ch for ch in name.lower() if ch.isalnum())[:20]
    return {
        "id": vendor_id,
        "name": name,
        "active": True,
        "external_id": external_id,
        "currency": currency,
        "email": [f"orders@{slug}.example.com"],
        "type": 3,  # PREFERRED [C contract 3.4]
        "addressLineOne": f"{rng.randint(1, 400)} Market Street",
        "city": "Springfield",
        "postalCode": f"{rng.randint(10000, 99999)}",
        "country": "US",
        "dateModified": timestamp(_moment(rng, today)),
    }


def _account_code(code_id: int, code: str, description: str) -> Record:
    return {
        "id": code_id,
        "code": code,
        "description": description,
        "account_type": 2,  # EXPENSE [C contract 3.5]
        "active": True,
        "parent": None,
        "code_length": len(code),
    }
