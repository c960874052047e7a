"""Procurify -> Infor assets, all tenant x modified date, job `procurify_procurement`:

1. `procurify_purchase_orders`, `procurify_bills`: the kit's generic extract over the Procurify
   client (POs modified that day, with lines; approved bills modified that day, with lines). Day
   boundary and time zone: ``[D 00:00, D+1 00:00)`` in tenant config ``procurify_timezone``
   (default UTC) on each record's last-modified timestamp (see `systems/procurify/client.py`).
2. `procurify/procurify_reference_alignment`: vendors, account codes and departments matched with
   Infor suppliers, GL accounts and cost centres; every match and difference in the audit trail,
   each Procurify side's outcome in the ledger (flow ``procurify_references``).
3. `procurify/procurify_infor_purchase_orders`, `procurify/procurify_infor_ap_invoices`: the kit's
   push factory, Infor as target, after the alignment: approved POs -> Infor POs, approved bills ->
   Infor AP invoices, exactly once; a record naming something Infor lacks is flagged and alerted.

Keys of the pushes carry the pair prefix `procurify`, so nothing here collides with the Infor
extracts (`infor_purchase_orders`). Tenants without Procurify credentials are skipped with the
reason in the metadata. Nothing is written to Procurify.
"""

from typing import Any

import dagster as dg

from ...systems.procurify.models import Bill, PurchaseOrder
from ..kit.extract import ExtractSpec, build_extract
from ..kit.push import PushPair, RecordSource
from ..kit.pushers import PushContext
from ..metadata import push_session
from ..partitions import TENANT_DAY, tenant_day
from ..resources import not_configured
from . import mapping
from .pushers import (
    AP_INVOICES,
    PURCHASE_ORDERS,
    BillPush,
    PurchaseOrderPush,
    PushSettings,
    load_references,
    record_references,
    stored_references,
)

GROUP = "procurify_procurement"
PAIR = "procurify"
ALIGNMENT = "procurify_reference_alignment"

procurify_purchase_orders = build_extract(
    ExtractSpec(
        asset_name="procurify_purchase_orders",
        system="procurify",
        read="purchase_orders",
        model=PurchaseOrder,
        key=["procurify_po"],
        required=["procurify_po", "uuid", "vendor.id", "currency.name"],
        currencies=["currency.name"],
        amounts=["total"],
        group=GROUP,
        description="Procurify purchase orders (with lines and their GL coding) modified on the "
        "partition date, in the tenant's procurify_timezone.",
    )
)
procurify_bills = build_extract(
    ExtractSpec(
        asset_name="procurify_bills",
        system="procurify",
        read="approved_bills",
        model=Bill,
        key=["id"],
        required=["id", "uuid", "vendor.id", "currency.name"],
        currencies=["currency.name"],
        group=GROUP,
        description="Approved Procurify bills (status in procurify_approved_bill_statuses, with lines "
        "and cost allocations) modified on the partition date, in the tenant's procurify_timezone.",
    )
)


@dg.asset(
    name=ALIGNMENT,
    key_prefix=[PAIR],
    group_name=GROUP,
    partitions_def=TENANT_DAY,
    pool="procurify",
    kinds={"procurify", "infor"},
    required_resource_keys={"state", "procurify", "infor"},
    description="Procurify vendors, account codes and departments matched with Infor suppliers, GL "
    "accounts and cost centres; every match and difference in the audit trail.",
)
def procurify_reference_alignment(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    state = context.resources.state
    if not state.configured(tenant, "procurify"):
        return not_configured(context, tenant, "procurify")
    session = push_session(context, state.state(), tenant, "procurify_references")
    with (
        context.resources.procurify.open(tenant) as procurify,
        context.resources.infor.adapter(tenant) as infor,
    ):
        settings = PushSettings.from_config(state.tenant_config(tenant), infor.product)
        refs = load_references(procurify, infor, settings)
        requests = procurify.requests_made + infor.requests_made
    record_references(session, refs)
    counts = refs.counts()
    differences = [
        {"record": row.source_id, "outcome": row.outcome, "detail": row.detail}
        for row in refs.rows
        if row.outcome not in ("match", "not_checked")
    ]
    context.log.info(f"{ALIGNMENT}: {tenant}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "counts": dg.MetadataValue.json(counts),
            "differences": dg.MetadataValue.json(differences[:100]),
            "difference_count": dg.MetadataValue.int(len(differences)),
            "requests_used": dg.MetadataValue.int(requests),
        }
    )


def _settings(ctx: PushContext) -> PushSettings:
    return PushSettings.from_config(ctx.config, ctx.target.product)


def _po_pusher(ctx: PushContext) -> PurchaseOrderPush:
    return PurchaseOrderPush(
        ctx.session, ctx.target, stored_references(ctx.session.ledger, ctx.tenant), _settings(ctx)
    )


def _bill_pusher(ctx: PushContext) -> BillPush:
    return BillPush(
        ctx.session, ctx.target, stored_references(ctx.session.ledger, ctx.tenant), _settings(ctx)
    )


def _open_adapter(resource: Any, tenant: str) -> Any:
    return resource.adapter(tenant)


PROCURIFY_TO_INFOR = PushPair(PAIR, "infor", open_client=_open_adapter)

procurify_infor_purchase_orders = PROCURIFY_TO_INFOR.asset(
    PURCHASE_ORDERS,
    RecordSource("procurify_purchase_orders", PurchaseOrder, mapping.po_external_ref),
    _po_pusher,
    "Approved Procurify POs as Infor POs (M3 PPS370MI batch entry / SyteLine SLPos), exactly once; "
    "a PO naming a vendor, account code or department Infor lacks is flagged and alerted.",
    deps=[procurify_reference_alignment.key],
)
procurify_infor_ap_invoices = PROCURIFY_TO_INFOR.asset(
    AP_INVOICES,
    RecordSource("procurify_bills", Bill, mapping.bill_record_id),
    _bill_pusher,
    "Approved Procurify bills as Infor AP invoices (M3 APS450MI + APS455MI / SyteLine SLAptrxs), "
    "exactly once; a bill naming something Infor lacks is flagged and alerted.",
    deps=[procurify_reference_alignment.key],
)

# The push factory groups by pair; the whole flow is one group.
procurify_assets = [
    procurify_purchase_orders,
    procurify_bills,
    procurify_reference_alignment,
    *(
        asset.map_asset_specs(lambda spec: spec.replace_attributes(group_name=GROUP))
        for asset in (procurify_infor_purchase_orders, procurify_infor_ap_invoices)
    ),
]
