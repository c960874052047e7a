"""Infor <-> Cleo assets (key prefix and group `cleo`; job `cleo_edi`).

- `cleo_trading_partners` (tenant x day): every configured trading partner's Cleo connection is
  created or brought in line with its Infor supplier; differences are reported.
- `cleo_purchase_orders_850` (tenant x day, push factory): open Infor POs of EDI suppliers as 850s.
- `cleo_invoices_810` (tenant x day, push factory): AR invoices of EDI customers as 810s.
- `cleo_inbound_edi` (tenant, inbox-driven): the files the mailbox sensor stored become their
  effect: 810 -> Infor AP invoice + 997 back; 997 -> the 850 / 810 it acknowledges completed or flagged.

X12 control numbers come from the state store's atomic sequence (`State.next_sequence`).
"""

from typing import Any

import dagster as dg

from ...core.state import State
from ...core.sync import SyncResult
from ...systems.cleo.client import CleoClient
from ...systems.infor.models import ARInvoice, PurchaseOrder
from ..kit.inbox import InboxFlow, consume, inbox_batch
from ..kit.push import PushPair, RecordSource
from ..kit.pushers import PushContext, push_one
from ..metadata import log_counts, log_progress, push_session, sync_metadata
from ..partitions import TENANT_DAY, TENANTS, tenant_day
from ..resources import InforResource, StateResource, SystemResource, not_configured
from .pushers import (
    AP_INVOICES_810_IN,
    INBOX_SOURCE,
    INVOICES_810,
    PURCHASE_ORDERS_850,
    EdiSetup,
    InboundProcessor,
    InvoicePusher,
    MailboxPoller,
    PurchaseOrderPusher,
    ReceivedFile,
    TradingPartnerSync,
    settle_outcome,
)

PAIR = "cleo"
TRADING_PARTNERS = "cleo_trading_partners"
INBOUND_ASSET = "cleo_inbound_edi"
INBOUND = InboxFlow(AP_INVOICES_810_IN, INBOX_SOURCE, job="cleo_inbound_job", asset=INBOUND_ASSET)
DEFAULT_DIVISION = ""  # M3: the user's default division when the tenant config names none ("divi")

CLEO = PushPair(PAIR, "cleo", open_client=lambda resource, tenant: resource.open(tenant))


def edi_setup(client: CleoClient, config: dict[str, Any], tenant: str, control_numbers: Any) -> EdiSetup:
    return EdiSetup.from_config(client, dict(config), tenant, control_numbers)


def _edi(ctx: PushContext) -> EdiSetup:
    return edi_setup(ctx.target, dict(ctx.config), ctx.tenant, ctx.session.ledger.store.next_sequence)


def _purchase_orders(ctx: PushContext) -> PurchaseOrderPusher:
    return PurchaseOrderPusher(ctx.session, _edi(ctx))


def _invoices(ctx: PushContext) -> InvoicePusher:
    names: dict[str, str] = {}

    def customer_name(customer_id: str) -> str:
        if customer_id not in names:
            customer = ctx.infor().customer(customer_id)
            names[customer_id] = customer.name if customer else ""
        return names[customer_id]

    return InvoicePusher(ctx.session, _edi(ctx), customer_name)


@dg.asset(
    name=TRADING_PARTNERS,
    key_prefix=[PAIR],
    group_name=PAIR,
    partitions_def=TENANT_DAY,
    pool="cleo",
    kinds={"cleo"},
    description="Each configured EDI trading partner as a Cleo connection, in line with its Infor "
    "supplier (created when missing; type, localName and partnerName corrected; differences reported).",
)
def cleo_trading_partners(
    context: dg.AssetExecutionContext, state: StateResource, infor: InforResource, cleo: SystemResource
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    if not state.configured(tenant, "cleo"):
        return not_configured(context, tenant, "cleo")
    session = push_session(context, state.state(), tenant, TRADING_PARTNERS)
    config = state.tenant_config(tenant)
    with cleo.open(tenant) as client, infor.adapter(tenant) as adapter:
        edi = edi_setup(client, config, tenant, state.state().next_sequence)
        sync = TradingPartnerSync(session, client, str(config.get("cleo_local_name") or edi.local.id))
        for partner in edi.partners:
            supplier = adapter.supplier(partner.supplier_id) if partner.supplier_id else None
            push_one(_PartnerPusher(sync, supplier), session, partner, partner.alias)
        requests = client.requests_made
    log_counts(context, TRADING_PARTNERS, session)
    differed = [r for r in session.results if (r.reason or "").startswith("differed")]
    return dg.MaterializeResult(
        metadata={
            **sync_metadata(session),
            "requests_used": dg.MetadataValue.int(requests),
            "partners_that_differed": dg.MetadataValue.int(len(differed)),
        }
    )


class _PartnerPusher:
    def __init__(self, sync: TradingPartnerSync, supplier: Any) -> None:
        self.sync_partner = sync
        self.supplier = supplier

    def sync(self, partner: Any) -> SyncResult:
        return self.sync_partner.sync(partner, self.supplier)


cleo_purchase_orders_850 = CLEO.asset(
    PURCHASE_ORDERS_850,
    RecordSource("infor_purchase_orders", PurchaseOrder, lambda order: order.po_number),
    _purchase_orders,
    "Open Infor purchase orders of EDI suppliers, one X12 850 each in the partner's upload folder "
    "(file named by PO number and ISA control number; a lost upload is found by listing the folder).",
    deps=[cleo_trading_partners.key],
)

cleo_invoices_810 = CLEO.asset(
    INVOICES_810,
    RecordSource("infor_ar_invoices", ARInvoice, lambda invoice: invoice.invoice_key),
    _invoices,
    "AR invoices of customers set up as EDI partners, one X12 810 each in the partner's upload folder.",
    deps=[cleo_trading_partners.key],
    reads_infor=True,
)


@dg.asset(
    name=INBOUND_ASSET,
    key_prefix=[PAIR],
    group_name=PAIR,
    partitions_def=TENANTS,
    pool="infor",
    kinds={"cleo", "infor"},
    description="Cleo files stored by the mailbox sensor: supplier 810s become Infor AP invoices "
    "(APS450MI head and lines, APS455MI validation) with a 997 back; partners' 997s complete or flag "
    "our 850s and 810s. Malformed files are flagged with the segment and element position.",
)
def cleo_inbound_edi(
    context: dg.AssetExecutionContext, state: StateResource, infor: InforResource, cleo: SystemResource
) -> dg.MaterializeResult:
    tenant = context.partition_key
    if not state.configured(tenant, "cleo"):
        return not_configured(context, tenant, "cleo")
    store = state.state()
    sessions: dict[str, Any] = {}

    def session_for(flow: str) -> Any:
        if flow not in sessions:
            sessions[flow] = push_session(context, store, tenant, flow)
        return sessions[flow]

    config = state.tenant_config(tenant)
    division = str(config.get("divi") or DEFAULT_DIVISION)
    # Clients first: missing credentials fail the run before any inbox row is claimed.
    with cleo.open(tenant) as client, infor.adapter(tenant) as adapter:
        edi = edi_setup(client, config, tenant, store.next_sequence)
        processor = InboundProcessor(session_for, edi, lambda: adapter, division)
        with inbox_batch(store, INBOX_SOURCE, session_for(AP_INVOICES_810_IN)) as batch:
            consume(
                batch,
                lambda event: settle_outcome(processor.process(ReceivedFile.from_event(event))),
                progress=lambda done, total: log_progress(context, INBOUND_ASSET, done, total),
            )
    metadata: dict[str, Any] = {}
    for flow, session in sorted(sessions.items()):
        log_counts(context, flow, session)
        metadata.update({f"{flow}.{key}": value for key, value in sync_metadata(session).items()})
    return dg.MaterializeResult(metadata=metadata)


def poll_mailboxes(tenant: str, state: State, client: CleoClient) -> int:
    """The sensor's collect step: every partner's download folder into the inbox (stored, then
    deleted in Cleo); returns how many files were new."""
    record = state.tenants.get(tenant)
    if record is None:
        return 0
    edi = edi_setup(client, record.config, tenant, state.next_sequence)
    poller = MailboxPoller(state.inbox, tenant, edi)
    return sum(len(poller.poll(partner).stored) for partner in edi.partners)


cleo_assets = [cleo_trading_partners, cleo_purchase_orders_850, cleo_invoices_810]
