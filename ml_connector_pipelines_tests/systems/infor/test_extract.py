"""Extracts over real HTTP against the Infor simulator, for an M3 and a SyteLine tenant.

Each extract for a date must return exactly the records the simulator holds for that tenant and day,
across many small pages, through token expiry, revocation and 429 storms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from ml_connector_pipelines.core.errors import ConnectorError, HttpError
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.m3 import m3_payee
from ml_connector_pipelines.systems.infor.adapter import open_adapter
from ml_connector_pipelines.systems.infor.models import (
    APInvoice,
    ARInvoice,
    Customer,
    GLAccount,
    PurchaseOrder,
    Supplier,
)

from .conftest import control, ionapi_for, open_for, tenant_state, window

PAGE_SIZE = 3

ENTITIES: dict[str, tuple[type[BaseModel], Callable[[Any], Any]]] = {
    "suppliers": (Supplier, lambda r: r.supplier_id),
    "customers": (Customer, lambda r: r.customer_id),
    "ap_invoices": (APInvoice, lambda r: r.invoice_key),
    "ar_invoices": (ARInvoice, lambda r: r.invoice_key),
    "purchase_orders": (PurchaseOrder, lambda r: r.po_number),
    "gl_accounts": (GLAccount, lambda r: (r.dimension, r.account_id)),
}


def held(state: dict[str, Any], entity: str, day: date, product: str) -> list[BaseModel]:
    """What the simulator holds for one entity and day, as canonical models, in key order."""
    model, key = ENTITIES[entity]
    records = [
        model.model_validate(m3_payee(raw) if product == "m3" and entity == "suppliers" else raw)
        for raw in state[entity]
        if raw["modified_date"] == day.isoformat()
    ]
    if product == "syteline":
        # SyteLine has no facility on a PO, and its chart of accounts is one dimension.
        if entity == "purchase_orders":
            records = [record.model_copy(update={"facility": None}) for record in records]
        if entity == "gl_accounts":
            records = [record for record in records if record.dimension == 1]
    return sorted(records, key=key)


def extracted(adapter: Any, entity: str, day: date) -> list[BaseModel]:
    records = list(getattr(adapter, entity)(day))
    keys = [ENTITIES[entity][1](record) for record in records]
    assert len(keys) == len(set(keys)), f"{entity} {day}: a record came twice"
    return sorted(records, key=ENTITIES[entity][1])


def busiest_day(state: dict[str, Any], entity: str) -> date:
    counts: dict[str, int] = {}
    for raw in state[entity]:
        counts[raw["modified_date"]] = counts.get(raw["modified_date"], 0) + 1
    return date.fromisoformat(max(counts, key=lambda day: counts[day]))


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_each_extract_for_a_date_returns_exactly_what_the_tenant_holds(
    server: SandboxServer, product: str, tenant: str, entity: str
) -> None:
    with open_for(server, tenant, product, page_size=PAGE_SIZE) as adapter:
        list(adapter.gl_accounts(window()[0]))  # the first call creates and seeds the tenant
        state = tenant_state(server, tenant)
        assert state[entity], "the seed holds records of every kind"
        for day in window():
            assert extracted(adapter, entity, day) == held(state, entity, day, product), f"{entity} on {day}"
        # Every seeded record falls in the window, and at least one day spans several pages.
        assert {raw["modified_date"] for raw in state[entity]} <= {day.isoformat() for day in window()}
        assert len(held(state, entity, busiest_day(state, entity), product)) > PAGE_SIZE
        assert adapter.requests_made > 10


def test_suppliers_carry_their_bank_accounts(server: SandboxServer, product: str, tenant: str) -> None:
    with open_for(server, tenant, product) as adapter:
        suppliers = [supplier for day in window() for supplier in adapter.suppliers(day)]
    kinds = {supplier.bank_account.kind for supplier in suppliers if supplier.bank_account}
    assert kinds == {"iban", "sort_code", "aba", "email"}
    assert len({supplier.currency for supplier in suppliers}) >= 12
    for supplier in suppliers:
        account = supplier.bank_account
        if account and account.kind == "aba":
            assert account.aba_routing and account.account_number and account.sort_code is None
        if account and account.kind == "sort_code":
            assert account.sort_code and account.account_number and account.aba_routing is None


def test_m3_supplier_bank_details_are_read_in_bulk(server: SandboxServer, one_tenant: str) -> None:
    """Two bank reads per extract (CRS692MI/LstByType + CRS691MI/LstByNumber), not one per supplier."""
    with open_for(server, one_tenant, "m3", page_size=50) as adapter:
        list(adapter.gl_accounts(window()[0]))
        day = busiest_day(tenant_state(server, one_tenant), "suppliers")
        before = tenant_state(server, one_tenant)["m3_calls"]
        suppliers = list(adapter.suppliers(day))
        after = tenant_state(server, one_tenant)["m3_calls"]
    calls = {
        name: count - before.get(name, 0) for name, count in after.items() if count != before.get(name, 0)
    }
    assert suppliers and any(supplier.bank_account and supplier.bank_account.bic for supplier in suppliers)
    assert calls.get("CRS692MI/LstByType") == 1 and calls.get("CRS691MI/LstByNumber") == 1
    assert "CRS692MI/LstByAccHolder" not in calls and "CRS692MI/GetBankAccount" not in calls
    # Only suppliers without a bank account (email payees) cost a call: their supplier reference.
    no_account = [s for s in suppliers if s.bank_account is None or s.bank_account.kind == "email"]
    assert calls.get("CRS620MI/LstSupplierRef", 0) == len(no_account)
    print(f"M3 supplier extract: {sum(calls.values())} MI calls for {len(suppliers)} suppliers")


@pytest.mark.parametrize("issue_refresh_token", [True, False])
def test_token_expiry_mid_extract(
    server: SandboxServer, product: str, tenant: str, issue_refresh_token: bool
) -> None:
    with open_for(server, tenant, product, page_size=2) as adapter:
        day = window()[0]
        list(adapter.gl_accounts(day))
        control(
            server,
            "PUT",
            f"tenants/{tenant}/auth",
            token_lifetime=1,
            issue_refresh_token=issue_refresh_token,
        )
        adapter.auth.reauthenticate()  # start from a token with the new 1 s lifetime
        state = tenant_state(server, tenant)
        issued_before = state["tokens_issued"]
        day = busiest_day(state, "customers")
        pages = adapter.customers(day)
        first = next(pages)
        time.sleep(1.2)  # the token expires between two pages
        got = sorted([first, *pages], key=lambda c: c.customer_id)
        assert got == held(state, "customers", day, product)
        assert tenant_state(server, tenant)["tokens_issued"] > issued_before


def test_revoked_token_reauthenticates_once(server: SandboxServer, product: str, tenant: str) -> None:
    with open_for(server, tenant, product, page_size=PAGE_SIZE) as adapter:
        day = window()[1]
        list(adapter.customers(day))
        issued_before = tenant_state(server, tenant)["tokens_issued"]
        control(server, "POST", f"tenants/{tenant}/revoke_tokens")
        assert extracted(adapter, "customers", day) == held(
            tenant_state(server, tenant), "customers", day, product
        )
        assert tenant_state(server, tenant)["tokens_issued"] > issued_before


@pytest.mark.parametrize("client_auth", ["form", "basic"])
def test_close_revokes_the_grant(server: SandboxServer, product: str, tenant: str, client_auth: str) -> None:
    adapter = open_for(server, tenant, product, client_auth=client_auth)
    adapter.ping()
    bearer = adapter.auth.headers()["Authorization"]
    probe = f"{ionapi_for(server, tenant).api_base}/M3/m3api-rest/v2/execute/CRS692MI/LstByAccHolder"
    assert (
        httpx.get(probe, params={"BKTP": "2", "ACHO": "X"}, headers={"Authorization": bearer}).status_code
        == 200
    )
    adapter.close()
    assert (
        httpx.get(probe, params={"BKTP": "2", "ACHO": "X"}, headers={"Authorization": bearer}).status_code
        == 401
    )


def test_wrong_service_account_secret_fails_without_leaking_it(
    server: SandboxServer, one_tenant: str
) -> None:
    wrong = replace(ionapi_for(server, one_tenant), service_account_secret="not-the-secret-xyz")
    with open_adapter(wrong, "m3", {}, allow_loopback_http=True) as adapter:
        with pytest.raises(HttpError) as caught:
            adapter.ping()
    assert caught.value.status in (400, 401)
    assert "not-the-secret-xyz" not in str(caught.value)


def test_429_storm_is_ridden_out(server: SandboxServer, product: str, tenant: str) -> None:
    with open_for(server, tenant, product, page_size=PAGE_SIZE) as adapter:
        list(adapter.gl_accounts(window()[0]))
        state = tenant_state(server, tenant)
        day = busiest_day(state, "ap_invoices")
        server.set_faults("storm", seed=5, systems=["infor"])
        try:
            got = extracted(adapter, "ap_invoices", day)
            injected = httpx.get(f"{server.url}/_sandbox/faults").json()["injected"]
        finally:
            server.set_faults("none")
    assert got == held(state, "ap_invoices", day, product)
    assert injected.get("rate_limit", 0) + injected.get("rate_limit_no_header", 0) > 0


def test_m3_keyset_paging_restarts_inside_a_shared_key(server: SandboxServer, one_tenant: str) -> None:
    """Paged on a key many rows share (supplier of an invoice): no row lost or repeated at page edges,
    even when one supplier's invoices fill a whole page."""
    with open_for(server, one_tenant, "m3") as adapter:
        list(adapter.gl_accounts(window()[0]))
        held = sorted(
            (raw["supplier_id"], raw["invoice_number"], str(raw["invoice_year"]))
            for raw in tenant_state(server, one_tenant)["ap_invoices"]
        )
        rows = adapter.m3.select(
            "FPLEDG", ("EPSUNO", "EPSINO", "EPINYR"), key="EPSUNO", where=["EPTRCD=40"], page_size=5
        )
        got = [(row["EPSUNO"], row["EPSINO"], row["EPINYR"]) for row in rows]
    assert sorted(got) == held
    assert len(got) == len(set(got))
    suppliers = [supplier for supplier, _, _ in held]
    assert max(suppliers.count(supplier) for supplier in suppliers) >= 5


@pytest.mark.parametrize("configured", [True, False])
def test_m3_tenant_with_exportmi_locked_gives_the_same_records(
    server: SandboxServer, one_tenant: str, configured: bool
) -> None:
    """Suppliers, customers and accounting identities through CRS620MI / CRS610MI / CRS630MI list
    transactions, whether the tenant config says EXPORTMI is locked or M3 refuses it."""
    entities = ("suppliers", "customers", "gl_accounts")
    days = window()[:4]
    with open_for(server, one_tenant, "m3", page_size=PAGE_SIZE) as opened:
        through_exportmi = {
            (entity, day): extracted(opened, entity, day) for entity in entities for day in days
        }
    control(server, "PUT", f"tenants/{one_tenant}/config", exportmi=False)
    before = tenant_state(server, one_tenant)["m3_calls"]
    config = {"m3_exportmi": False} if configured else {}
    with open_for(server, one_tenant, "m3", page_size=PAGE_SIZE, **config) as locked:
        for entity in entities:
            assert any(through_exportmi[(entity, day)] for day in days), f"the seed holds {entity}"
        for (entity, day), expected in through_exportmi.items():
            assert extracted(locked, entity, day) == expected, f"{entity} on {day}"
        with pytest.raises(ConnectorError, match="needs EXPORTMI"):
            list(locked.ap_invoices(days[0]))
        some = next(record for day in days for record in through_exportmi[("customers", day)])
        assert locked.customer(some.customer_id) == some
        assert locked.customer("NO-SUCH-CUSTOMER") is None
    calls = tenant_state(server, one_tenant)["m3_calls"]
    new = {name: count - before.get(name, 0) for name, count in calls.items()}
    assert new.get("CRS620MI/LstSuppliers") and new.get("CRS610MI/LstByNumber")
    assert new.get("CRS630MI/LstAccountID")
    assert new.get("EXPORTMI/Select", 0) == (0 if configured else 1)  # refused once, then not asked
