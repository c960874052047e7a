"""Procurify's part of `ml-connector demo`: the demo tenant gets its sandbox Procurify domain, the
`procurify_procurement` job runs over the seeded days (approved POs and bills land in Infor; the
ones naming an unknown vendor, account code or department are flagged and alerted), then a finance
user adds the missing account code in Infor and the flagged PO's day is run again: it lands once."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from ...sandbox.host import SandboxServer
from ...sandbox.infor.simulator import sandbox_ionapi
from ...sandbox.procurify.seed import CHANGE_WINDOW_DAYS, UNKNOWN_ACCOUNT_CODE
from ...systems.registry import SYSTEMS
from ..partitions import partition_key
from ..tenancy import Connector, register_tenant
from .schedules import JOB_NAME

DEMO_CONFIG = {
    "procurify_ap_division": "AAA",  # the sandbox's one division
    "m3_ap_line_accounting": "derive",
    "procurify_reference_lookback_days": CHANGE_WINDOW_DAYS,
}
Run = Callable[[str, Any, dg.DagsterInstance, str], dg.ExecuteInProcessResult]


def _add_account_in_infor(sandbox: SandboxServer, tenant: str, account_id: str, description: str) -> None:
    """Playing the Infor finance user who adds the account code (no sandbox control route for it yet)."""
    simulator = sandbox.simulator("infor")
    with simulator._lock:
        data = simulator.tenant(tenant)
        data.gl_accounts[account_id] = {
            "dimension": 1,
            "account_id": account_id,
            "description": description,
            "modified_date": data.today_iso,
        }
        data.changed("gl_accounts")


def run_procurify_demo(
    connector: Connector, sandbox: SandboxServer, instance: dg.DagsterInstance, tenant: str, run: Run
) -> list[dg.ExecuteInProcessResult]:
    register_tenant(
        connector,
        tenant,
        ionapi=sandbox_ionapi(sandbox.url, tenant),
        product=connector.state.tenants.get(tenant).product,  # type: ignore[union-attr]
        config=DEMO_CONFIG,
        procurify=SYSTEMS["procurify"].sandbox_credentials(sandbox.url, tenant),  # type: ignore[misc]
        instance=instance,
    )
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in reversed(range(CHANGE_WINDOW_DAYS))]
    results = [
        run(JOB_NAME, partition_key(tenant, day), instance, f"{JOB_NAME} for {tenant} / {day}")
        for day in days
    ]
    code, text = UNKNOWN_ACCOUNT_CODE
    _add_account_in_infor(sandbox, tenant, code, text)
    print(f"- account code {code} ({text}) added in Infor; the flagged PO's day runs again")
    first_po = sandbox.get_state("procurify")["tenants"][tenant]["purchase_orders"][0]
    flagged_day = date.fromisoformat(first_po["last_modified"][:10])
    results.append(
        run(JOB_NAME, partition_key(tenant, flagged_day), instance, f"{JOB_NAME} replay of {flagged_day}")
    )
    return results
