"""A Cleo + Infor tenant on the shared sandbox with a real state store, for the Cleo flow tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.state import State
from ml_connector_pipelines.core.sync import SyncSession
from ml_connector_pipelines.integrations.cleo.pushers import EdiSetup
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.systems.cleo.client import CleoClient
from ml_connector_pipelines.systems.cleo.models import CleoCredentials, TradingPartner
from ml_connector_pipelines.systems.infor.adapter import InforAdapter, open_adapter
from ml_connector_pipelines.systems.infor.ionapi import IonApi
from ml_connector_pipelines.systems.infor.models import PurchaseOrder, PurchaseOrderLine


def memory_control_numbers() -> Callable[[str], int]:
    """An in-memory stand-in for the kit's atomic sequence: never the same number twice per key."""
    counters: dict[str, Iterator[int]] = {}
    return lambda key: next(counters.setdefault(key, itertools.count(1)))


@dataclass
class CleoTenant:
    name: str
    sandbox: SandboxServer
    state: State
    infor: InforAdapter
    cleo: CleoClient
    partner: TradingPartner
    order: PurchaseOrder
    division: str
    control_numbers: Callable[[str], int] = field(default_factory=memory_control_numbers)

    def edi(self, cls: type[EdiSetup] = EdiSetup) -> EdiSetup:
        config = {
            "cleo_trading_partners": [self.partner.model_dump()],
            "cleo_isa_id": "BUYER" + self.name[:10],
        }
        edi = EdiSetup.from_config(self.cleo, config, self.name, self.control_numbers)
        return cls(**{f.name: getattr(edi, f.name) for f in fields(edi)})

    def session(self, flow: str, run_id: str = "run-1", lease_seconds: int = 900) -> SyncSession:
        return SyncSession(
            self.state.store,
            tenant=self.name,
            flow=flow,
            run_id=run_id,
            partition=f"{self.name}|{date.today()}",
            alerts=self.state.alerts,
            lease_seconds=lease_seconds,
        )

    def sessions(self, run_id: str = "run-1") -> Callable[[str], SyncSession]:
        made: dict[str, SyncSession] = {}
        return lambda flow: made.setdefault(flow, self.session(flow, run_id))

    def cleo_state(self) -> dict[str, Any]:
        return self.sandbox.get_state("cleo")["accounts"][self.name]

    def folder(self, name: str) -> list[dict[str, Any]]:
        return self.cleo_state()["mailboxes"][self.partner.alias][name]

    def infor_state(self) -> dict[str, Any]:
        return self.sandbox.get_state("infor")["tenants"][self.name]

    def drop_810(self, **spec: Any) -> dict[str, Any]:
        url = f"{self.sandbox.url}/_sandbox/cleo/accounts/{self.name}/mailboxes/{self.partner.alias}/invoices"
        body = {"sender_id": self.partner.isa_id, "receiver_id": "BUYER" + self.name[:10], **spec}
        response = httpx.post(url, json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def invoice_lines(self, order: PurchaseOrder | None = None) -> list[dict[str, Any]]:
        order = order or self.order
        return [
            {
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price),
                "buyer_part": line.item_number,
            }
            for line in order.lines
        ]


LOOPBACK = {"allow_loopback_http": True}


def sandbox_credentials(secrets: dict[str, Any], username: str) -> dict[str, Any]:
    """A tenant's Cleo credentials on the sandbox (from the simulator's `credentials()`)."""
    keys = ("base_url", "password", "sftp_host", "sftp_port", "sftp_host_key")
    return {"username": username, **{key: secrets[key] for key in keys}}


def pick_order(infor_state: dict[str, Any]) -> tuple[PurchaseOrder, str]:
    raw = next(po for po in infor_state["purchase_orders"] if po["status"] == "open" and po["lines"])
    lines = tuple(PurchaseOrderLine.model_validate(line) for line in raw["lines"])
    order = PurchaseOrder.model_validate({**raw, "lines": lines, "modified_date": raw["order_date"]})
    division = infor_state["ap_invoices"][0]["division"]
    return order, division


# Both transports, and both state store backends: REST on SQLite, SFTP on Postgres.
@pytest.fixture(params=[("rest", "sqlite"), ("sftp", "postgres")], ids=["rest-sqlite", "sftp-postgres"])
def cleo_tenant(
    request: pytest.FixtureRequest, sandbox_server: SandboxServer, tmp_path: Path
) -> Iterator[CleoTenant]:
    from ml_connector_pipelines_tests.conftest import _next_tenant_name

    transport, backend = request.param
    name = _next_tenant_name()
    sqlite_url = f"sqlite:///{tmp_path}/state.db"
    db_url = sqlite_url if backend == "sqlite" else request.getfixturevalue("postgres_url")
    state = State.open(Settings(home=tmp_path, db_url=db_url))
    ionapi = IonApi.from_dict(sandbox_ionapi(sandbox_server.url, name), allow_loopback_http=True)
    infor = open_adapter(ionapi, "m3", {}, allow_loopback_http=True)
    infor.ping()  # seeds the tenant in the Infor sandbox
    order, division = pick_order(sandbox_server.get_state("infor")["tenants"][name])
    gl = next(
        a for a in sandbox_server.get_state("infor")["tenants"][name]["gl_accounts"] if a["dimension"] == 1
    )
    secrets = sandbox_server.simulator("cleo").credentials()
    cleo = CleoClient(CleoCredentials.model_validate(sandbox_credentials(secrets, name), context=LOOPBACK))
    partner = TradingPartner(
        alias=f"SUP-{order.supplier_id}",
        isa_id=f"SUP{order.supplier_id}",
        supplier_id=order.supplier_id,
        transport=transport,
        gl_account=gl["account_id"],
    )
    tenant = CleoTenant(name, sandbox_server, state, infor, cleo, partner, order, division)
    try:
        yield tenant
    finally:
        sandbox_server.set_faults("none")
        cleo.close()
        infor.close()
        state.store.dispose()


def money(value: str) -> Decimal:
    return Decimal(value)
