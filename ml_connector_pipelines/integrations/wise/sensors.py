"""Wise transfer states -> runs of `wise_payout_status_job`, one per tenant with work to do.

The receiver stores verified webhooks in the inbox; a tenant with events waiting gets a run for that
batch. Webhooks can be lost (receiver down, Wise giving up), so every tenant also gets a polling run
every POLL_MINUTES: `wise_payout_status` then reads Wise's transfer list for changes it missed.
"""

from ..kit.sensors import inbox_job, inbox_sensor
from .payout_status import PAYOUT_STATUS_FLOW, wise_payout_status

POLL_MINUTES = 15

wise_payout_status_job = inbox_job(
    PAYOUT_STATUS_FLOW,
    wise_payout_status,
    "Write Wise transfer states (webhooks + polling) back to the Infor invoices of one tenant.",
)

wise_events_sensor = inbox_sensor(
    name="wise_events_sensor",
    flow=PAYOUT_STATUS_FLOW,
    job=wise_payout_status_job,
    system="wise",
    poll_minutes=POLL_MINUTES,
    description="A run per tenant with Wise webhooks waiting, and a polling run every 15 minutes.",
)
