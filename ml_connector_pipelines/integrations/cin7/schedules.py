"""The accounting cycle: tenant config ``cin7_accounting_cycle`` is ``daily`` (default), ``weekly``,
``period_close`` or a cron string; when it fires, ``cin7_accounting`` runs for each modified date
since the tenant's previous cycle (the kit's cycle rules, `kit/schedules.py`).

Named cycles, in UTC ([I]: the tenant's own times are a cron string away):
``daily`` 04:00; ``weekly`` Monday 04:00; ``period_close`` the 2nd of each month 04:00, the day after
a month-end close.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ..kit.schedules import TICK_MINUTES, cron_fired, cycle_days, tenant_cron, valid_cron
from ..partitions import TENANTS, partition_key
from ..resources import StateResource

CONFIG_KEY = "cin7_accounting_cycle"
JOB_NAME = "cin7_accounting"
NAMED_CYCLES = {"daily": "0 4 * * *", "weekly": "0 4 * * 1", "period_close": "0 4 2 * *"}
DEFAULT_CYCLE = "daily"


def cycle_cron(value: str) -> str:
    """A named cycle's cron, or the value itself (a cron string)."""
    return NAMED_CYCLES.get(value.strip().lower(), value.strip())


@dg.schedule(
    name="cin7_accounting_schedule",
    cron_schedule=f"*/{TICK_MINUTES} * * * *",
    job_name=JOB_NAME,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="For each tenant whose cin7_accounting_cycle is due: cin7_accounting runs for each "
    "day since its last cycle.",
)
def cin7_accounting_schedule(
    context: dg.ScheduleEvaluationContext, state: StateResource
) -> list[dg.RunRequest] | dg.SkipReason:
    now = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC)
    previous_tick = now - timedelta(minutes=TICK_MINUTES)
    requests: list[dg.RunRequest] = []
    for tenant in sorted(context.instance.get_dynamic_partitions(TENANTS.name)):
        value = tenant_cron(state, tenant, CONFIG_KEY, DEFAULT_CYCLE)
        if value is None or not state.configured(tenant, "cin7"):
            continue  # removed, or not on Cin7: nothing to run
        cron = cycle_cron(value)
        if not valid_cron(cron):
            context.log.warning(
                f"tenant {tenant}: {CONFIG_KEY} {value!r} is neither a named cycle nor a cron"
            )
            continue
        if cron_fired(cron, previous_tick, now):
            requests += [
                dg.RunRequest(
                    run_key=f"{JOB_NAME}:{tenant}:{day.isoformat()}:{now.isoformat()}",
                    partition_key=partition_key(tenant, day),
                )
                for day in cycle_days(cron, now)
            ]
    return requests or dg.SkipReason(f"no Cin7 tenant's {CONFIG_KEY} is due")
