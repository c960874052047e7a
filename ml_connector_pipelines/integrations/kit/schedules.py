"""Jobs and schedules per pair: each pair runs on its own business cycle, read from tenant config.

`pair_job` selects a pair's daily (tenant x date) assets and everything upstream of them (the source
extracts they read), by asset definition rather than by key, so key prefixes do not matter.

`tenant_cycle_schedule` builds the one schedule a pair needs for every tenant: it ticks every quarter
of an hour and, for each tenant whose cron (tenant config `config_key`, else `default_cron`) fired since
the previous tick, requests one run per modified date since the tenant's previous cycle (that day
included: it may have changed after that run), up to today. Rerunning a day is safe: the ledger skips
what is already done. A tenant with an invalid cron is left out with a warning; the others run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
from cronsim import CronSim, CronSimError

from ..partitions import TENANT_DAY, TENANTS, partition_key
from ..resources import StateResource

TICK_MINUTES = 15
MAX_CATCH_UP_DAYS = 31  # a tenant whose cycle is monthly still gets every day covered


def pair_job(name: str, assets: Sequence[dg.AssetsDefinition], description: str) -> Any:
    """A job over the pair's tenant x date assets and what they read upstream (no partitions_def:
    Dagster takes it from the assets)."""
    daily = [
        key
        for asset in assets
        if isinstance(asset, dg.AssetsDefinition) and asset.partitions_def == TENANT_DAY
        for key in asset.keys
    ]
    return dg.define_asset_job(
        name, selection=dg.AssetSelection.assets(*daily).upstream(), description=description
    )


def valid_cron(cron: str) -> bool:
    try:
        CronSim(cron, datetime.now(UTC))
    except CronSimError:
        return False
    return True


def latest_tick(cron: str, until: datetime) -> datetime:
    """The newest tick of `cron` at or before `until`, in UTC."""
    # Reverse iteration yields ticks strictly before its start; one second on makes `until` count.
    return next(CronSim(cron, until.astimezone(UTC) + timedelta(seconds=1), reverse=True))


def cron_fired(cron: str, after: datetime, until: datetime) -> bool:
    """True when `cron` has a tick in (after, until], in UTC."""
    return latest_tick(cron, until) > after


def cycle_days(cron: str, now: datetime) -> list[date]:
    """The modified dates one cycle covers: from the previous cycle's date through today."""
    this_cycle = latest_tick(cron, now)
    previous = latest_tick(cron, this_cycle - timedelta(seconds=1))
    first = max(previous.date(), now.date() - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=n) for n in range((now.date() - first).days + 1)]


def tenant_cron(state: StateResource, tenant: str, config_key: str, default_cron: str) -> str | None:
    """The tenant's cron for one pair, or None for a removed tenant."""
    record = state.state().tenants.get(tenant)
    if record is None:
        return None
    return str(record.config.get(config_key) or default_cron)


def tenant_cycle_schedule(
    *, name: str, job_name: str, config_key: str, default_cron: str, description: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        cron_schedule=f"*/{TICK_MINUTES} * * * *",
        job_name=job_name,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext, state: StateResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        now = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC)
        previous_tick = now - timedelta(minutes=TICK_MINUTES)
        requests: list[dg.RunRequest] = []
        for tenant in sorted(context.instance.get_dynamic_partitions(TENANTS.name)):
            skip = state.skip_reason(tenant)
            if skip:  # removed, paused, or a partition with no tenant record
                context.log.info(f"skipped: {skip}")
                continue
            cron = tenant_cron(state, tenant, config_key, default_cron)
            if cron is None:
                continue
            if not valid_cron(cron):
                context.log.warning(f"tenant {tenant}: {config_key} {cron!r} is not a valid cron string")
                continue
            if cron_fired(cron, previous_tick, now):
                requests += [
                    dg.RunRequest(
                        run_key=f"{job_name}:{tenant}:{day.isoformat()}:{now.isoformat()}",
                        partition_key=partition_key(tenant, day),
                    )
                    for day in cycle_days(cron, now)
                ]
        return requests or dg.SkipReason(f"no tenant's {config_key} is due")

    return _schedule
