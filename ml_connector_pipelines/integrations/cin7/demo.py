"""The demo tenant on Cin7 Core (sandbox): credentials handed out by the simulator, the Infor items as
Cin7 products (Cin7 masters its own products; a PO line needs one), and tenant config that shows
every flow: missing GL accounts created, AP invoices matched to their supplier's purchase."""

from __future__ import annotations

from typing import Any

import httpx

from ...sandbox.host import SandboxServer
from ...sandbox.infor.seed import ITEMS
from ...sandbox.infor.simulator import sandbox_ionapi
from ..tenancy import Connector, register_tenant

DEMO_CONFIG = {"cin7_chart_policy": "create", "cin7_invoice_match": "supplier"}


def add_cin7_to_demo(connector: Connector, sandbox: SandboxServer, tenant: str, **config: Any) -> None:
    credentials = httpx.post(
        f"{sandbox.url}/_sandbox/cin7/accounts", json={"name": tenant}, timeout=30
    ).json()
    register_tenant(
        connector,
        tenant,
        ionapi=sandbox_ionapi(sandbox.url, tenant),
        config={**DEMO_CONFIG, **config},
        cin7={"base_url": f"{sandbox.url}/cin7/ExternalApi/v2", **credentials},
    )
    products = {"products": [{"SKU": sku, "Name": name} for sku, name in ITEMS]}
    url = f"{sandbox.url}/_sandbox/cin7/accounts/{credentials['account_id']}/products"
    httpx.post(url, json=products, timeout=30).raise_for_status()
