"""Extracts over real HTTP against the Infor simulator, for an M3 and a SyteLine tenant.

Each extract for a date must return exactly the records the simulator holds for that tenant and day,
across many small pages, through token expiry, revocation and 429 storms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from ml_connector_pipelines.core.errors import HttpError
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.ido import syteline_payee
from ml_connector_pipelines.sandbox.infor.m3 import m3_payee
from ml_connector_pipelines.systems.infor.adapter import open_adapter
from ml_connector_pipelines.systems.infor.models import (
    APInvoice,
    ARInvoice,
    Customer,
    GLAccount,
    NewPurchaseOrder,
    PurchaseOrder,
    PurchaseOrderLine,
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


def payee(supplier: dict[str, Any], product: str) -> dict[str, Any]:
    """A seeded supplier as the product can hold it."""
    return m3_payee(supplier) if product == "m3" else syteline_payee(supplier)


def held(state: dict[str, Any], entity: str, day: date, product: str) -> list[BaseModel]:
    """What the simulator holds for one entity and day, as canonical models, in key order."""
    model, key = ENTITIES[entity]
    records = [
        model.model_validate(payee(raw, product) if entity == "suppliers" else raw)
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


@pytest.mark.parametrize("entity", ["suppliers", "gl_accounts"])
def test_a_window_of_days_reads_what_its_days_read(
    server: SandboxServer, product: str, tenant: str, entity: str
) -> None:
    """The lookback read (Procurify's reference alignment): the days from first to last in one
    window, the same records as a read per day, with each bulk read made once for the window."""
    days = window()[:7]
    first, last = days[-1], days[0]
    with open_for(server, tenant, product, page_size=PAGE_SIZE) as adapter:
        per_day = sorted(
            (record for day in days for record in extracted(adapter, entity, day)), key=ENTITIES[entity][1]
        )
        before = tenant_state(server, tenant).get("m3_calls", {})
        windowed = list(getattr(adapter, f"{entity}_changed")(first, last))
        after = tenant_state(server, tenant).get("m3_calls", {})
    assert len(per_day) > PAGE_SIZE and sorted(windowed, key=ENTITIES[entity][1]) == per_day
    assert all(first <= record.modified_date <= last for record in windowed)
    if product == "m3":
        calls = {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}
        assert "EXPORTMI/Select" in calls
        if entity == "suppliers":
            assert calls["CRS692MI/LstByType"] == calls["CRS691MI/LstByNumber"] == 1


def test_suppliers_carry_their_bank_accounts(server: SandboxServer, product: str, tenant: str) -> None:
    with open_for(server, tenant, product) as adapter:
        suppliers = [supplier for day in window() for supplier in adapter.suppliers(day)]
    kinds = {supplier.bank_account.kind for supplier in suppliers if supplier.bank_account}
    assert kinds == {"iban", "sort_code", "aba", "email", "local"}
    assert len({supplier.currency for supplier in suppliers}) >= 12
    for supplier in suppliers:
        account = supplier.bank_account
        if account and account.kind == "aba":
            assert account.aba_routing and account.account_number and account.sort_code is None
        if account and account.kind == "sort_code":
            assert account.sort_code and account.account_number and account.aba_routing is None


SUPPLIERS_IN_BULK = 400  # ~40 changed a day, several of them USD payees


def _supplier_extract(
    server: SandboxServer, tenant: str, page_size: int, **config: Any
) -> tuple[list[Any], dict[str, int]]:
    """The busiest day's suppliers and the M3 calls the extract cost, by program/transaction."""
    with open_for(server, tenant, "m3", page_size=page_size, **config) as adapter:
        list(adapter.gl_accounts(window()[0]))
        day = busiest_day(tenant_state(server, tenant), "suppliers")
        before = tenant_state(server, tenant)["m3_calls"]
        suppliers = list(adapter.suppliers(day))
        after = tenant_state(server, tenant)["m3_calls"]
    calls = {
        name: count - before.get(name, 0) for name, count in after.items() if count != before.get(name, 0)
    }
    return suppliers, calls


def test_m3_supplier_bank_details_are_read_in_bulk(server: SandboxServer, one_tenant: str) -> None:
    """Two bank reads per extract (CRS692MI/LstByType + CRS691MI/LstByNumber), not one per supplier."""
    control(server, "PUT", f"tenants/{one_tenant}/seed", suppliers=SUPPLIERS_IN_BULK)
    suppliers, calls = _supplier_extract(server, one_tenant, page_size=500)
    assert suppliers and any(supplier.bank_account and supplier.bank_account.bic for supplier in suppliers)
    assert calls.get("CRS692MI/LstByType") == 1 and calls.get("CRS691MI/LstByNumber") == 1
    assert "CRS692MI/LstByAccHolder" not in calls and "CRS692MI/GetBankAccount" not in calls
    # Email payees' addresses come from the e-mail register in one read, not a call per payee.
    assert any(s.bank_account and s.bank_account.kind == "email" for s in suppliers)
    assert calls.get("MDBREADMI/LstCEMAIL00") == 1 and "CRS620MI/LstSupplierRef" not in calls
    # USD payees' addresses (m3_payee_address_currencies) come from the supplier address file, one
    # EXPORTMI read per page of suppliers, not a CRS620MI/LstAddresses per payee.
    usd = [
        s
        for s in suppliers
        if s.bank_account and s.bank_account.kind != "email" and s.bank_account.currency == "USD"
    ]
    assert len(usd) > 1 and all(s.bank_account.address_line and s.bank_account.city for s in usd)
    assert "CRS620MI/LstAddresses" not in calls
    assert calls["EXPORTMI/Select"] == 2  # the day's suppliers, and their addresses
    print(f"M3 supplier extract: {sum(calls.values())} MI calls for {len(suppliers)} suppliers")


def test_m3_payee_addresses_read_in_bulk_or_one_by_one_are_the_same(
    server: SandboxServer, one_tenant: str
) -> None:
    control(server, "PUT", f"tenants/{one_tenant}/seed", suppliers=SUPPLIERS_IN_BULK)
    # Pages of 50 suppliers: the address file is still read once for the extract.
    bulk, bulk_calls = _supplier_extract(server, one_tenant, page_size=50)
    each, each_calls = _supplier_extract(server, one_tenant, page_size=50, m3_payee_address_table="")
    # A tenant whose M3 has no such table: EXPORTMI refuses it, and the payees are read one by one.
    missing, missing_calls = _supplier_extract(
        server, one_tenant, page_size=50, m3_payee_address_table="NOSUCH"
    )
    usd = sum(
        1
        for s in each
        if s.bank_account and s.bank_account.kind != "email" and s.bank_account.currency == "USD"
    )
    assert bulk == each == missing
    assert each_calls["CRS620MI/LstAddresses"] == missing_calls["CRS620MI/LstAddresses"] == usd
    assert "CRS620MI/LstAddresses" not in bulk_calls


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


@pytest.fixture
def exportmi_refused(server: SandboxServer, one_tenant: str) -> Iterator[Callable[[], None]]:
    """Call it to make the shared tenant refuse EXPORTMI; it is open again after the test, whatever
    the outcome, so the module's other tests still read through EXPORTMI."""
    yield lambda: control(server, "PUT", f"tenants/{one_tenant}/config", exportmi=False)
    control(server, "PUT", f"tenants/{one_tenant}/config", exportmi=True)


@pytest.mark.parametrize("configured", [True, False])
def test_m3_tenant_with_exportmi_locked_gives_the_same_records(
    server: SandboxServer, one_tenant: str, configured: bool, exportmi_refused: Callable[[], None]
) -> None:
    """Every extract without EXPORTMI, whether the tenant config says it is locked or M3 refuses it:
    suppliers, customers, AR invoices and accounting identities through CRS620MI / CRS610MI /
    ARS200MI / CRS630MI list transactions, AP invoices and POs through the Enterprise Search
    transactions and their gets; one supplier, one customer and a PO by reference likewise."""
    # The refusal switches every read the same way (_changed_on): there, three entities suffice.
    entities = tuple(ENTITIES) if configured else ("suppliers", "customers", "ap_invoices", "purchase_orders")
    days = window()[:2]  # two days: the locked AR read pages the whole ledger per day
    with open_for(server, one_tenant, "m3", page_size=PAGE_SIZE) as opened:
        through_exportmi = {
            (entity, day): extracted(opened, entity, day) for entity in entities for day in days
        }
    exportmi_refused()
    before = tenant_state(server, one_tenant)["m3_calls"]
    config = {"m3_exportmi": False} if configured else {}
    with open_for(server, one_tenant, "m3", page_size=PAGE_SIZE, **config) as locked:
        # The tenant's request budget is not what this test checks: its ~450 calls in pages of 3
        # would wait a minute at the default 7.5/s.
        locked.http.bucket = None
        for entity in entities:
            assert any(through_exportmi[(entity, day)] for day in days), f"the seed holds {entity}"
        for (entity, day), expected in through_exportmi.items():
            assert extracted(locked, entity, day) == expected, f"{entity} on {day}"
        # A window of days is read a day at a time, with the bank details read once.
        key = ENTITIES["suppliers"][1]
        both = sorted((s for day in days for s in through_exportmi[("suppliers", day)]), key=key)
        assert sorted(locked.suppliers_changed(min(days), max(days)), key=key) == both
        # A PO created without EXPORTMI is found by its reference (Lucene characters in it), once.
        seeded = tenant_state(server, one_tenant)["purchase_orders"][0]
        order = NewPurchaseOrder(
            supplier_id=seeded["supplier_id"],
            order_date=days[0],
            currency=seeded["currency"],
            facility="A01",
            warehouse="100",
            external_ref="PROC-7 (a/b)",
            lines=(PurchaseOrderLine(line_number=1, item_number="ITEM-1", quantity=2, unit_price=5),),
        )
        assert locked.find_purchase_order(order.external_ref) is None
        created = locked.create_purchase_order(order)
        assert locked.find_purchase_order(order.external_ref) == created
        assert locked.create_purchase_order(order) == created
        assert locked.find_purchase_order("PROC-7") is None
        held_orders = tenant_state(server, one_tenant)["purchase_orders"]
        assert [o["po_number"] for o in held_orders if o.get("external_ref") == order.external_ref] == [
            created
        ]
        some = next(record for day in days for record in through_exportmi[("customers", day)])
        assert locked.customer(some.customer_id) == some
        assert locked.customer("NO-SUCH-CUSTOMER") is None
        supplier = next(record for day in days for record in through_exportmi[("suppliers", day)])
        # CRS620MI/GetBasicData has no change date: everything but the modified date is the same.
        assert locked.supplier(supplier.supplier_id) == supplier.model_copy(
            update={"modified_date": locked.supplier(supplier.supplier_id).modified_date}
        )
        assert locked.supplier("NO-SUCH-SUPPLIER") is None
    calls = tenant_state(server, one_tenant)["m3_calls"]
    new = {name: count - before.get(name, 0) for name, count in calls.items()}
    assert new.get("CRS620MI/LstSuppliers") and new.get("CRS610MI/GetBasicData")
    if configured:
        assert new.get("CRS610MI/LstByNumber") and new.get("CRS630MI/LstAccountID")
        assert new.get("ARS200MI/LstInvByDivi") and new.get("ARS200MI/GetInvTotInfo")
    assert new.get("APS200MI/SearchSupInvoic") and new.get("APS200MI/GetInvoice")
    assert new.get("PPS200MI/SearchHead") and new.get("PPS001MI/GetHeadBasic") and new.get("PPS200MI/LstLine")
    assert new.get("EXPORTMI/Select", 0) == (0 if configured else 1)  # refused once, then not asked


def test_m3_account_kinds_from_the_real_crs692mi_fields() -> None:
    """A domestic account outside GB/US is local (bank/branch codes from BKNO/BBRN); a sort code
    paid in GBP stays a sort code wherever the payee sits; the address is the supplier's."""
    from ml_connector_pipelines.systems.infor.m3_adapter import m3_bank_account

    canadian = m3_bank_account(
        {
            "BANA": "Maple Ltd",
            "CUCD": "CAD",
            "BKNO": "003",
            "BBRN": "04841",
            "FIAN": "1234567",
            "BAF1": "CHECKING",
        },
        supplier_currency="CAD",
        country="CA",
        bic=None,
    )
    assert (canadian.kind, canadian.bank_code, canadian.branch_code) == ("local", "003", "04841")
    assert canadian.sort_code is None and canadian.account_type == "CHECKING"
    irish_gbp = m3_bank_account(
        {"BANA": "Shamrock Ltd", "CUCD": "GBP", "BRNO": "200000", "FIAN": "55779911"},
        supplier_currency="GBP",
        country="IE",
        bic=None,
        address={"ADR1": "1 Quay St", "TOWN": "Dublin", "PONO": "D02", "ECAR": ""},
    )
    assert (irish_gbp.kind, irish_gbp.sort_code, irish_gbp.bank_code) == ("sort_code", "200000", None)
    assert (irish_gbp.address_line, irish_gbp.city, irish_gbp.post_code) == ("1 Quay St", "Dublin", "D02")


def test_m3_locked_ar_invoices_by_invoice_date(
    server: SandboxServer, one_tenant: str, exportmi_refused: Callable[[], None]
) -> None:
    """m3_locked_ar_invoice_date=invoice_date: the invoices dated the day (one GetInvTotInfo each)."""
    exportmi_refused()
    config = {"m3_exportmi": False, "m3_locked_ar_invoice_date": "invoice_date"}
    with open_for(server, one_tenant, "m3", page_size=PAGE_SIZE, **config) as locked:
        locked.http.bucket = None  # the request budget is not what this test checks
        state = tenant_state(server, one_tenant)
        days = sorted({invoice["invoice_date"] for invoice in state["ar_invoices"]})[-3:]
        for day in days:
            before = tenant_state(server, one_tenant)["m3_calls"].get("ARS200MI/GetInvTotInfo", 0)
            got = sorted(invoice.invoice_key for invoice in locked.ar_invoices(date.fromisoformat(day)))
            expected = sorted(
                f"{i['division']}/{i['customer_id']}/{i['invoice_number']}/{i['invoice_year']}"
                for i in state["ar_invoices"]
                if i["invoice_date"] == day
            )
            assert got == expected and got, day
            calls = tenant_state(server, one_tenant)["m3_calls"].get("ARS200MI/GetInvTotInfo", 0) - before
            assert calls == len(expected)


def test_a_search_query_template_with_an_unknown_placeholder_is_refused_naming_the_key() -> None:
    from ml_connector_pipelines.core.errors import ConnectorError
    from ml_connector_pipelines.systems.infor.m3_adapter import search_query

    assert search_query({}, "m3_po_search") == "LMDT:{date}"
    assert search_query({"m3_po_search": "LMDT:{date} AND FACI:A01"}, "m3_po_search").endswith("A01")
    with pytest.raises(
        ConnectorError, match=r"m3_po_search 'PUNO:\{number\}': only the placeholders \{date\}"
    ):
        search_query({"m3_po_search": "PUNO:{number}"}, "m3_po_search")
