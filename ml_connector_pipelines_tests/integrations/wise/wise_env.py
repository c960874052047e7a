"""Helpers for the Infor -> Wise tests: run the daily pipeline, read what Wise and the ledger hold."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.core.ledger import LedgerEntry
from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.integrations.wise.assets import wise_quotes, wise_recipients, wise_transfers
from ml_connector_pipelines.systems.wise.client import WiseClient
from ml_connector_pipelines_tests.conftest import TenantEnv

# The two extracts the Wise assets read, then the Wise assets in dependency order.
PIPELINE = [
    *(a for a in infor_extracts if a.key.to_user_string() in ("infor_suppliers", "infor_ap_invoices")),
    wise_recipients,
    wise_quotes,
    wise_transfers,
]
WISE_ASSETS = ("wise_recipients", "wise_quotes", "wise_transfers")


def tenant_name(request: pytest.FixtureRequest) -> str:
    """A tenant name fixed per test: the sandbox seeds its data from the name, so the data is too."""
    return "W" + re.sub(r"[^A-Za-z0-9]", "", request.node.name)[-40:].upper()


def run_day(tenant: TenantEnv, day: date) -> dict[str, dict[str, Any]]:
    """Materialize the Infor extracts and the daily Wise assets; metadata per Wise asset."""
    result = tenant.materialize(PIPELINE, day)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return metadata(result)


def metadata(result: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        name = event.asset_key.path[-1]  # the flow name: pair assets are keyed [pair, flow]
        if name.startswith("wise_"):
            found[name] = {key: value.value for key, value in event.materialization.metadata.items()}
    return found


def wise_user(tenant: TenantEnv) -> dict[str, Any]:
    """Everything the Wise simulator holds for this tenant's token."""
    with WiseClient(f"{tenant.sandbox.url}/wise", token=tenant.wise_token) as client:
        profile_id = client.business_profile_id()
    users = tenant.sandbox.get_state("wise")["users"].values()
    return next(user for user in users if any(p["id"] == profile_id for p in user["profiles"]))


def ledger(tenant: TenantEnv, flow: str) -> dict[str, LedgerEntry]:
    return {entry.source_id: entry for entry in tenant.connector.state.ledger.entries(tenant.name, flow)}


def infor_records(tenant: TenantEnv, table: str, day: date | None = None) -> list[dict[str, Any]]:
    # An empty config change seeds the sandbox tenant if nothing has called Infor for it yet.
    httpx.put(f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/config", json={}).raise_for_status()
    records = tenant.infor_state()[table]
    return [r for r in records if day is None or r["modified_date"] == day.isoformat()]


def invoice_key(record: dict[str, Any]) -> str:
    return f"{record['division']}/{record['supplier_id']}/{record['invoice_number']}/{record['invoice_year']}"


def patch_infor(tenant: TenantEnv, table: str, key: str, changes: dict[str, Any]) -> dict[str, Any]:
    url = f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/records/{table}/{key}"
    response = httpx.patch(url, json=changes, timeout=30)
    response.raise_for_status()
    return response.json()


def audit(tenant: TenantEnv, flow: str) -> list[Any]:
    return tenant.connector.state.audit.history(tenant.name, flow)
