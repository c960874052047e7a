"""The `main` job as users run it: every integration for one tenant-day, replayable."""

from datetime import UTC, datetime

import dagster as dg

from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant
from ml_connector_pipelines_tests.integrations.wise.wise_env import wise_user

TODAY = datetime.now(UTC).date()
PUSH_ASSETS = ["wise_recipients", "wise_quotes", "wise_transfers", "stripe_customers", "stripe_invoices"]


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }


def _targets(tenant: TenantEnv) -> tuple[list, list, list]:
    wise = wise_user(tenant)
    stripe = tenant.sandbox.get_state("stripe")["accounts"][tenant.stripe_key]
    return wise["recipients"], stripe["customers"], stripe["invoices"]


def test_infor_only_tenant_skips_targets_it_does_not_use(sandbox_server, connector) -> None:
    instance = dg.DagsterInstance.ephemeral()
    name = "INFORONLY"
    register_tenant(connector, name, ionapi=sandbox_ionapi(sandbox_server.url, name), instance=instance)
    from ml_connector_pipelines.definitions import build_resources, defs
    from ml_connector_pipelines.integrations.partitions import partition_key

    result = defs.resolve_job_def("main").execute_in_process(
        partition_key=partition_key(name, TODAY),
        instance=instance,
        resources=build_resources(db_url=connector.settings.db_url),
        raise_on_error=False,
    )

    assert result.success
    metadata = _metadata(result)
    for asset in [*PUSH_ASSETS, "stripe_reconciliation"]:
        assert metadata[asset]["configured"] is False, asset
    assert metadata["infor_suppliers"]["row_count"] > 0
    assert [e for e in connector.state.audit.history(name) if e.flow.startswith(("wise", "stripe"))] == []


def test_main_job_pushes_every_target_and_a_replay_sends_nothing(sandbox_server, connector) -> None:
    # A fixed name: the sandbox seeds from it, so today's records (and this test) are the same every day.
    tenant = make_tenant(sandbox_server, connector, name="MAINJOB")
    first = tenant.run("main", TODAY)
    assert first.success
    counts = _metadata(first)
    assert counts["wise_recipients"]["created"] > 0
    assert counts["stripe_customers"]["created"] > 0
    assert counts["stripe_invoices"]["created"] > 0
    assert all(counts[a]["failed"] == 0 for a in PUSH_ASSETS)
    recipients, customers, invoices = _targets(tenant)

    replay = tenant.run("main", TODAY)

    assert replay.success
    again = _metadata(replay)
    assert all(again[a]["created"] == 0 and again[a]["failed"] == 0 for a in PUSH_ASSETS)
    assert _targets(tenant) == (recipients, customers, invoices)
