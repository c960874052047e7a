"""Wise webhook events -> runs: the receiver stores verified events in the inbox; this sensor starts
one `wise_payout_status_job` run per tenant with unprocessed events."""

import dagster as dg

from ..partitions import TENANTS
from ..resources import StateResource
from .assets import INBOX_SOURCE, wise_payout_status

wise_payout_status_job = dg.define_asset_job(
    "wise_payout_status_job",
    selection=[wise_payout_status],
    description="Write Wise transfer states (webhooks + polling) back to the Infor invoices of one tenant.",
)


@dg.sensor(job=wise_payout_status_job, minimum_interval_seconds=30)
def wise_events_sensor(
    context: dg.SensorEvaluationContext, state: StateResource
) -> dg.SensorResult | dg.SkipReason:
    inbox = state.state().inbox
    requests: list[dg.RunRequest] = []
    for tenant in sorted(context.instance.get_dynamic_partitions(TENANTS.name)):
        pending = inbox.pending(INBOX_SOURCE, tenant)
        if pending:
            # One run key per batch: the newest event in it. A repeated tick launches nothing twice;
            # events released by a failed run go out with the next batch.
            newest = max(event.id for event in pending)
            requests.append(dg.RunRequest(run_key=f"wise-events:{tenant}:{newest}", partition_key=tenant))
    if not requests:
        return dg.SkipReason("no unprocessed Wise events")
    return dg.SensorResult(run_requests=requests)
