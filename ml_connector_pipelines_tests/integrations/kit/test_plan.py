"""The write preview (`ml-connector plan`): writes nothing, and predicts what the next run does.

Each test plans a tenant-day on the sandbox over HTTP, checks that no simulator's state and no ledger
or audit row changed, then runs the real pair job for that partition and compares, record by record,
what the plan said with what the run did (the run's audit rows).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from schwifty import IBAN

from ml_connector_pipelines import definitions  # noqa: F401  (registers every push flow)
from ml_connector_pipelines.cli import main
from ml_connector_pipelines.core import tables
from ml_connector_pipelines.core.errors import WriteRefused
from ml_connector_pipelines.core.sync import UNCHANGED
from ml_connector_pipelines.integrations.kit.plan import FlowPlan, plan_partition
from ml_connector_pipelines.integrations.partitions import partition_key
from ml_connector_pipelines.systems.wise.client import WiseClient
from ml_connector_pipelines_tests.conftest import TenantEnv
from ml_connector_pipelines_tests.integrations.wise.wise_env import infor_records, patch_infor

WISE_FLOWS = ["wise_recipients", "wise_quotes", "wise_transfers"]
STRIPE_FLOWS = ["stripe_customers", "stripe_invoices"]
SYSTEMS = ("infor", "wise", "stripe")


def today() -> date:
    return datetime.now(UTC).date()


def iban_is_valid(value: str) -> bool:
    try:
        IBAN(value)
    except ValueError:
        return False
    return True


# Reads move these (tokens, request and per-transaction call counts, the Wise clock); nothing else may.
CALL_COUNTERS = {"infor": ("tokens_issued", "requests", "m3_calls"), "wise": ("now", "calls")}


def _without_call_counters(system: str, state: dict[str, Any]) -> dict[str, Any]:
    state = {k: v for k, v in state.items() if k not in CALL_COUNTERS.get(system, ())}
    if system == "infor":
        state["tenants"] = {
            name: {k: v for k, v in held.items() if k not in CALL_COUNTERS["infor"]}
            for name, held in state["tenants"].items()
        }
    if system == "wise":  # reads are counted per user
        state["users"] = {
            user_id: {k: v for k, v in held.items() if k not in CALL_COUNTERS["wise"]}
            for user_id, held in state["users"].items()
        }
    return state


def snapshot(tenant: TenantEnv) -> dict[str, Any]:
    """Every simulator's state (over HTTP, call counters aside) and every ledger and audit row."""
    # The Wise simulator creates a token's user on its first call: make that call now.
    with WiseClient(f"{tenant.sandbox.url}/wise", token=tenant.wise_token) as client:
        client.business_profile_id()
    found: dict[str, Any] = {
        system: _without_call_counters(system, tenant.sandbox.get_state(system)) for system in SYSTEMS
    }
    with tenant.connector.state.store.session() as conn:
        for table in (tables.ledger, tables.audit_events):
            found[table.name] = [dict(row) for row in conn.execute(sa.select(table)).mappings()]
    return found


def planned(plans: list[FlowPlan]) -> Counter[tuple[str, str, str]]:
    """(flow, record, action) of every record the plan names, dependencies synced on the spot too.

    Unchanged records are left out: a real run counts them in its metadata, it does not audit them."""
    found: Counter[tuple[str, str, str]] = Counter()
    for plan in plans:
        results = [(plan.flow, r) for r in plan.results]
        results += [(flow, r) for flow, spot in plan.on_the_spot.items() for r in spot]
        found.update((flow, r.source_id, r.action) for flow, r in results if r.reason != UNCHANGED)
    return found


def done_by_run(tenant: TenantEnv, run_id: str, flows: list[str]) -> Counter[tuple[str, str, str]]:
    events = tenant.connector.state.audit.history(tenant.name)
    return Counter(
        (e.flow, e.source_id, e.action)
        for e in events
        if e.run_id == run_id and e.flow in flows and e.action != "alert"
    )


def plan_then_run(tenant: TenantEnv, job: str, day: date, flows: list[str]) -> list[FlowPlan]:
    """Plan, check that nothing was written, run the real job, check the plan predicted it."""
    before = snapshot(tenant)
    plans = plan_partition(tenant.resources, tenant.name, day, flows)
    assert snapshot(tenant) == before, "the plan wrote something"
    result = tenant.run(job, day)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    predicted, done = planned(plans), done_by_run(tenant, result.run_id, flows)
    assert predicted == done, (sorted((predicted - done).elements()), sorted((done - predicted).elements()))
    return plans


def actions(plans: list[FlowPlan], flow: str) -> dict[str, str]:
    return {r.source_id: r.action for p in plans if p.flow == flow for r in p.results}


def test_wise_plan_writes_nothing_and_predicts_creates_flags_skips_and_recreates(tenant: TenantEnv) -> None:
    suppliers = infor_records(tenant, "suppliers")
    broken = next(
        s
        for s in suppliers
        if s["bank_account"]["kind"] == "iban" and not iban_is_valid(s["bank_account"]["iban"])
    )
    day = date.fromisoformat(broken["modified_date"])

    first = plan_then_run(tenant, "wise_payouts", day, WISE_FLOWS)
    recipients = actions(first, "wise_recipients")
    assert recipients[broken["supplier_id"]] == "flagged"
    assert "created" in recipients.values()
    assert next(
        r for p in first for r in p.results if r.source_id == broken["supplier_id"]
    ).reason.startswith("iban: invalid IBAN")

    # Planned again after that run: everything it did is now unchanged.
    again = plan_then_run(tenant, "wise_payouts", day, WISE_FLOWS)
    assert set(actions(again, "wise_recipients").values()) <= {"skipped", "flagged"}

    # A changed bank account: the recipient is deleted and recreated (changed record).
    created = min(
        s["supplier_id"]
        for s in suppliers
        if recipients.get(s["supplier_id"]) == "created"
        and s["bank_account"]["kind"] == "iban"
        and s["bank_account"]["currency"] == "EUR"
    )
    new_iban = IBAN("DE89 3704 0044 0532 0130 00").compact
    patch_infor(tenant, "suppliers", created, {"bank_account": {"iban": new_iban}})
    changed = plan_then_run(tenant, "wise_payouts", today(), WISE_FLOWS)
    reasons = {r.source_id: r.reason for p in changed for r in p.results}
    assert actions(changed, "wise_recipients")[created] == "recreated", reasons[created]


def test_stripe_plan_predicts_creates_updates_and_flags(tenant: TenantEnv) -> None:
    httpx.put(f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/seed", json={}, timeout=30)
    customers = tenant.infor_state()["customers"]
    first, second = customers[0], customers[1]
    day = date.fromisoformat(first["modified_date"])

    # The busiest day first: customers and invoices created (some customers on the spot).
    busiest = Counter(
        i["modified_date"] for i in tenant.infor_state()["ar_invoices"] if i["status"] == "open"
    )
    billed = plan_then_run(
        tenant, "stripe_billing", date.fromisoformat(busiest.most_common(1)[0][0]), STRIPE_FLOWS
    )
    assert "created" in actions(billed, "stripe_invoices").values()

    # Then a customer's own day, then it changed in Infor (stamped today) along with a bad one.
    plan_then_run(tenant, "stripe_billing", day, STRIPE_FLOWS)
    patch_infor(tenant, "customers", first["customer_id"], {"name": first["name"] + " Ltd"})
    patch_infor(tenant, "customers", second["customer_id"], {"country": "XX"})

    plans = plan_then_run(tenant, "stripe_billing", today(), STRIPE_FLOWS)
    customers_plan = actions(plans, "stripe_customers")
    assert customers_plan[first["customer_id"]] == "updated"
    assert customers_plan[second["customer_id"]] == "flagged"


def test_a_write_outside_the_session_is_refused(tenant: TenantEnv) -> None:
    from ml_connector_pipelines.integrations.kit.plan import read_only

    with read_only(WiseClient(f"{tenant.sandbox.url}/wise", token=tenant.wise_token)) as client:
        client.business_profile_id()  # reads go through
        with pytest.raises(WriteRefused):
            client.create_recipient({"currency": "EUR"})


def test_cli_plan_prints_the_preview(tenant: TenantEnv, capsys: pytest.CaptureFixture[str]) -> None:
    supplier = infor_records(tenant, "suppliers")[0]
    before = snapshot(tenant)
    assert main(["plan", tenant.name, "--flow", "wise_recipients", "--date", supplier["modified_date"]]) == 0
    out = capsys.readouterr().out
    assert "wise_recipients -> wise" in out and supplier["supplier_id"] in out
    assert snapshot(tenant) == before
    assert partition_key(tenant.name, date.fromisoformat(supplier["modified_date"]))


def test_the_write_preview_job_shows_the_plan_in_its_metadata(tenant: TenantEnv) -> None:
    supplier = infor_records(tenant, "suppliers")[0]
    before = snapshot(tenant)
    config = {"tenant": tenant.name, "date": supplier["modified_date"], "flows": ["wise_recipients"]}
    result = definitions.defs.resolve_job_def("write_preview").execute_in_process(
        run_config={"ops": {"plan_tenant_day": {"config": config}}},
        instance=tenant.instance,
        resources=tenant.resources,
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    table = output.event_specific_data.metadata["wise_recipients"].value
    assert supplier["supplier_id"] in table
    assert snapshot(tenant) == before


def test_read_only_infor_reads_but_refuses_m3_writes_sent_as_get(tenant: TenantEnv) -> None:
    from ml_connector_pipelines.integrations.kit.plan import read_only

    supplier = infor_records(tenant, "suppliers")[0]
    before = snapshot(tenant)
    with read_only(tenant.resources["infor"].adapter(tenant.name)) as adapter:
        assert adapter.supplier(supplier["supplier_id"]) is not None  # reads go through
        with pytest.raises(WriteRefused, match="StartEntry"):
            adapter.m3.execute("PPS370MI", "StartEntry", BAOR="PLAN")
    assert snapshot(tenant) == before
