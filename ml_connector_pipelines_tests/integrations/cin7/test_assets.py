"""The cin7_accounting job end to end: Infor sandbox -> Dagster assets (push factory) -> Cin7 sandbox."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.sandbox.cin7.simulator import sandbox_credentials
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.seed import ITEMS
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant
from ml_connector_pipelines_tests.systems.cin7.cin7_env import TEST_PER_MINUTE

FLOWS = ("cin7_suppliers", "cin7_purchases", "cin7_invoices", "cin7_chart_alignment")


def on_cin7(tenant: TenantEnv, **config: Any) -> dict[str, str]:
    """Give a tenant Cin7 credentials through `register_tenant`, as `tenants add` does."""
    credentials = sandbox_credentials(tenant.name)
    cin7 = {"base_url": f"{tenant.sandbox.url}/cin7/ExternalApi/v2", **credentials}
    register_tenant(
        tenant.connector,
        tenant.name,
        ionapi=sandbox_ionapi(tenant.sandbox.url, tenant.name),
        config={"cin7_calls_per_minute": TEST_PER_MINUTE, **config},
        cin7=cin7,
    )
    url = f"{tenant.sandbox.url}/_sandbox/cin7/accounts/{credentials['account_id']}/products"
    httpx.post(url, json={"products": [{"SKU": sku, "Name": name} for sku, name in ITEMS]}).raise_for_status()
    return credentials


def infor_records(tenant: TenantEnv, table: str) -> list[dict[str, Any]]:
    httpx.put(f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/config", json={}).raise_for_status()
    return tenant.infor_state()[table]


def busiest_day(records: list[dict[str, Any]]) -> date:
    return date.fromisoformat(Counter(r["modified_date"] for r in records).most_common(1)[0][0])


def metadata(result: Any) -> dict[str, dict[str, Any]]:
    return {
        event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
        if event.asset_key.path[0] == "cin7"
    }


@pytest.fixture
def tenant(cin7_sandbox: SandboxServer, connector: Any) -> TenantEnv:
    return make_tenant(cin7_sandbox, connector)


@pytest.mark.parametrize("exportmi", ["open", "locked"])
def test_cin7_accounting_pushes_a_tenant_day(tenant: TenantEnv, exportmi: str) -> None:
    """Also on an M3 tenant that locks EXPORTMI (issue 9): POs through PPS200MI/SearchHead,
    PPS001MI/GetHeadBasic and PPS200MI/LstLine, AP invoices through APS200MI; no EXPORTMI call."""
    locked = {"m3_exportmi": False} if exportmi == "locked" else {}
    credentials = on_cin7(tenant, cin7_chart_policy="create", cin7_invoice_match="supplier", **locked)
    orders = infor_records(tenant, "purchase_orders")
    url = f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/config"
    httpx.put(url, json={"exportmi": not locked}, timeout=30).raise_for_status()
    exported_before = tenant.infor_state()["m3_calls"].get("EXPORTMI/Select", 0)
    day = busiest_day(orders)
    result = tenant.run("cin7_accounting", day)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    meta = metadata(result)
    assert set(meta) == set(FLOWS)

    held = tenant.sandbox.get_state("cin7")["accounts"][credentials["account_id"]]
    day_suppliers = [s for s in infor_records(tenant, "suppliers") if s["modified_date"] == day.isoformat()]
    vendor_ids = Counter(s["AdditionalAttribute1"] for s in held["suppliers"])
    assert set(vendor_ids.values()) == {1}  # no duplicates
    # Every supplier of the day is in Cin7, or flagged because another vendor there has its name
    # (the seed repeats a few names; which ones depends on the tenant name).
    ledger = {e.source_id: e for e in tenant.connector.state.ledger.entries(tenant.name, "cin7_suppliers")}
    for supplier in day_suppliers:
        entry = ledger[supplier["supplier_id"]]
        if supplier["supplier_id"] not in vendor_ids:
            assert entry.status == "flagged" and "has the same name but vendor id" in (entry.reason or "")
    # Each PO of the day is one purchase whose supplier is the PO's vendor (synced on the spot if needed).
    day_orders = [o for o in orders if o["modified_date"] == day.isoformat() and o["status"] == "open"]
    assert day_orders and day_suppliers
    by_note = {p["Note"]: p for p in held["purchases"]}
    assert len(by_note) == len(held["purchases"]) == len(day_orders)
    cin7_vendor = {s["ID"]: s["AdditionalAttribute1"] for s in held["suppliers"]}
    for order in day_orders:
        purchase = by_note[f"Infor PO {order['po_number']}"]
        assert cin7_vendor[purchase["SupplierID"]] == order["supplier_id"]
        assert [line["SKU"] for line in purchase["Order"]["Lines"]] == [
            line["item_number"] for line in order["lines"]
        ]
    # Invoices landed only on purchases of their own supplier.
    invoices = {i["invoice_number"]: i for i in infor_records(tenant, "ap_invoices")}
    for purchase in held["purchases"]:
        if purchase["Invoice"]["Status"] == "AUTHORISED":
            invoice = invoices[purchase["Invoice"]["InvoiceNumber"]]
            assert invoice["supplier_id"] == cin7_vendor[purchase["SupplierID"]]
    # The chart: every dimension-1 Infor account of the day is now in Cin7 under its code.
    day_gl = [g for g in infor_records(tenant, "gl_accounts") if g["modified_date"] == day.isoformat()]
    chart = {a["Code"] for a in held["chart"]}
    assert {g["account_id"] for g in day_gl if g["dimension"] == 1} <= chart
    alignment = meta["cin7_chart_alignment"]["alignment"]
    assert {row.data["outcome"] for row in alignment.records} <= {"created", "matching", "differing"}
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["cin7_suppliers_no_failed_records"].passed
    assert checks["cin7_purchases_no_failed_records"].passed

    again = tenant.run("cin7_accounting", day)
    assert again.success
    assert len(tenant.sandbox.get_state("cin7")["accounts"][credentials["account_id"]]["purchases"]) == len(
        day_orders
    )
    assert metadata(again)["cin7_purchases"]["created"] == 0
    calls = tenant.infor_state()["m3_calls"]
    if locked:
        assert calls.get("EXPORTMI/Select", 0) == exported_before
        assert calls.get("PPS200MI/SearchHead") and calls.get("APS200MI/SearchSupInvoic")
    else:
        assert calls.get("EXPORTMI/Select", 0) > exported_before


def test_tenant_without_cin7_is_skipped_with_the_reason(tenant: TenantEnv) -> None:
    day = busiest_day(infor_records(tenant, "purchase_orders"))
    result = tenant.run("cin7_accounting", day)
    assert result.success
    meta = metadata(result)
    assert set(meta) == set(FLOWS)
    assert all(m["configured"] is False and "no cin7 credentials" in m["reason"] for m in meta.values())


def test_cin7_accounting_under_faults_leaves_no_duplicates(tenant: TenantEnv) -> None:
    from ml_connector_pipelines_tests.systems.cin7.cin7_env import set_rate_limit

    from .test_faults import FAULTS

    credentials = on_cin7(tenant, cin7_chart_policy="create")
    orders = infor_records(tenant, "purchase_orders")
    day = busiest_day(orders)
    httpx.put(f"{tenant.sandbox.url}/_sandbox/faults", json=FAULTS, timeout=30).raise_for_status()
    set_rate_limit(tenant.sandbox, per_minute=25, window_seconds=1.0)
    try:
        for _ in range(6):  # the failed-records check fails a run; the next run retries those records
            result = tenant.run("cin7_accounting", day)
            entries = [e for flow in FLOWS for e in tenant.connector.state.ledger.entries(tenant.name, flow)]
            if result.success and all(e.status in ("done", "flagged") for e in entries):
                break
        injected = httpx.get(f"{tenant.sandbox.url}/_sandbox/faults", timeout=30).json()["injected"]
    finally:
        tenant.sandbox.set_faults("none")
        set_rate_limit(tenant.sandbox, per_minute=TEST_PER_MINUTE, window_seconds=60)
    assert injected.get("commit_then_timeout", 0) > 0 and injected.get("server_error", 0) > 0
    assert result.success
    assert all(e.status in ("done", "flagged") for e in entries)
    assert all(e.reason for e in entries if e.status == "flagged")
    held = tenant.sandbox.get_state("cin7")["accounts"][credentials["account_id"]]
    assert set(Counter(s["AdditionalAttribute1"] for s in held["suppliers"]).values()) == {1}
    day_orders = [o for o in orders if o["modified_date"] == day.isoformat() and o["status"] == "open"]
    assert Counter(p["Note"] for p in held["purchases"]) == Counter(
        {f"Infor PO {o['po_number']}": 1 for o in day_orders}
    )
