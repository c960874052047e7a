"""The payment cycle: each tenant's `payment_cron` (tenant config, default Tuesday and Friday 06:00
UTC) decides when its Infor -> Wise sync runs.

One schedule serves every tenant: it ticks every quarter of an hour and requests a run of the main
job, for today's date partition, for each tenant whose cron fired since the previous tick.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._utils.schedules import get_latest_completed_cron_tick, is_valid_cron_string

from ..partitions import TENANTS, partition_key
from ..resources import StateResource

DEFAULT_PAYMENT_CRON = "0 6 * * 2,5"
TICK_MINUTES = 15


def cron_fired(cron: str, after: datetime, until: datetime) -> bool:
    """True when `cron` has a tick in (after, until], in UTC."""
    return get_latest_completed_cron_tick(cron, until, "UTC") > after


@dg.schedule(
    cron_schedule=f"*/{TICK_MINUTES} * * * *",
    job_name="main",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Run the main job for each tenant whose payment cycle (config payment_cron) is due.",
)
def wise_payment_cycle_schedule(
    context: dg.ScheduleEvaluationContext, state: StateResource
) -> list[dg.RunRequest] | dg.SkipReason:
    now = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC)
    previous_tick = now - timedelta(minutes=TICK_MINUTES)
    requests: list[dg.RunRequest] = []
    for tenant in sorted(context.instance.get_dynamic_partitions(TENANTS.name)):
        record = state.state().tenants.get(tenant)
        if record is None:
            continue  # removed: its partition lingers until the CLI deletes it
        cron = str(record.config.get("payment_cron") or DEFAULT_PAYMENT_CRON)
        if not is_valid_cron_string(cron):
            context.log.warning(f"tenant {tenant}: payment_cron {cron!r} is not a valid cron string")
            continue
        if cron_fired(cron, previous_tick, now):
            requests.append(
                dg.RunRequest(
                    run_key=f"payment-cycle:{tenant}:{now.isoformat()}",
                    partition_key=partition_key(tenant, now.date()),
                )
            )
    return requests or dg.SkipReason("no tenant's payment cycle is due")
