"""One job per pair, each on its own schedule read from tenant config; `main` is their union."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ml_connector_pipelines.definitions import defs
from ml_connector_pipelines.integrations.resources import StateResource
from ml_connector_pipelines.integrations.stripe.schedules import stripe_billing_schedule
from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi


def selected(job: str) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_job_def(job).asset_layer.selected_asset_keys}


def test_each_pair_job_holds_its_own_extracts_and_pushes_only() -> None:
    wise, stripe = selected("wise_payouts"), selected("stripe_billing")
    assert {"infor_suppliers", "infor_ap_invoices"} <= wise
    assert not any("stripe" in key or "customers" in key for key in wise)
    assert {"infor_customers", "infor_ar_invoices", "stripe/stripe_reconciliation"} <= stripe
    assert {"wise/wise_recipients", "wise/wise_quotes"} <= wise
    assert not any("wise" in key or "suppliers" in key for key in stripe)
    assert wise | stripe <= selected("main")
    schedules = {s.name: s.job_name for s in defs.schedules or []}
    assert (
        schedules.items()
        >= {
            "wise_payment_cycle_schedule": "wise_payouts",
            "stripe_billing_schedule": "stripe_billing",
            "cleo_procurement_cycle_schedule": "cleo_edi",
            "cin7_accounting_schedule": "cin7_accounting",
            "procurify_procurement_schedule": "procurify_procurement",
            "alerts_daily_digest": "alerts_digest",  # every tenant's digest of flagged records
        }.items()
    )


def test_stripe_billing_runs_on_each_tenants_billing_cron(
    sandbox_server: SandboxServer, connector: Any, tmp_path: Path
) -> None:
    default, weekly = "BILLDEFAULT", "BILLWEEKLY"
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))
    for name, config in ((default, {}), (weekly, {"stripe_billing_cron": "0 5 * * 1"})):
        register_tenant(connector, name, ionapi=sandbox_ionapi(sandbox_server.url, name), config=config)
        instance.add_dynamic_partitions("tenants", [name])

    def due(day: int, hour: int) -> dict[str, list[str]]:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, day, hour, 0, tzinfo=UTC),
            resources={"state": StateResource(db_url=connector.settings.db_url)},
        ) as context:
            result = stripe_billing_schedule(context)
        if isinstance(result, dg.SkipReason):
            return {}
        found: dict[str, list[str]] = {}
        for request in result:
            keys = request.partition_key.keys_by_dimension
            found.setdefault(keys["tenant"], []).append(keys["date"])
        return found

    # Daily at 05:00 by default: yesterday (it may have changed after that run) and today.
    assert due(25, 5) == {default: [date(2026, 11, 24).isoformat(), date(2026, 11, 25).isoformat()]}
    # 2026-11-30 is a Monday: the weekly tenant covers the week since the previous Monday.
    assert due(30, 5)[weekly] == [date(2026, 11, d).isoformat() for d in range(23, 31)]
    assert due(25, 6) == {}
