"""An Infor-only sandbox for the client tests, one fresh tenant per test, both products."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import InforSimulator, sandbox_ionapi
from ml_connector_pipelines.systems.infor.adapter import InforAdapter, open_adapter
from ml_connector_pipelines.systems.infor.ionapi import IonApi
from ml_connector_pipelines_tests.sandbox.m3_conformance import m3_violations

_tenant_numbers = itertools.count(1)
ON_PURPOSE = "BADCALLS_"  # tenant prefix of tests that send calls the metadata refuses, on purpose


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(seed=7, simulators=[InforSimulator]) as running:
        yield running
        # Every M3 call of the module's tests was one the MI metadata allows, except on the tenants
        # of tests that send bad calls on purpose.
        assert [v for v in m3_violations(running) if not v["tenant"].startswith(ON_PURPOSE)] == []


@pytest.fixture(params=["m3", "syteline"])
def product(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tenant(product: str) -> str:
    """A tenant nobody else touched: the simulator seeds it on first use."""
    return f"ACME{product.upper()}_{next(_tenant_numbers)}"


@pytest.fixture
def one_tenant() -> str:
    """A fresh tenant for tests about one product only."""
    return f"ACME_{next(_tenant_numbers)}"


def ionapi_for(server: SandboxServer, tenant: str) -> IonApi:
    return IonApi.from_dict(sandbox_ionapi(server.url, tenant), allow_loopback_http=True)


def open_for(server: SandboxServer, tenant: str, product: str, **config: Any) -> InforAdapter:
    if product == "syteline":
        config.setdefault("mongoose_config", f"{tenant}_MAIN")
    return open_adapter(ionapi_for(server, tenant), product, config, allow_loopback_http=True)


def tenant_state(server: SandboxServer, tenant: str) -> dict[str, Any]:
    return server.get_state("infor")["tenants"][tenant]


def control(server: SandboxServer, method: str, route: str, **body: Any) -> None:
    response = httpx.request(method, f"{server.url}/_sandbox/infor/{route}", json=body or None, timeout=30)
    response.raise_for_status()


def today() -> date:
    return datetime.now(UTC).date()


def window() -> list[date]:
    """The ten modified dates the seed spreads records over, up to the tenant clock's today."""
    return [today() - timedelta(days=back) for back in range(10)]
