"""Stripe events -> inbox -> runs of `stripe_ar_payments_job`, one per tenant with work waiting.

Webhooks land in the inbox through the receiver. The sensor also polls `/v1/events` from a stored
cursor, so an event whose webhook never arrived (receiver down, delivery given up) still does; the
inbox drops the event ids it already holds, so a webhook plus a poll store an event once.
"""

import json
from decimal import Decimal
from typing import Any

import dagster as dg

from ...core.errors import HttpError
from ...core.store import State
from ...systems.stripe.client import StripeGateway
from ..event_runs import batch_run_key, event_run_request
from ..partitions import TENANTS
from ..resources import StateResource, StripeResource
from ..runs import run_finished_checker
from .assets import INBOX_SOURCE, PAYMENT_EVENT_TYPES, infor_ar_payments

EVENTS_CURSOR = "stripe_events_created"  # unix seconds of the newest event stored

stripe_ar_payments_job = dg.define_asset_job(
    "stripe_ar_payments_job",
    selection=[infor_ar_payments],
    description="Post the Stripe payments and refunds waiting in one tenant's inbox to Infor.",
)


def _json_number(value: Any) -> float:
    # The SDK reads JSON decimals (e.g. `unit_amount_decimal`) as Decimal; write them back as the
    # JSON numbers Stripe sent, so a polled payload reads like the same event's webhook body.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def poll_events(state: State, gateway: StripeGateway, tenant: str) -> int:
    """Store the tenant's payment and refund events newer than the cursor; returns how many were new.

    `created[gt]` has one-second resolution, so the poll starts one second before the cursor: an
    event created late in the cursor's second is not missed, and the repeats it brings are dropped
    by the inbox. The cursor moves only after the events are in the inbox.
    """
    cursor = state.cursors.get(tenant, EVENTS_CURSOR)
    events = gateway.list_events(created_gt=int(cursor) - 1 if cursor else None, types=PAYMENT_EVENT_TYPES)
    stored = sum(
        state.inbox.put(INBOX_SOURCE, tenant, event.id, json.dumps(event.payload, default=_json_number))
        for event in events
    )
    if events:
        state.cursors.set(tenant, EVENTS_CURSOR, str(events[-1].created))
    return stored


@dg.sensor(
    job=stripe_ar_payments_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls Stripe events into the inbox; starts a payments run per tenant with events waiting.",
)
def stripe_events_sensor(
    context: dg.SensorEvaluationContext, state: StateResource, stripe: StripeResource
) -> dg.SensorResult:
    store = state.state()
    run_requests: list[dg.RunRequest] = []
    # The same tenants as every sensor: the Dagster partitions, those that use Stripe.
    ended = run_finished_checker(context.instance)  # events held by a dead run count as waiting
    for tenant in sorted(context.instance.get_dynamic_partitions(TENANTS.name)):
        if not state.configured(tenant, "stripe"):
            continue
        try:
            with stripe.gateway(tenant) as gateway:
                stored = poll_events(store, gateway, tenant)
            if stored:
                context.log.info(f"{tenant}: {stored} new Stripe events from polling")
        except HttpError as exc:  # one tenant's Stripe trouble must not stop the others
            context.log.warning(f"{tenant}: polling Stripe events failed: {exc}")
        pending = store.inbox.pending(INBOX_SOURCE, tenant, run_finished=ended)
        if pending:
            run_requests.append(event_run_request(tenant, batch_run_key(context.instance, tenant, pending)))
    return dg.SensorResult(run_requests=run_requests)
