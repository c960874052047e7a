"""Fixtures shared by the whole suite: a live sandbox over HTTP, and real state stores."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ml_connector_pipelines.sandbox.host import SandboxServer

PG_ADMIN_URL = os.environ.get(
    "ML_CONNECTOR_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    server = SandboxServer(seed=7).start()
    yield server
    server.stop()


def free_port() -> int:
    """A loopback port free right now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DemoRun:
    """One `ml-connector demo` in a tmp home: what it printed, its exit code, the M3 calls the MI
    metadata refused meanwhile, and its homes and sandbox port (the browser tests serve its
    instance). One run per test worker, shared by the demo test and the browser tests."""

    code: int
    out: str
    m3_violations: list[Any]
    root: Path
    sandbox_port: int

    @property
    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_HOME": str(self.root / "dagster_home"),
            "ML_CONNECTOR_HOME": str(self.root / "home"),
            "ML_CONNECTOR_ALLOW_LOOPBACK_HTTP": "1",
        }


def _run_demo(root: Path) -> DemoRun:
    """The demo in this process (its sandbox's M3 checks are read here), in `root`, then the
    environment and working directory as they were."""
    from ml_connector_pipelines.cli import main
    from ml_connector_pipelines.sandbox.infor.data import VIOLATIONS_IN_PROCESS

    port = free_port()
    env = DemoRun(0, "", [], root, port).env
    names = [*env, "ML_CONNECTOR_MASTER_KEY", "ML_CONNECTOR_DB_URL"]
    saved, cwd, out = {name: os.environ.get(name) for name in names}, os.getcwd(), io.StringIO()
    os.environ.pop("ML_CONNECTOR_MASTER_KEY", None)
    os.environ.pop("ML_CONNECTOR_DB_URL", None)
    os.environ.update(env)
    seen = len(VIOLATIONS_IN_PROCESS)
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out):
            code = main(["demo", "--port", str(port)])
    finally:
        os.chdir(cwd)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return DemoRun(code, out.getvalue(), list(VIOLATIONS_IN_PROCESS[seen:]), root, port)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The worker's one demo run: the demo test and the browser tests on a worker share it. (Not
    shared across xdist workers: each worker's browser tests serve it with their own webserver and
    a sandbox on its port.)"""
    return _run_demo(tmp_path_factory.mktemp("demo"))


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to reach the server means "no Postgres here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the local Postgres. Skips without one, except in CI, where it fails."""
    problem = _postgres_available()
    if problem:
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI requires it (.ci/run starts it)")
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"mlc_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield postgres_server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def state_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Every store test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return request.getfixturevalue("postgres_url")


# Integration fixtures: a real state store, vault and Dagster instance, with tenants on the sandbox.


@dataclass
class TenantEnv:
    """One sandbox tenant registered through the same code path as `ml-connector tenants add`."""

    name: str
    sandbox: SandboxServer
    connector: Any
    instance: Any
    resources: dict[str, Any]
    credentials: dict[str, dict[str, Any]]  # per registry system, as registered

    @property
    def wise_token(self) -> str:
        return self.credentials["wise"]["token"]

    @property
    def stripe_key(self) -> str:
        return self.credentials["stripe"]["api_key"]

    def run(self, job_name: str, day: date | None = None, **kwargs: Any) -> Any:
        """Run a job of the code location for this tenant (and day, for tenant x day jobs)."""

        from ml_connector_pipelines.definitions import defs
        from ml_connector_pipelines.integrations.partitions import partition_key

        job = defs.resolve_job_def(job_name)
        key: Any = partition_key(self.name, day) if day is not None else self.name
        return job.execute_in_process(
            partition_key=key,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
            **kwargs,
        )

    def materialize(self, assets: list[Any], day: date | None = None, **kwargs: Any) -> Any:
        import dagster as dg

        from ml_connector_pipelines.integrations.partitions import partition_key

        key: Any = partition_key(self.name, day) if day is not None else self.name
        return dg.materialize(
            assets,
            partition_key=key,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
            **kwargs,
        )

    def infor_state(self) -> dict[str, Any]:
        return self.sandbox.get_state("infor")["tenants"][self.name]


@pytest.fixture
def connector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh state store + vault in tmp_path, configured through the environment like production."""
    from ml_connector_pipelines.core.vault import generate_key
    from ml_connector_pipelines.integrations.tenancy import Connector

    monkeypatch.setenv("ML_CONNECTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ML_CONNECTOR_MASTER_KEY", generate_key())
    monkeypatch.setenv("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP", "1")
    monkeypatch.delenv("ML_CONNECTOR_DB_URL", raising=False)
    return Connector.open()


_tenant_names: dict[str, Any] = {"test": "", "count": 0}


@pytest.fixture(autouse=True)
def _tenants_named_after_the_test(request: pytest.FixtureRequest) -> None:
    _tenant_names.update(test=request.node.nodeid, count=0)


def _next_tenant_name() -> str:
    """Named after the running test: the sandbox seeds a tenant's data (dates relative to today)
    from its name, so every run of a test, on any day, sees the same records."""
    _tenant_names["count"] += 1
    digest = hashlib.sha256(f"{_tenant_names['test']}#{_tenant_names['count']}".encode()).hexdigest()
    return f"T{digest[:8].upper()}"


def make_tenant(
    sandbox: SandboxServer,
    connector: Any,
    product: str = "m3",
    config: dict[str, Any] | None = None,
    name: str | None = None,
) -> TenantEnv:
    import dagster as dg

    from ml_connector_pipelines.definitions import build_resources
    from ml_connector_pipelines.integrations.tenancy import register_tenant
    from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
    from ml_connector_pipelines.systems.registry import SYSTEMS

    name = name or _next_tenant_name()
    instance = dg.DagsterInstance.ephemeral()
    # Every registry system that can run on the sandbox, so a new system is in every test tenant.
    credentials = {
        spec.name: spec.sandbox_credentials(sandbox.url, name)
        for spec in SYSTEMS.values()
        if spec.sandbox_credentials is not None
    }
    register_tenant(
        connector,
        name,
        ionapi=sandbox_ionapi(sandbox.url, name),
        product=product,
        config={"mongoose_config": f"{name}_SITE", **(config or {})},
        instance=instance,
        **credentials,
    )
    resources = build_resources(db_url=connector.settings.db_url)
    return TenantEnv(name, sandbox, connector, instance, resources, credentials)


@pytest.fixture
def tenant(sandbox_server: SandboxServer, connector: Any) -> TenantEnv:
    """An M3 tenant on the shared sandbox, isolated by its unique name (Infor), token (Wise), key (Stripe)."""
    return make_tenant(sandbox_server, connector)
