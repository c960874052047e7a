"""Stripe -> Infor: `infor_ar_payments` (partitioned by tenant) turns the Stripe events waiting in the
inbox (webhooks and polled events alike) into Infor AR payment lines, each posted once.
"""

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from ...core.errors import ValidationFailed
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.infor.adapter import InforAdapter
from ...systems.infor.models import ARPayment
from ...systems.stripe.client import StripeGateway
from ..kit.inbox import InboxFlow, consume, inbox_batch
from ..kit.push import record_check_specs, record_checks, skipped_result
from ..metadata import OWNERS, asset_tags, log_counts, log_progress, push_session, sync_metadata
from ..partitions import TENANTS
from ..resources import InforResource, StateResource, StripeResource
from . import mapping

PAYMENTS_FLOW = "infor_ar_payments"
INBOX_SOURCE = "stripe"  # the receiver's `/webhooks/stripe/{tenant}` and the poller both write here
# Without `ar_dimensions` in the tenant config, cash is posted to the sandbox's first dimension-1
# account (1000 Cash); a real tenant sets its own bank account and cost centre.
DEFAULT_AR_DIMENSIONS = ("1000",)
# The events that carry payments and refunds: what the poller asks for and webhooks should send.
PAYMENT_EVENT_TYPES = (mapping.PAYMENT_EVENT, *sorted(mapping.REFUND_EVENTS))
PAYMENTS = InboxFlow(PAYMENTS_FLOW, INBOX_SOURCE, job="stripe_ar_payments_job", asset="infor_ar_payments")


def ar_dimensions(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The accounting dimensions (AIT1..AIT7) cash is posted to, from the tenant config."""
    value = config.get("ar_dimensions", DEFAULT_AR_DIMENSIONS)
    valid = isinstance(value, list | tuple) and 1 <= len(value) <= 7
    if not valid or not all(isinstance(code, str) and code for code in value):
        raise dg.Failure(
            "tenant config 'ar_dimensions' must list 1 to 7 accounting dimension codes, e.g. ['1010', '100']"
        )
    return tuple(value)


def payment_in_event(
    gateway: StripeGateway, event: Mapping[str, Any], dimensions: tuple[str, ...]
) -> ARPayment | None:
    """The AR payment (positive) or refund (negative) a Stripe event reports, or None when the event
    carries nothing to post (another type, a refund not yet succeeded).

    A payment whose Stripe invoice names no Infor invoice is unmatched: ValidationFailed, so it is
    flagged and alerted rather than dropped.
    """
    kind = event.get("type")
    if kind == mapping.PAYMENT_EVENT:
        invoice = (event.get("data") or {}).get("object") or {}
        if not mapping.is_connector_invoice(invoice):
            raise ValidationFailed(
                str(invoice.get("id")),
                "metadata",
                "unmatched payment: no Infor invoice in the Stripe invoice metadata",
            )
        return mapping.payment_from_event(event, dimensions=dimensions)
    if kind in mapping.REFUND_EVENTS:
        refund = mapping.refund_in_event(event)
        if refund is None or refund.get("status") != "succeeded":
            return None
        payment_intent = mapping.refunded_payment_intent(event)
        paid = gateway.find_invoice_for_payment_intent(payment_intent) if payment_intent else None
        if paid is None or not mapping.is_connector_invoice(paid.model_dump()):
            raise ValidationFailed(
                str(refund.get("id")), "payment_intent", "unmatched refund: the payment paid no Infor invoice"
            )
        return mapping.refund_from_event(event, paid.model_dump(), dimensions=dimensions)
    return None


def post_event(
    session: SyncSession,
    gateway: StripeGateway,
    adapter: InforAdapter,
    event: Mapping[str, Any],
    dimensions: tuple[str, ...],
) -> SyncResult | None:
    """Post one event's payment to Infor, once per payment reference however often it arrives
    (the ledger is keyed by it; after a lost answer, ARS040MI is searched by that reference)."""
    try:
        payment = payment_in_event(gateway, event, dimensions)
    except ValidationFailed as exc:
        return session.flag(exc.record_id, exc.reason, field=exc.field)
    if payment is None:
        return None
    return session.sync(
        payment.reference,
        content_hash(payment.model_dump(mode="json")),
        create=lambda: adapter.add_ar_payment(payment),
        lookup=lambda: adapter.find_ar_payment(payment.reference),
        extra={
            "amount": str(payment.amount),
            "currency": payment.currency,
            "payment_date": payment.payment_date.isoformat(),
            "invoice_number": payment.invoice_number,
        },
    )


@dg.asset(
    group_name="stripe",
    partitions_def=TENANTS,
    pool="infor",
    kinds={"infor"},
    owners=OWNERS,
    tags=asset_tags("stripe", "infor"),
    check_specs=record_check_specs(PAYMENTS_FLOW, "infor_ar_payments", "infor"),
    description=(
        "Stripe payments and refunds waiting in the inbox (webhooks and polled events), posted as "
        "ARS040MI payment lines on the matching Infor AR invoice, each exactly once."
    ),
)
def infor_ar_payments(
    context: dg.AssetExecutionContext,
    state: StateResource,
    infor: InforResource,
    stripe: StripeResource,
) -> dg.MaterializeResult:
    tenant = context.partition_key
    skipped = skipped_result(context, state, tenant, "stripe", PAYMENTS_FLOW)
    if skipped is not None:
        return skipped
    store = state.state()
    session = push_session(context, store, tenant, PAYMENTS_FLOW)
    dimensions = ar_dimensions(state.tenant_config(tenant))
    # Clients first: missing credentials fail the run before any inbox row is claimed.
    with stripe.gateway(tenant) as gateway, infor.adapter(tenant) as adapter:
        with inbox_batch(store, INBOX_SOURCE, session) as batch:
            consume(
                batch,
                lambda event: post_event(session, gateway, adapter, json.loads(event.payload), dimensions),
                progress=lambda done, total: log_progress(context, PAYMENTS_FLOW, done, total),
            )
    log_counts(context, PAYMENTS_FLOW, session)
    return dg.MaterializeResult(
        metadata=sync_metadata(session), check_results=record_checks(PAYMENTS_FLOW, session)
    )
