"""Infor -> Cin7 Core assets (key prefix and group ``cin7``, job ``cin7_accounting``).

- ``cin7_suppliers``: Infor suppliers -> Cin7 suppliers (vendor id, else name; linked or created).
- ``cin7_purchases``: Infor POs -> Cin7 purchases (header + order lines).
- ``cin7_invoices``: Infor AP invoices -> the invoice of the purchase they belong to; runs
  after ``cin7_purchases`` of the same partition. (The push factory takes one record source per
  asset, so "POs, then AP invoices onto the purchase" is two assets.)
- ``cin7_chart_alignment``: Infor GL accounts vs Cin7's chart: the report as a table in the
  materialization, and the check ``cin7_chart_alignment_no_differences`` (WARN) listing accounts
  that differ or are missing.

Every asset of a tenant without Cin7 credentials materializes as skipped, with the reason.
"""

from typing import Any

import dagster as dg
import pandas as pd

from ...systems.infor.models import APInvoice, GLAccount, PurchaseOrder, Supplier
from ..frames import from_frame
from ..kit.push import PushPair, RecordSource
from ..metadata import log_counts, push_session, sync_metadata
from ..partitions import TENANT_DAY, tenant_day
from ..resources import StateResource, SystemResource, not_configured
from .mapping import Cin7Settings
from .pushers import (
    CHART,
    INVOICES,
    PURCHASES,
    SUPPLIERS,
    ChartAlignment,
    ChartRow,
    InvoiceSync,
    PurchaseSync,
    SupplierSync,
)

PAIR = "cin7"
TARGET = "cin7"
CIN7 = PushPair(PAIR, TARGET, open_client=lambda resource, tenant: resource.open(tenant))

cin7_suppliers = CIN7.asset(
    SUPPLIERS,
    RecordSource("infor_suppliers", Supplier, lambda supplier: supplier.supplier_id),
    SupplierSync.of,
    "Infor suppliers as Cin7 suppliers: matched by vendor id, else by name (linked), else created.",
)

cin7_purchases = CIN7.asset(
    PURCHASES,
    RecordSource("infor_purchase_orders", PurchaseOrder, lambda order: order.po_number),
    PurchaseSync.of,
    "Infor purchase orders as Cin7 purchases (header + order lines); a lost create is found with "
    "purchaseList search before any second one.",
    deps=[cin7_suppliers.key],
    reads_infor=True,
)

cin7_invoices = CIN7.asset(
    INVOICES,
    RecordSource("infor_ap_invoices", APInvoice, lambda invoice: invoice.invoice_key),
    InvoiceSync.of,
    "Infor AP invoices as the invoice of the Cin7 purchase each belongs to (tenant rule cin7_invoice_match).",
    deps=[cin7_purchases.key],
)

DIFFERENCES_CHECK = "cin7_chart_alignment_no_differences"


@dg.asset(
    name=CHART,
    key_prefix=[PAIR],
    group_name=PAIR,
    partitions_def=TENANT_DAY,
    pool=TARGET,
    kinds={TARGET},
    tags={"pair": PAIR, "system": TARGET},
    ins={"gl_accounts": dg.AssetIn(key=dg.AssetKey("infor_gl_accounts"))},
    check_specs=[
        dg.AssetCheckSpec(
            DIFFERENCES_CHECK,
            asset=dg.AssetKey([PAIR, CHART]),
            description="Every Infor GL account of the chart dimension is in Cin7's chart with the "
            "same name (differing or missing accounts are listed).",
        )
    ],
    description="Infor GL accounts vs Cin7's chart of accounts: matching, differing, created or "
    "flagged (tenant policy cin7_chart_policy), as a table.",
)
def cin7_chart_alignment(
    context: dg.AssetExecutionContext, gl_accounts: pd.DataFrame, state: StateResource, cin7: SystemResource
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    if not state.configured(tenant, TARGET):
        skipped = not_configured(context, tenant, TARGET)
        check = dg.AssetCheckResult(
            check_name=DIFFERENCES_CHECK, passed=True, description=str(skipped.metadata["reason"])
        )
        return dg.MaterializeResult(metadata=skipped.metadata, check_results=[check])
    settings = Cin7Settings.from_config(state.tenant_config(tenant))
    session = push_session(context, state.state(), tenant, CHART)
    with cin7.open(tenant) as client:
        rows = ChartAlignment(session, client, settings).run(from_frame(gl_accounts, GLAccount))
        requests = client.requests_made
    log_counts(context, CHART, session)
    return dg.MaterializeResult(
        metadata={
            **sync_metadata(session),
            "requests_used": dg.MetadataValue.int(requests),
            "alignment": alignment_table(rows),
            **{f"accounts_{outcome}": dg.MetadataValue.int(n) for outcome, n in _outcomes(rows).items()},
        },
        check_results=[differences_check(rows)],
    )


def _outcomes(rows: list[ChartRow]) -> dict[str, int]:
    counts = {outcome: 0 for outcome in ("matching", "differing", "created", "flagged", "failed")}
    for row in rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    return counts


def alignment_table(rows: list[ChartRow]) -> dg.MetadataValue:
    columns = ["code", "infor_name", "cin7_name", "outcome", "reason"]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: getattr(row, c) or "" for c in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns]),
    )


def differences_check(rows: list[ChartRow]) -> dg.AssetCheckResult:
    """WARN: accounts whose names differ, or that are missing in Cin7 and were not created."""
    offending = [row for row in rows if row.outcome in ("differing", "flagged", "failed")]
    listed: list[dict[str, Any]] = [
        {"code": r.code, "outcome": r.outcome, "reason": r.reason} for r in offending
    ]
    return dg.AssetCheckResult(
        check_name=DIFFERENCES_CHECK,
        passed=not offending,
        severity=dg.AssetCheckSeverity.WARN,
        description="Infor and Cin7 charts agree"
        if not offending
        else f"{len(offending)} account(s) differ: "
        + "; ".join(f"{r.code} ({r.reason})" for r in offending[:5]),
        metadata={
            "accounts": dg.MetadataValue.json(listed[:100]),
            "count": dg.MetadataValue.int(len(offending)),
        },
    )


cin7_assets = [cin7_suppliers, cin7_purchases, cin7_invoices, cin7_chart_alignment]
