"""Helpers for the Infor extract tests: what the simulator holds, and what an asset returned."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
from pydantic import BaseModel

from ml_connector_pipelines.integrations.frames import from_frame
from ml_connector_pipelines.sandbox.infor.m3 import m3_payee
from ml_connector_pipelines.systems.infor.models import (
    APInvoice,
    ARInvoice,
    Customer,
    GLAccount,
    PurchaseOrder,
    Supplier,
)
from ml_connector_pipelines_tests.conftest import TenantEnv

# asset name -> (simulator table, canonical model, sort key)
ENTITIES: dict[str, tuple[str, type[BaseModel], Callable[[dict[str, Any]], Any]]] = {
    "infor_suppliers": ("suppliers", Supplier, lambda r: r["supplier_id"]),
    "infor_customers": ("customers", Customer, lambda r: r["customer_id"]),
    "infor_ap_invoices": (
        "ap_invoices",
        APInvoice,
        lambda r: (r["division"], r["supplier_id"], r["invoice_number"], r["invoice_year"]),
    ),
    "infor_ar_invoices": (
        "ar_invoices",
        ARInvoice,
        lambda r: (r["division"], r["customer_id"], r["invoice_number"], r["invoice_year"]),
    ),
    "infor_purchase_orders": ("purchase_orders", PurchaseOrder, lambda r: r["po_number"]),
    "infor_gl_accounts": ("gl_accounts", GLAccount, lambda r: (r["dimension"], r["account_id"])),
}


def today() -> date:
    """The Infor simulator's clock: the real UTC date when a tenant is first seen."""
    return datetime.now(UTC).date()


def seeded_days() -> list[date]:
    """The ten modified dates the seed spreads records over."""
    return [today() - timedelta(days=back) for back in range(10)]


def held(state: dict[str, Any], asset_name: str, day: date, product: str) -> list[dict[str, Any]]:
    """The simulator's records for one entity and day, as canonical model dicts in key order."""
    table, model, key = ENTITIES[asset_name]
    records = [
        model.model_validate(m3_payee(raw) if product == "m3" and table == "suppliers" else raw).model_dump()
        for raw in state[table]
        if raw["modified_date"] == day.isoformat()
    ]
    if product == "syteline":
        # SyteLine has no facility on a PO, and its chart of accounts is one dimension.
        if table == "purchase_orders":
            records = [{**record, "facility": None} for record in records]
        if table == "gl_accounts":
            records = [record for record in records if record["dimension"] == 1]
    return sorted(records, key=key)


def extracted(frame: pd.DataFrame, asset_name: str) -> list[dict[str, Any]]:
    """An extract DataFrame back through `from_frame` to canonical model dicts, in key order."""
    _, model, key = ENTITIES[asset_name]
    return sorted((record.model_dump() for record in from_frame(frame, model)), key=key)


def patch_record(env: TenantEnv, table: str, key: str, **changes: Any) -> dict[str, Any]:
    """Change one record in the simulator (stamped modified today), as a user would in Infor."""
    response = httpx.patch(
        f"{env.sandbox.url}/_sandbox/infor/tenants/{env.name}/records/{table}/{key}",
        json=changes,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()
