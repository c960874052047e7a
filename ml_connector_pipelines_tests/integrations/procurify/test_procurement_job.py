"""The `procurify_procurement` job on the kit, end to end over HTTP: Procurify extracts, reference
alignment, pushes into Infor (M3 and SyteLine); the flagged PO lands once after Infor gets its
account code and the flow is replayed; tenants without Procurify are skipped with the reason."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ml_connector_pipelines.definitions import defs
from ml_connector_pipelines.integrations.kit.replay import replay
from ml_connector_pipelines.integrations.procurify.pushers import PURCHASE_ORDERS, REFERENCES
from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.sandbox.procurify.seed import CHANGE_WINDOW_DAYS, UNKNOWN_ACCOUNT_CODE

from ...conftest import TenantEnv, make_tenant
from .procurify_env import add_gl_account, expected_outcomes, procurify_state

CONFIG = {
    "procurify_ap_division": "AAA",  # the sandbox's division / site
    "m3_ap_line_accounting": "derive",
    "procurify_reference_lookback_days": CHANGE_WINDOW_DAYS,
}
JOB = "procurify_procurement"


def days() -> list:
    today = datetime.now(UTC).date()
    return [today - timedelta(days=n) for n in range(CHANGE_WINDOW_DAYS)]


def infor_pos(env: TenantEnv) -> Counter[str]:
    return Counter(
        p["external_ref"]
        for p in env.infor_state()["purchase_orders"]
        if (p.get("external_ref") or "").startswith("PFY-")
    )


def infor_invoices(env: TenantEnv, numbers: set[str]) -> Counter[str]:
    return Counter(
        i["invoice_number"] for i in env.infor_state()["ap_invoices"] if i["invoice_number"] in numbers
    )


@pytest.mark.parametrize("product", ["m3"])  # SyteLine: test_pushers.py, same pushers
def test_the_procurement_job_lands_each_po_and_bill_once_and_replays_the_flagged(
    sandbox_server: SandboxServer, connector: Any, product: str
) -> None:
    env = make_tenant(sandbox_server, connector, product=product, config=CONFIG)
    procurify = procurify_state(sandbox_server, env.name)
    landing_orders, flagged_orders, landing_bills, _ = expected_outcomes(procurify, product)
    bill_numbers = {f"bill/{b['id']}": b["invoice_number"] for b in procurify["bills"]}
    wanted_invoices = Counter(bill_numbers[b] for b in landing_bills)

    for day in days():
        assert env.run(JOB, day).success
    assert infor_pos(env) == Counter(landing_orders)
    assert infor_invoices(env, set(bill_numbers.values())) == wanted_invoices

    audit = connector.state.audit
    flag = [e for e in audit.history(env.name, PURCHASE_ORDERS, "PFY-1") if e.action in ("flagged", "alert")]
    assert [e.action for e in flag] == ["flagged", "alert"] and UNKNOWN_ACCOUNT_CODE[0] in (
        flag[0].reason or ""
    )
    assert {e.details["outcome"] for e in audit.history(env.name, REFERENCES)} >= {
        "match",
        "missing_in_infor",
    }
    flagged = {
        e.source_id for e in connector.state.ledger.entries(env.name, PURCHASE_ORDERS, status="flagged")
    }
    assert flagged == flagged_orders

    # Infor gets the account code; the flagged flow is replayed (its partitions rerun).
    add_gl_account(sandbox_server, env.name, 1, *UNKNOWN_ACCOUNT_CODE)
    report = replay(
        connector.state, defs, env.instance, env.resources, env.name, PURCHASE_ORDERS, record="PFY-1"
    )
    assert report.records == ["PFY-1"] and all(report.runs.values())
    assert infor_pos(env) == Counter(landing_orders | {"PFY-1"})
    assert connector.state.ledger.get(env.name, PURCHASE_ORDERS, "PFY-1").status == "done"

    # Running bill 1's day and today again adds only bill 1 (its account code is in Infor now):
    # nothing lands twice.
    bill_day = datetime.fromisoformat(procurify["bills"][0]["last_modified_datetime"]).date()
    for day in sorted({bill_day, days()[0]}):
        assert env.run(JOB, day).success
    assert infor_pos(env) == Counter(landing_orders | {"PFY-1"})
    assert infor_invoices(env, set(bill_numbers.values())) == wanted_invoices + Counter(
        [bill_numbers["bill/1"]]
    )


def test_a_tenant_without_procurify_is_skipped_with_the_reason(
    sandbox_server: SandboxServer, connector: Any
) -> None:
    import dagster as dg

    from ml_connector_pipelines.definitions import build_resources

    instance = dg.DagsterInstance.ephemeral()
    name = "TNOPROCURIFY"
    register_tenant(connector, name, ionapi=sandbox_ionapi(sandbox_server.url, name), instance=instance)
    env = TenantEnv(name, sandbox_server, connector, instance, build_resources(connector.settings.db_url), {})
    result = env.run(JOB, days()[0])
    assert result.success
    reasons = [
        str(event.materialization.metadata["reason"].value)
        for event in result.get_asset_materialization_events()
        if "reason" in event.materialization.metadata
    ]
    assert reasons and all("does not use procurify" in r or "no procurify credentials" in r for r in reasons)
    # Nothing was written to (or even asked of) Infor for this tenant.
    assert name not in sandbox_server.get_state("infor")["tenants"] or infor_pos(env) == Counter()


def test_the_procurement_job_holds_procurify_only_and_runs_on_its_calendar() -> None:
    job = defs.resolve_job_def(JOB)
    keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert keys == {
        "procurify_purchase_orders",
        "procurify_bills",
        "procurify/procurify_reference_alignment",
        "procurify/procurify_infor_purchase_orders",
        "procurify/procurify_infor_ap_invoices",
    }
    assert {s.name: s.job_name for s in defs.schedules or []}["procurify_procurement_schedule"] == JOB
    main = {key.to_user_string() for key in defs.resolve_job_def("main").asset_layer.selected_asset_keys}
    assert keys <= main
