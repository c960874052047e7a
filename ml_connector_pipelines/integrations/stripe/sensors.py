"""Stripe events -> inbox -> runs of `stripe_ar_payments_job`, one per tenant with work waiting.

Webhooks land in the inbox through the receiver. The sensor also polls `/v1/events` from a stored
cursor, so an event whose webhook never arrived (receiver down, delivery given up) still does; the
inbox drops the event ids it already holds, so a webhook plus a poll store an event once.
"""

import json
from decimal import Decimal
from typing import Any

from ...core.state import State
from ...systems.stripe.client import StripeGateway
from ..kit.sensors import inbox_job, inbox_sensor
from .payments import INBOX_SOURCE, PAYMENT_EVENT_TYPES, PAYMENTS, infor_ar_payments

EVENTS_CURSOR = "stripe_events_created"  # unix seconds of the newest event stored

stripe_ar_payments_job = inbox_job(
    PAYMENTS,
    infor_ar_payments,
    "Post the Stripe payments and refunds waiting in one tenant's inbox to Infor.",
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


stripe_events_sensor = inbox_sensor(
    name="stripe_events_sensor",
    flow=PAYMENTS,
    job=stripe_ar_payments_job,
    system="stripe",
    collect=lambda tenant, state, gateway: poll_events(state, gateway, tenant),
    minimum_interval_seconds=60,
    description="Polls Stripe events into the inbox; starts a payments run per tenant with events waiting.",
)
