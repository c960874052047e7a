"""Issue 14, as the Dagster instance records it: failures are red (runs, ticks, checks) and alerted,
a paused tenant is skipped with the reason and loses nothing, every asset and check is described and
owned, a running process survives `keys rotate`, the receiver's health checks the database."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
from starlette.testclient import TestClient

from ml_connector_pipelines.cli import main
from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.state import State
from ml_connector_pipelines.core.webhooks import create_webhook_app
from ml_connector_pipelines.definitions import defs
from ml_connector_pipelines.integrations.partitions import TENANTS
from ml_connector_pipelines.integrations.run_alerts import failed_run_alert
from ml_connector_pipelines.integrations.stripe.sensors import stripe_events_sensor
from ml_connector_pipelines.integrations.tenancy import Connector, set_config
from ml_connector_pipelines.integrations.wise.schedules import wise_payment_cycle_schedule
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def point_at_nothing(tenant: TenantEnv, system: str) -> None:
    creds = tenant.connector.credentials.get(tenant.name, system)
    tenant.connector.credentials.put(tenant.name, system, {**creds, "base_url": closed_port_url()})


def metadata(result: Any, asset: str) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def checks(result: Any) -> dict[str, Any]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_payout_status_run_whose_polling_failed_ends_failed_and_is_alerted(
    sandbox_server: SandboxServer, connector: Any
) -> None:
    tenant = make_tenant(sandbox_server, connector)
    point_at_nothing(tenant, "wise")

    result = tenant.run("wise_payout_status_job")

    assert not result.success
    run = tenant.instance.get_run_by_id(result.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    failed = checks(result)["wise_payout_status_no_failed_records"]
    assert not failed.passed and "polling failed: RetryExhausted" in failed.description
    assert "ConnectError" in failed.description

    # The run-failure sensor turns it into an alert (audit row) naming the tenant and the job.
    [failure] = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"]
    with dg.build_run_status_sensor_context(
        sensor_name="failed_run_alert",
        dagster_instance=tenant.instance,
        dagster_run=run,
        dagster_event=failure,
        resources={"state": tenant.resources["state"]},
    ) as context:
        failed_run_alert(context.for_run_failure())
    [alert] = [e for e in connector.state.audit.history(tenant.name) if e.action == "alert"]
    assert alert.flow == "wise_payout_status_job" and alert.source_id == result.run_id
    assert f"run {result.run_id} of wise_payout_status_job failed" in alert.reason


def test_a_sensor_whose_source_is_unreachable_fails_its_tick(
    sandbox_server: SandboxServer, connector: Any
) -> None:
    tenant = make_tenant(sandbox_server, connector)
    point_at_nothing(tenant, "stripe")

    with dg.build_sensor_context(instance=tenant.instance, resources=tenant.resources) as context:
        with pytest.raises(
            Exception, match=f"collecting stripe events failed for {tenant.name}: RetryExhausted"
        ):
            stripe_events_sensor(context)


def test_a_paused_tenant_is_skipped_with_the_reason_and_its_inbox_waits(
    sandbox_server: SandboxServer, connector: Any, tmp_path: Any
) -> None:
    tenant = make_tenant(sandbox_server, connector)
    connector.state.inbox.put("stripe", tenant.name, "evt_paused_1", json.dumps({"type": "ping"}))
    set_config(connector, tenant.name, {"paused": True, "paused_reason": "month-end close"})

    with dg.build_sensor_context(instance=tenant.instance, resources=tenant.resources) as context:
        assert list(stripe_events_sensor(context).run_requests or []) == []
    run = tenant.run("stripe_ar_payments_job")
    assert run.success
    reason = metadata(run, "infor_ar_payments")["reason"]
    assert f"tenant {tenant.name} is paused (month-end close)" in reason
    main_run = tenant.run("main", datetime.now(UTC).date())
    assert main_run.success
    for asset in ("infor_suppliers", "wise_recipients", "stripe_customers"):
        assert "is paused" in metadata(main_run, asset)["reason"], asset
    assert [e.event_id for e in connector.state.inbox.pending("stripe", tenant.name)] == ["evt_paused_1"]

    # Its payment cycle is due every quarter of an hour, yet the schedule leaves it out.
    set_config(connector, tenant.name, {"payment_cron": "*/15 * * * *"})
    due = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert schedule_requests(tenant, due, tmp_path) == []

    set_config(connector, tenant.name, {}, unset=["paused", "paused_reason"])
    with dg.build_sensor_context(instance=tenant.instance, resources=tenant.resources) as context:
        [request] = stripe_events_sensor(context).run_requests
    assert request.partition_key == tenant.name
    assert schedule_requests(tenant, due, tmp_path), "resumed: the schedule asks for its runs again"


def schedule_requests(tenant: TenantEnv, at: datetime, tmp: Any) -> list[dg.RunRequest]:
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp))  # a schedule context needs a ref
    if not instance.has_dynamic_partition(TENANTS.name, tenant.name):
        instance.add_dynamic_partitions(TENANTS.name, [tenant.name])
    with dg.build_schedule_context(
        instance=instance, resources={"state": tenant.resources["state"]}, scheduled_execution_time=at
    ) as context:
        result = wise_payment_cycle_schedule(context)
    return [] if isinstance(result, dg.SkipReason) else list(result)


def test_every_asset_and_check_is_described_owned_and_tagged() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.owners == ["team:integrations"], key
        assert {"pair", "system"} <= set(node.tags), key
    for check in graph.asset_check_keys:
        assert graph.get_check_spec(check).description, check
    assert {c.name for c in graph.asset_check_keys} >= {
        "wise_payout_status_no_failed_records",
        "infor_ar_payments_no_flagged_records",
    }


def test_a_running_process_reads_credentials_after_keys_rotate(
    sandbox_server: SandboxServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_connector_pipelines.core.vault import generate_key

    home = tmp_path / "home"
    home.mkdir()
    (home / "master.key").write_text(generate_key() + "\n")
    monkeypatch.setenv("ML_CONNECTOR_HOME", str(home))
    monkeypatch.setenv("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP", "1")
    for name in ("ML_CONNECTOR_MASTER_KEY", "ML_CONNECTOR_MASTER_KEY_FILE", "ML_CONNECTOR_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    daemon = Connector.open()  # a long-running process: its vault holds the old key only
    tenant = make_tenant(sandbox_server, daemon)

    assert main(["keys", "rotate"]) == 0  # another process: new key first, everything re-encrypted

    assert daemon.credentials.get(tenant.name, "wise")["token"] == tenant.wise_token
    with dg.build_sensor_context(instance=tenant.instance, resources=tenant.resources) as context:
        stripe_events_sensor(context)  # the next tick works without reloading the code location


def test_webhook_health_checks_the_database(tmp_path: Any) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/state.db", home=tmp_path)
    state = State.open(settings)
    app = create_webhook_app(state.inbox, {})
    with TestClient(app) as client:
        ok = client.get("/webhooks/health")
        assert ok.status_code == 200 and ok.json()["database"] == "ok"
        state.store.engine.dispose()
        (tmp_path / "state.db").unlink()
        (tmp_path / "state.db").mkdir()  # the database file is gone and cannot be recreated
        down = client.get("/webhooks/health")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable" and "state store unreachable" in down.json()["database"]
