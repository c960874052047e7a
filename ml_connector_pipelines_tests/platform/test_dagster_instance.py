"""The production `dagster.yaml` against the local Postgres: it loads, and a real job runs on it.

The instance is built exactly as in production: dagster.yaml copied into DAGSTER_HOME, connection
details in DAGSTER_PG_* variables, `DagsterInstance.get()`. The tenant is added with the CLI, so its
partition lands in Postgres too.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.definitions import build_resources, defs
from ml_connector_pipelines.integrations.event_runs import TENANT_EVENTS_TAG
from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.integrations.partitions import TENANTS, partition_key
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi

from .conftest import CliEnv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def production_instance(cli: CliEnv, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> CliEnv:
    """DAGSTER_HOME holds the repo's dagster.yaml; DAGSTER_PG_* point at a fresh database."""
    shutil.copy(REPO / "dagster.yaml", cli.dagster_home / "dagster.yaml")
    # The shared volume of the image (ML_CONNECTOR_STORAGE and the compute logs under it), in tmp.
    monkeypatch.setenv("ML_CONNECTOR_STORAGE", str(cli.home.parent / "storage"))
    monkeypatch.setenv("ML_CONNECTOR_COMPUTE_LOGS", str(cli.home.parent / "storage" / "compute_logs"))
    url = sa.make_url(postgres_url)
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", url.database or "")
    monkeypatch.setenv("DAGSTER_PG_USERNAME", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    return cli


def test_dagster_yaml_loads_postgres_storage_and_the_queued_coordinator(production_instance: CliEnv) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)

        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 20
        assert list(queue.tag_concurrency_limits) == [
            {"key": "dagster/partition/tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 2},
            {"key": TENANT_EVENTS_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        ]
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 2
        assert instance.run_monitoring_enabled
        assert not instance.telemetry_enabled


def test_a_job_runs_on_the_production_instance_and_is_read_back_from_postgres(
    production_instance: CliEnv, sandbox_server: SandboxServer, postgres_url: str
) -> None:
    name = f"PG{datetime.now(UTC).strftime('%H%M%S%f')}"
    ionapi = production_instance.write_ionapi(sandbox_ionapi(sandbox_server.url, name))
    added = production_instance("tenants", "add", name, "--ionapi", str(ionapi))
    assert added.code == 0, added.err
    today = datetime.now(UTC).date()
    extract_keys = [key for asset in infor_extracts for key in asset.keys]

    with dg.DagsterInstance.get() as instance:
        assert instance.has_dynamic_partition(TENANTS.name, name)  # the CLI wrote it to Postgres
        # The main job, narrowed to the Infor extracts (the pushes have their own tests).
        extracts_job = defs.resolve_job_def("main").get_subset(asset_selection=set(extract_keys))
        result = extracts_job.execute_in_process(
            partition_key=partition_key(name, today),
            instance=instance,
            resources=build_resources(db_url=Settings.from_env().db_url),
        )
        assert result.success
        run_id = result.run_id

    # A fresh instance (another process, in production) reads the run and its materializations back.
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition/tenant"] == name
        held = sandbox_server.get_state("infor")["tenants"][name]
        seeded = {k: len(v) for k, v in held.items() if isinstance(v, list)}
        rows = 0
        for key in extract_keys:
            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.run_id == run_id
            materialization = event.asset_materialization
            assert materialization is not None
            assert materialization.partition == partition_key(name, today)
            assert materialization.metadata["requests_used"].value >= 1
            row_count = materialization.metadata["row_count"].value
            assert 0 <= row_count <= seeded[key.path[-1].removeprefix("infor_")]
            rows += row_count
        assert rows > 0  # the seeded records modified today really came through

    # And it really is in Postgres: the run, its materializations and the tenant partition.
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        status = conn.execute(sa.text("select status from runs where run_id = :r"), {"r": run_id}).scalar()
        materialized = conn.execute(
            sa.text(
                "select distinct asset_key from event_logs"
                " where run_id = :r and dagster_event_type = 'ASSET_MATERIALIZATION'"
            ),
            {"r": run_id},
        ).scalars()
        partitions = conn.execute(
            sa.text("select partition from dynamic_partitions where partitions_def_name = 'tenants'")
        ).scalars()
        assert status == "SUCCESS"
        assert {dg.AssetKey.from_db_string(k) for k in materialized} == set(extract_keys)
        assert list(partitions) == [name]
    engine.dispose()
