"""cin7_accounting runs on each Cin7 tenant's accounting cycle (daily, weekly, period close, cron)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ml_connector_pipelines.integrations.cin7.schedules import cin7_accounting_schedule
from ml_connector_pipelines.integrations.resources import StateResource
from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.sandbox.cin7.simulator import sandbox_credentials
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi


def test_each_tenant_on_its_accounting_cycle(
    sandbox_server: SandboxServer, connector: Any, tmp_path: Path
) -> None:
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))
    tenants = {
        "C7DAILY": {},
        "C7WEEKLY": {"cin7_accounting_cycle": "weekly"},
        "C7CLOSE": {"cin7_accounting_cycle": "period_close"},
        "C7CRON": {"cin7_accounting_cycle": "30 22 * * *"},
        "C7BAD": {"cin7_accounting_cycle": "fortnightly"},
    }
    for name, config in {**tenants, "NOCIN7": {}}.items():
        cin7 = None
        if name != "NOCIN7":
            cin7 = {"base_url": f"{sandbox_server.url}/cin7/ExternalApi/v2", **sandbox_credentials(name)}
        register_tenant(
            connector, name, ionapi=sandbox_ionapi(sandbox_server.url, name), config=config, cin7=cin7
        )
        instance.add_dynamic_partitions("tenants", [name])

    def due(day: int, hour: int, minute: int = 0) -> dict[str, list[str]]:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, day, hour, minute, tzinfo=UTC),
            resources={"state": StateResource(db_url=connector.settings.db_url)},
        ) as context:
            result = cin7_accounting_schedule(context)
        found: dict[str, list[str]] = {}
        for request in [] if isinstance(result, dg.SkipReason) else result:
            keys = request.partition_key.keys_by_dimension
            found.setdefault(keys["tenant"], []).append(keys["date"])
        return found

    # 2026-11-25 04:00 (a Wednesday): only the daily tenant, for yesterday and today; never NOCIN7.
    assert due(25, 4) == {"C7DAILY": ["2026-11-24", "2026-11-25"]}
    # Monday 2026-11-30: weekly covers the week since the previous Monday.
    assert due(30, 4)["C7WEEKLY"] == [date(2026, 11, d).isoformat() for d in range(23, 31)]
    # The 2nd: period close covers the month since the previous close (the kit caps it at 31 days).
    close = due(2, 4)["C7CLOSE"]
    assert (close[0], close[-1], len(close)) == ("2026-10-03", "2026-11-02", 31)
    assert due(25, 22, 30) == {"C7CRON": ["2026-11-24", "2026-11-25"]}
