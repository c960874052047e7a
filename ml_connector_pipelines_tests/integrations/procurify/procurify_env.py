"""A Procurify -> Infor pairing on the shared sandbox: one Procurify domain and one Infor tenant of
the same name (the Procurify seed is drawn from that tenant's Infor master data)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.sync import SyncResult, SyncSession
from ml_connector_pipelines.integrations.procurify.pushers import (
    AP_INVOICES,
    PURCHASE_ORDERS,
    REFERENCES,
    BillPush,
    PurchaseOrderPush,
    PushSettings,
    load_references,
    record_references,
    stored_references,
)
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.sandbox.procurify.seed import BILL_APPROVED, CHANGE_WINDOW_DAYS, PO_CANCELLED
from ml_connector_pipelines.sandbox.procurify.simulator import CLIENT_SECRET, client_id_for
from ml_connector_pipelines.systems.infor.adapter import InforAdapter, open_adapter
from ml_connector_pipelines.systems.infor.ionapi import IonApi
from ml_connector_pipelines.systems.procurify.client import ProcurifyClient

_numbers = itertools.count(1)
_runs = itertools.count(1)


def config_for(product: str, tenant: str) -> dict[str, Any]:
    return {
        "mongoose_config": f"{tenant}_MAIN",
        "procurify_ap_division": "AAA",  # the sandbox's one division / site
        "m3_ap_line_accounting": "derive",
    }


@dataclass
class Pairing:
    sandbox: SandboxServer
    store: StateStore
    tenant: str
    product: str
    exportmi_locked: bool = False  # M3 only: the tenant refuses EXPORTMI, and its config says so

    def __post_init__(self) -> None:
        # Create (and seed) the Procurify domain now, so its state can be read before any run.
        url = f"{self.sandbox.url}/_sandbox/procurify/tenants/{self.tenant}/seed"
        httpx.put(url, json={}, timeout=30).raise_for_status()
        if self.exportmi_locked:
            url = f"{self.sandbox.url}/_sandbox/infor/tenants/{self.tenant}/config"
            httpx.put(url, json={"exportmi": False}, timeout=30).raise_for_status()

    @property
    def config(self) -> dict[str, Any]:
        config = config_for(self.product, self.tenant)
        return {**config, "m3_exportmi": False} if self.exportmi_locked else config

    def procurify(self) -> ProcurifyClient:
        base = f"{self.sandbox.url}/procurify/{self.tenant}"
        return ProcurifyClient(base, client_id_for(self.tenant), CLIENT_SECRET, config=self.config)

    def infor(self) -> InforAdapter:
        ionapi = IonApi.from_dict(sandbox_ionapi(self.sandbox.url, self.tenant), allow_loopback_http=True)
        adapter = open_adapter(ionapi, self.product, self.config, allow_loopback_http=True)
        adapter.http.sleep = lambda seconds: None  # type: ignore[attr-defined]  # retry at once in tests
        return adapter

    def session(self, flow: str, run_id: str, **kwargs: Any) -> SyncSession:
        return SyncSession(self.store, tenant=self.tenant, flow=flow, run_id=run_id, partition=None, **kwargs)

    @staticmethod
    def days() -> list[date]:
        today = datetime.now(UTC).date()
        return [today - timedelta(days=n) for n in range(CHANGE_WINDOW_DAYS)]

    def run(self, run_id: str | None = None, **session_kwargs: Any) -> dict[str, list[SyncResult]]:
        """One run over every seeded day: references first, then POs, then bills."""
        run_id = run_id or f"run-{next(_runs)}"
        settings = PushSettings.from_config(self.config, self.product)
        with self.procurify() as procurify, self.infor() as infor:
            references = record_references(
                self.session(REFERENCES, run_id), load_references(procurify, infor, settings)
            )
            refs = stored_references(Ledger(self.store), self.tenant)  # as the push assets read them
            orders = PurchaseOrderPush(
                self.session(PURCHASE_ORDERS, run_id, **session_kwargs), infor, refs, settings
            )
            bills = BillPush(self.session(AP_INVOICES, run_id, **session_kwargs), infor, refs, settings)
            results = {"references": references, "orders": [], "bills": []}
            for day in self.days():
                results["orders"] += [orders.sync(order) for order in procurify.approved_purchase_orders(day)]
                results["bills"] += [bills.sync(bill) for bill in procurify.approved_bills(day)]
        return results

    # What the systems hold ----------------------------------------------------------------------------

    def infor_state(self) -> dict[str, Any]:
        return self.sandbox.get_state("infor")["tenants"][self.tenant]

    def procurify_state(self) -> dict[str, Any]:
        return self.sandbox.get_state("procurify")["tenants"][self.tenant]

    def infor_orders(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.infor_state()["purchase_orders"]
            if (p.get("external_ref") or "").startswith("PFY-")
        ]

    def infor_invoices(self) -> list[dict[str, Any]]:
        ours = {b["invoice_number"] for b in self.procurify_state()["bills"]}
        return [i for i in self.infor_state()["ap_invoices"] if i["invoice_number"] in ours]

    def add_gl_account(self, dimension: int, account_id: str, description: str) -> None:
        add_gl_account(self.sandbox, self.tenant, dimension, account_id, description)

    @contextmanager
    def infor_answers_lost(self, rate: float, seed: int) -> Iterator[None]:
        """Infor commits some writes and the answer never comes back (a gateway 504)."""
        body = {
            "profile": "none",
            "seed": seed,
            "overrides": {"commit_then_timeout": rate},
            "systems": ["infor"],
        }
        httpx.put(f"{self.sandbox.url}/_sandbox/faults", json=body, timeout=30).raise_for_status()
        try:
            yield
        finally:
            self.sandbox.set_faults("none")


def add_gl_account(sandbox: SandboxServer, tenant: str, dimension: int, account_id: str, text: str) -> None:
    """Add an account to a tenant's Infor chart, as a finance user would in Infor."""
    simulator = sandbox.simulator("infor")
    with simulator._lock:  # no control route adds chart accounts yet
        data = simulator.tenant(tenant)
        data.gl_accounts[account_id] = {
            "dimension": dimension,
            "account_id": account_id,
            "description": text,
            "modified_date": data.today_iso,
        }
        data.changed("gl_accounts")


def expected_outcomes(
    procurify: dict[str, Any], product: str
) -> tuple[set[str], set[str], set[str], set[str]]:
    """From Procurify's own state: POs and bills that should land, and those to be flagged (the
    seed's first three name an unknown account code, vendor, department; SyteLine has no cost
    centres, so the third lands there)."""
    flagged_orders = {"PFY-1", "PFY-2"} | ({"PFY-3"} if product == "m3" else set())
    flagged_bills = {"bill/1", "bill/2"} | ({"bill/3"} if product == "m3" else set())
    orders = {f"PFY-{p['procurify_PO']}" for p in procurify["purchase_orders"] if p["state"] != PO_CANCELLED}
    bills = {f"bill/{b['id']}" for b in procurify["bills"] if b["status"] == BILL_APPROVED}
    return orders - flagged_orders, flagged_orders, bills - flagged_bills, flagged_bills


def procurify_state(sandbox: SandboxServer, tenant: str) -> dict[str, Any]:
    # An empty config change creates the domain (seeded) if no call has yet, and changes nothing else.
    httpx.put(
        f"{sandbox.url}/_sandbox/procurify/tenants/{tenant}/config", json={}, timeout=30
    ).raise_for_status()
    return sandbox.get_state("procurify")["tenants"][tenant]


def new_tenant(prefix: str) -> str:
    return f"PFY{prefix}{next(_numbers)}"
