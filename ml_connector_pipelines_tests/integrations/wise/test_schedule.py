"""The payment-cycle schedule: one schedule, each tenant on its own `payment_cron`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ml_connector_pipelines.integrations.resources import StateResource
from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.integrations.wise.schedules import wise_payment_cycle_schedule
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi

# 2026-11-24 is a Tuesday, 2026-11-25 a Wednesday, 2026-11-27 a Friday.
TUESDAY_0600 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def tick(instance: dg.DagsterInstance, connector: Any, at: datetime) -> list[dg.RunRequest] | dg.SkipReason:
    # As a context manager: the context sets process-wide Dagster state that must be reset after the
    # tick, or later runs in the same process fail on a dead instance.
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        resources={"state": StateResource(db_url=connector.settings.db_url)},
    ) as context:
        return wise_payment_cycle_schedule(context)


def due(instance: dg.DagsterInstance, connector: Any, at: datetime) -> dict[str, list[str]]:
    """tenant -> the dates of the main-job runs the schedule asks for at `at`."""
    result = tick(instance, connector, at)
    if isinstance(result, dg.SkipReason):
        return {}
    assert all(r.job_name in (None, "main") for r in result)
    assert len({r.run_key for r in result}) == len(result)
    found: dict[str, list[str]] = {}
    for request in result:
        keys = request.partition_key.keys_by_dimension
        found.setdefault(keys["tenant"], []).append(keys["date"])
    return found


def days(first: int, last: int) -> list[str]:
    return [date(2026, 11, d).isoformat() for d in range(first, last + 1)]


def test_each_tenant_runs_on_its_own_payment_cycle(
    sandbox_server: SandboxServer, connector: Any, tmp_path: Path
) -> None:
    weekly, daily = "CYCLEDEFAULT", "CYCLEDAILY"
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))  # a schedule context needs a ref
    for name, config in ((weekly, {}), (daily, {"payment_cron": "30 7 * * *"})):
        ionapi = sandbox_ionapi(sandbox_server.url, name)
        register_tenant(connector, name, ionapi=ionapi, config=config, instance=instance)

    def at(day: int, hour: int, minute: int = 0) -> dict[str, list[str]]:
        return due(instance, connector, datetime(2026, 11, day, hour, minute, tzinfo=UTC))

    # The default cycle is Tuesday and Friday 06:00; the other tenant pays daily at 07:30. Each
    # cycle covers every modified date since the previous cycle, that day included.
    assert at(24, 6) == {weekly: days(20, 24)}  # Friday 20th to Tuesday 24th
    assert at(27, 6) == {weekly: days(24, 27)}
    assert at(25, 7, 30) == {daily: days(24, 25)}
    # Off-cycle, and on the tick right after a cycle time, nothing is due.
    assert isinstance(tick(instance, connector, TUESDAY_0600.replace(day=25)), dg.SkipReason)
    assert at(24, 6, 15) == {}

    # A tenant whose cron is broken is left out; the others still run.
    connector.state.tenants.update_config(daily, {"payment_cron": "every tuesday"})
    connector.state.tenants.update_config(weekly, {"payment_cron": "30 7 * * *"})
    assert at(25, 7, 30).keys() == {weekly}
    # A removed tenant is not run, even though its Dagster partition still exists.
    connector.state.tenants.remove(weekly)
    assert at(25, 7, 30) == {}
