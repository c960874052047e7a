"""The Cleo pair in Dagster: `cleo_edi` sends a day's POs as 850s, the mailbox sensor stores what
partners sent, `cleo_inbound_job` books supplier 810s in Infor; replays create nothing twice, and a
tenant without Cleo is skipped with a reason."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import dagster as dg
import httpx
import pytest

from ml_connector_pipelines.integrations.cleo.definitions import cleo_mailbox_sensor
from ml_connector_pipelines.integrations.kit.sensors import CollectFailed
from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant

from .conftest import sandbox_credentials


def cleo_tenant_env(
    sandbox: Any, connector: Any, transport: str = "rest", exportmi_locked: bool = False
) -> tuple[TenantEnv, dict, date]:
    env = make_tenant(sandbox, connector)
    # The Infor sandbox seeds a tenant on first use; its open POs of one supplier and one day.
    httpx.post(f"{sandbox.url}/infor/{env.name}/as/token.oauth2", timeout=30)
    infor = env.infor_state()
    order = next(po for po in infor["purchase_orders"] if po["status"] == "open" and po["lines"])
    gl = next(a for a in infor["gl_accounts"] if a["dimension"] == 1)
    partner = {
        "alias": f"SUP-{order['supplier_id']}",
        "isa_id": f"SUP{order['supplier_id']}",
        "supplier_id": order["supplier_id"],
        "transport": transport,
        "gl_account": gl["account_id"],
    }
    config = {
        "cleo_trading_partners": [partner],
        "cleo_isa_id": "BUYER" + env.name[:10],
        # APS450MI/AddLine takes no accounting dimensions: M3 codes PO-matched lines from the PO.
        "m3_ap_line_accounting": "derive",
    }
    if exportmi_locked:
        config["m3_exportmi"] = False
        url = f"{sandbox.url}/_sandbox/infor/tenants/{env.name}/config"
        httpx.put(url, json={"exportmi": False}, timeout=30).raise_for_status()
    cleo = sandbox_credentials(sandbox.simulator("cleo").credentials(), env.name)
    register_tenant(
        connector,
        env.name,
        ionapi=sandbox_ionapi(sandbox.url, env.name),
        config=config,
        cleo=cleo,
        instance=env.instance,
    )
    return env, {**partner, "order": order}, date.fromisoformat(order["modified_date"])


def mailbox(env: TenantEnv, alias: str) -> dict[str, list[dict[str, Any]]]:
    return env.sandbox.get_state("cleo")["accounts"][env.name]["mailboxes"][alias]


@pytest.mark.parametrize("exportmi", ["open", "locked"])
def test_cleo_edi_sends_the_days_purchase_orders_once(
    sandbox_server: Any, connector: Any, exportmi: str
) -> None:
    """Also on an M3 tenant that locks EXPORTMI (issue 9): the POs come from PPS200MI/SearchHead."""
    env, partner, day = cleo_tenant_env(sandbox_server, connector, exportmi_locked=exportmi == "locked")
    exported_before = env.infor_state()["m3_calls"].get("EXPORTMI/Select", 0)
    result = env.run("cleo_edi", day)
    assert result.success
    supplier = partner["supplier_id"]
    expected = {
        po["po_number"]
        for po in env.infor_state()["purchase_orders"]
        if po["supplier_id"] == supplier
        and po["status"] == "open"
        and po["lines"]
        and po["modified_date"] == day.isoformat()
    }
    sent = Counter(f["name"].split("_")[1] for f in mailbox(env, partner["alias"])["upload"])
    assert set(sent) == expected and set(sent.values()) == {1}
    # Replaying the partition uploads nothing new.
    assert env.run("cleo_edi", day).success
    assert Counter(f["name"].split("_")[1] for f in mailbox(env, partner["alias"])["upload"]) == sent
    calls = env.infor_state()["m3_calls"]
    if exportmi == "locked":
        assert calls.get("EXPORTMI/Select", 0) == exported_before and calls.get("PPS200MI/SearchHead")


@pytest.mark.parametrize("exportmi", ["open", "locked"])
def test_mailbox_sensor_and_inbound_job_book_each_810_once(
    sandbox_server: Any, connector: Any, exportmi: str
) -> None:
    env, partner, day = cleo_tenant_env(
        sandbox_server, connector, transport="sftp", exportmi_locked=exportmi == "locked"
    )
    assert env.run("cleo_edi", day).success
    order = partner["order"]
    lines = [{"quantity": li["quantity"], "unit_price": li["unit_price"], "buyer_part": li["item_number"]}
             for li in order["lines"]]  # fmt: skip
    url = f"{sandbox_server.url}/_sandbox/cleo/accounts/{env.name}/mailboxes/{partner['alias']}/invoices"
    body = {"sender_id": partner["isa_id"], "po_number": order["po_number"], "lines": lines}
    httpx.post(url, json={**body, "invoice_number": "DG-1"}, timeout=30).raise_for_status()
    httpx.post(
        url, json={**body, "invoice_number": "DG-2", "malformed": "bad_date"}, timeout=30
    ).raise_for_status()

    expected_requests = [[env.name], []]  # the second tick finds nothing new to store
    for expected in expected_requests:
        with dg.build_sensor_context(instance=env.instance, resources=env.resources) as context:
            requests = cleo_mailbox_sensor(context).run_requests
        assert [r.partition_key for r in requests] == expected
        assert env.run("cleo_inbound_job").success  # the second run replays nothing
    assert mailbox(env, partner["alias"])["download"] == []
    booked = [i for i in env.infor_state()["ap_invoices"] if i["invoice_number"] == "DG-1"]
    assert len(booked) == 1 and booked[0]["supplier_id"] == partner["supplier_id"]
    assert not [i for i in env.infor_state()["ap_invoices"] if i["invoice_number"] == "DG-2"]
    flagged = connector.state.audit.history(env.name, "cleo_ap_invoices_810_in")
    assert any(
        e.action == "flagged" and "BIG segment" in (e.reason or "") and "element 01" in e.reason
        for e in flagged
    )
    acks = [f for f in mailbox(env, partner["alias"])["upload"] if f["name"].startswith("997_")]
    assert len(acks) == 2  # one per 810 file: accepted and rejected


def test_a_tenant_without_cleo_is_skipped_with_a_reason(sandbox_server: Any, connector: Any) -> None:
    env = make_tenant(sandbox_server, connector)
    result = env.run("cleo_edi", date.today())
    assert result.success
    pushed = [
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key.path[0] == "cleo"
    ]
    assert pushed and all("has no cleo credentials" in str(m.metadata["reason"].value) for m in pushed)


def test_replays_under_faults_send_each_850_and_book_each_810_once(
    sandbox_server: Any, connector: Any
) -> None:
    env, partner, day = cleo_tenant_env(sandbox_server, connector)
    order = partner["order"]
    faults = {"profile": "flaky", "seed": 3, "systems": ["cleo"], "overrides": {"commit_then_timeout": 0.25}}
    httpx.put(f"{sandbox_server.url}/_sandbox/faults", json=faults, timeout=30).raise_for_status()
    try:
        for _ in range(4):  # a failed record fails the run's blocking check; the rerun resolves it
            if env.run("cleo_edi", day).success:
                break
        lines = [{"quantity": li["quantity"], "unit_price": li["unit_price"], "buyer_part": li["item_number"]}
                 for li in order["lines"]]  # fmt: skip
        url = f"{sandbox_server.url}/_sandbox/cleo/accounts/{env.name}/mailboxes/{partner['alias']}/invoices"
        body = {"sender_id": partner["isa_id"], "po_number": order["po_number"], "lines": lines}
        httpx.post(url, json={**body, "invoice_number": "FLT-1"}, timeout=30).raise_for_status()
        for _ in range(4):  # sensor ticks and inbound runs, some of them hit by faults
            with dg.build_sensor_context(instance=env.instance, resources=env.resources) as context:
                try:
                    cleo_mailbox_sensor(context)
                except CollectFailed:
                    pass  # Cleo unreachable this tick (a red tick in the UI); the next one retries
            env.run("cleo_inbound_job")
        injected = httpx.get(f"{sandbox_server.url}/_sandbox/faults", timeout=30).json()["injected"]
    finally:
        sandbox_server.set_faults("none")
    assert injected.get("commit_then_timeout", 0) > 0
    assert env.run("cleo_edi", day).success
    with dg.build_sensor_context(instance=env.instance, resources=env.resources) as context:
        cleo_mailbox_sensor(context)
    assert env.run("cleo_inbound_job").success
    upload = mailbox(env, partner["alias"])["upload"]
    sent = Counter(f["name"].rsplit("_", 1)[0] for f in upload)
    assert sent and set(sent.values()) == {1}  # one file per PO and one 997 per 810 file
    assert len([i for i in env.infor_state()["ap_invoices"] if i["invoice_number"] == "FLT-1"]) == 1


def test_an_810_flagged_for_an_unknown_po_is_booked_once_after_the_fix_and_a_replay(
    sandbox_server: Any, connector: Any
) -> None:
    from ml_connector_pipelines.definitions import defs
    from ml_connector_pipelines.integrations.kit.replay import replay

    env, partner, day = cleo_tenant_env(sandbox_server, connector)
    order = partner["order"]
    lines = [{"quantity": li["quantity"], "unit_price": li["unit_price"], "buyer_part": li["item_number"]}
             for li in order["lines"]]  # fmt: skip
    url = f"{sandbox_server.url}/_sandbox/cleo/accounts/{env.name}/mailboxes/{partner['alias']}/invoices"
    body = {"sender_id": partner["isa_id"], "po_number": order["po_number"], "lines": lines}
    # The supplier invoices before our 850 went out (the PO was never sent over EDI): flagged.
    env.run("cleo_edi", date(2025, 1, 1))  # creates the connection (mailbox), sends no PO of that day
    httpx.post(url, json={**body, "invoice_number": "RPL-1"}, timeout=30).raise_for_status()
    with dg.build_sensor_context(instance=env.instance, resources=env.resources) as context:
        cleo_mailbox_sensor(context)
    assert env.run("cleo_inbound_job").success
    flagged = connector.state.ledger.get(
        env.name, "cleo_ap_invoices_810_in", f"{partner['supplier_id']}/RPL-1"
    )
    assert flagged.status == "flagged" and "unknown PO" in flagged.reason

    # Fixed: the PO goes out as an 850; the dead letter is replayed and the invoice booked, once.
    assert env.run("cleo_edi", day).success
    report = replay(connector.state, defs, env.instance, env.resources, env.name, "cleo_ap_invoices_810_in")
    assert report.records == [f"{partner['supplier_id']}/RPL-1"] and all(report.runs.values())
    assert len([i for i in env.infor_state()["ap_invoices"] if i["invoice_number"] == "RPL-1"]) == 1
    with pytest.raises(ValueError, match="nothing flagged"):
        replay(connector.state, defs, env.instance, env.resources, env.name, "cleo_ap_invoices_810_in")
