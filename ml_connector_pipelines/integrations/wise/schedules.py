"""The payment cycle: each tenant's `payment_cron` (tenant config, default Tuesday and Friday 06:00
UTC) decides when its Infor -> Wise sync runs.

One schedule serves every tenant: it ticks every quarter of an hour and, for each tenant whose cron
fired since the previous tick, requests main-job runs for every modified date since the tenant's
previous cycle (that day included: it may have changed after that run), up to today. Rerunning a day
is safe: the ledger skips what is already done.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster._utils.schedules import get_latest_completed_cron_tick, is_valid_cron_string

from ..partitions import TENANTS, partition_key
from ..resources import StateResource

DEFAULT_PAYMENT_CRON = "0 6 * * 2,5"
TICK_MINUTES = 15
MAX_CATCH_UP_DAYS = 31  # a tenant whose cycle is monthly still gets every day covered


def cron_fired(cron: str, after: datetime, until: datetime) -> bool:
    """True when `cron` has a tick in (after, until], in UTC."""
    return get_latest_completed_cron_tick(cron, until, "UTC") > after


def cycle_days(cron: str, now: datetime) -> list[date]:
    """The modified dates one cycle covers: from the previous cycle's date through today."""
    this_cycle = get_latest_completed_cron_tick(cron, now, "UTC")
    previous = get_latest_completed_cron_tick(cron, this_cycle - timedelta(seconds=1), "UTC")
    first = max(previous.date(), now.date() - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=n) for n in range((now.date() - first).days + 1)]


@dg.schedule(
    cron_schedule=f"*/{TICK_MINUTES} * * * *",
    job_name="main",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="For each tenant whose payment_cron is due: main runs for each day since its last cycle.",
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
            requests += [
                dg.RunRequest(
                    run_key=f"payment-cycle:{tenant}:{day.isoformat()}:{now.isoformat()}",
                    partition_key=partition_key(tenant, day),
                )
                for day in cycle_days(cron, now)
            ]
    return requests or dg.SkipReason("no tenant's payment cycle is due")
