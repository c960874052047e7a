"""One tenant's dataset: canonical records (the state the sandbox reports) plus the bookkeeping the M3
and SyteLine views need. Both products read and write this same dataset.

Callers hold the simulator's lock; nothing here locks on its own.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from .seed import Dataset, Record, generate

T = TypeVar("T")
InvoiceKey = tuple[str, str, str, str]  # division, supplier/customer, invoice number, year
ExtensionKey = tuple[str, ...]  # FILE, PK01..PK08
ENTITIES = (
    "suppliers",
    "customers",
    "ap_invoices",
    "ar_invoices",
    "purchase_orders",
    "gl_accounts",
    "ar_payments",
)
CACHE_LIMIT = 256
VIOLATIONS_KEPT = 1000
# Every metadata violation of every simulator in this process, for checks of runs that start their
# own sandbox (the demo) and so cannot be asked for their state afterwards.
VIOLATIONS_IN_PROCESS: list[dict[str, Any]] = []


@dataclass
class AuthConfig:
    token_lifetime: int = 7200
    issue_refresh_token: bool = True


@dataclass
class TenantData:
    tenant: str
    seed: int
    today: date
    counts: dict[str, int] = field(default_factory=dict)
    auth: AuthConfig = field(default_factory=AuthConfig)
    supplier_bank_type: str = "2"  # [I] CRS692MI BKTP of supplier accounts
    exportmi_allowed: bool = True  # False: the tenant's MI security refuses EXPORTMI (many do)
    requests: int = 0
    # Every M3 call by PROGRAM/TRANSACTION, and the calls the MI metadata refused (kept, bounded).
    m3_calls: Counter[str] = field(default_factory=Counter)
    m3_violations: list[dict[str, Any]] = field(default_factory=list)

    def record_violation(self, violation: dict[str, Any]) -> None:
        if len(self.m3_violations) < VIOLATIONS_KEPT:
            self.m3_violations.append(violation)
        if len(VIOLATIONS_IN_PROCESS) < VIOLATIONS_KEPT:
            VIOLATIONS_IN_PROCESS.append({"tenant": self.tenant, **violation})

    def __post_init__(self) -> None:
        self.reseed(self.counts, self.seed, self.today)

    def reseed(self, counts: dict[str, int], seed: int, today: date) -> None:
        self.counts, self.seed, self.today = dict(counts), seed, today
        data: Dataset = generate(seed, self.tenant, today, counts)
        self.suppliers: dict[str, Record] = {r["supplier_id"]: r for r in data.suppliers}
        self.customers: dict[str, Record] = {r["customer_id"]: r for r in data.customers}
        self.ap_invoices: dict[InvoiceKey, Record] = {
            invoice_key(r, "supplier_id"): r for r in data.ap_invoices
        }
        self.ar_invoices: dict[InvoiceKey, Record] = {
            invoice_key(r, "customer_id"): r for r in data.ar_invoices
        }
        self.purchase_orders: dict[str, Record] = {r["po_number"]: r for r in data.purchase_orders}
        self.gl_accounts: dict[str, Record] = {r["account_id"]: r for r in data.gl_accounts}
        self.ar_payments: list[Record] = []
        self.extensions: dict[ExtensionKey, Record] = {}
        # Open M3 batches: PPS370MI entries, APS450MI invoice batches, ARS040MI payment batches.
        self.po_entries: dict[str, Record] = {}
        self.ap_batches: dict[str, Record] = {}
        self.ar_batches: dict[str, Record] = {}
        self._numbers = itertools.count(1)
        self._next_po = 4000000 + len(self.purchase_orders) + 1
        self._versions = dict.fromkeys(ENTITIES, 0)
        self._clock = itertools.count(1)
        self._cache: dict[tuple[Any, ...], tuple[int, Any]] = {}
        # Ledger vouchers (YEA4, JRNO, JSNO) by ledger and row key, and back.
        self._vouchers: dict[tuple[str, tuple[str, ...]], tuple[str, str, str]] = {}
        self._voucher_rows: dict[tuple[str, str, str, str], tuple[str, ...]] = {}

    # Numbering and clock --------------------------------------------------------------------------

    def next_number(self, width: int = 10) -> str:
        """MSGN / INBN / PBID / TRNO: one counter per tenant is enough to keep them unique."""
        return f"{next(self._numbers):0{width}d}"

    def next_po_number(self) -> str:
        while str(self._next_po) in self.purchase_orders:
            self._next_po += 1
        self._next_po += 1
        return str(self._next_po - 1)

    def voucher(self, ledger: str, key: tuple[str, ...], year: str) -> tuple[str, str, str]:
        """A ledger row's voucher (YEA4, JRNO, JSNO): numbered when first seen, then fixed [I]."""
        found = self._vouchers.get((ledger, key))
        if found is None:
            found = (year, str(len(self._vouchers) + 1), "1")
            self._vouchers[(ledger, key)] = found
            self._voucher_rows[(ledger, *found)] = key
        return found

    def voucher_row(self, ledger: str, year: str, journal: str, sequence: str) -> tuple[str, ...] | None:
        return self._voucher_rows.get((ledger, year, journal, sequence))

    @property
    def today_iso(self) -> str:
        return self.today.isoformat()

    # Change tracking: every write bumps its entity's version, which invalidates cached views.

    def changed(self, *entities: str) -> None:
        stamp = next(self._clock)
        for entity in entities:
            self._versions[entity] = stamp

    def cached(self, key: tuple[Any, ...], entity: str, build: Callable[[], T]) -> T:
        version = self._versions[entity]
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        value = build()
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (version, value)
        return value

    # Lookups shared by M3 and SyteLine --------------------------------------------------------------

    def extension(self, file: str, key: InvoiceKey) -> Record | None:
        return self.extensions.get(extension_key(file, list(key)))

    def set_extension(self, file: str, keys: list[str], values: dict[str, str]) -> Record:
        """Create or update the CUGEX1 row of an invoice; ``values`` uses the canonical names."""
        ext_key = extension_key(file, keys)
        record = self.extensions.get(ext_key)
        if record is None:
            padded = list(ext_key[1:])
            record = self.extensions[ext_key] = {
                "file": file,
                "keys": padded,
                "invoice_key": "/".join(padded[:4]),
                "status": "",
                "external_id": "",
                "updated_at": "",
                "free_text": "",
                "modified_date": self.today_iso,
            }
        record.update(values)
        record["modified_date"] = self.today_iso
        self.changed("ap_invoices" if file == "FPLEDG" else "ar_invoices")
        return record

    def state(self) -> dict[str, Any]:
        return {
            "today": self.today_iso,
            "seed": self.seed,
            "suppliers": list(self.suppliers.values()),
            "customers": list(self.customers.values()),
            "ap_invoices": list(self.ap_invoices.values()),
            "ar_invoices": list(self.ar_invoices.values()),
            "purchase_orders": list(self.purchase_orders.values()),
            "gl_accounts": list(self.gl_accounts.values()),
            "ar_payments": list(self.ar_payments),
            "extensions": list(self.extensions.values()),
            "exportmi_allowed": self.exportmi_allowed,
            "m3_calls": dict(self.m3_calls),
            "m3_violations": list(self.m3_violations),
        }


def invoice_key(record: Record, party_field: str) -> InvoiceKey:
    return (record["division"], record[party_field], record["invoice_number"], str(record["invoice_year"]))


def extension_key(file: str, keys: list[str]) -> ExtensionKey:
    padded = (list(keys) + [""] * 8)[:8]
    return (file, *padded)
