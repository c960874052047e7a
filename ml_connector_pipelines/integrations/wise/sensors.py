"""Wise transfer states -> runs of `wise_payout_status_job`, one per tenant with work to do.

The receiver stores verified webhooks in the inbox; a tenant with events waiting gets a run for that
batch. Webhooks can be lost (receiver down, Wise giving up), so every tenant also gets a polling run
every POLL_MINUTES: `wise_payout_status` then reads Wise's transfer list for changes it missed.
"""

from datetime import UTC, datetime

import dagster as dg

from ..event_runs import batch_run_key, event_run_request, poll_run_key
from ..partitions import TENANTS
from ..resources import StateResource
from ..runs import run_finished_checker
from .assets import INBOX_SOURCE, wise_payout_status

POLL_MINUTES = 15

wise_payout_status_job = dg.define_asset_job(
    "wise_payout_status_job",
    selection=[wise_payout_status],
    description="Write Wise transfer states (webhooks + polling) back to the Infor invoices of one tenant.",
)


@dg.sensor(
    job=wise_payout_status_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A run per tenant with Wise webhooks waiting, and a polling run every 15 minutes.",
)
def wise_events_sensor(context: dg.SensorEvaluationContext, state: StateResource) -> dg.SensorResult:
    inbox = state.state().inbox
    now = datetime.now(UTC)
    requests: list[dg.RunRequest] = []
    ended = run_finished_checker(context.instance)  # events held by a dead run count as waiting
    for tenant in sorted(context.instance.get_dynamic_partitions(TENANTS.name)):
        if not state.configured(tenant, "wise"):
            continue
        pending = inbox.pending(INBOX_SOURCE, tenant, run_finished=ended)
        if pending:
            key = batch_run_key(context.instance, tenant, pending)
        else:
            key = poll_run_key(tenant, now, POLL_MINUTES)
        requests.append(event_run_request(tenant, key))
    return dg.SensorResult(run_requests=requests)
