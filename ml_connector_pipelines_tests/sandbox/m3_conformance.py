"""The done-when check of the M3 metadata work: every MI call the suite sends is one the metadata allows.

The simulator logs each call per tenant and keeps the ones the metadata refused (unknown transaction,
unknown input field, missing required input). Test modules that drive M3 assert none was kept.
"""

from __future__ import annotations

from typing import Any

from ml_connector_pipelines.sandbox.host import SandboxServer


def m3_violations(server: SandboxServer) -> list[dict[str, Any]]:
    tenants = server.get_state("infor")["tenants"]
    return [
        {"tenant": name, **v} for name, tenant in tenants.items() for v in tenant.get("m3_violations", [])
    ]


def m3_calls(server: SandboxServer) -> dict[str, int]:
    total: dict[str, int] = {}
    for tenant in server.get_state("infor")["tenants"].values():
        for call, count in tenant.get("m3_calls", {}).items():
            total[call] = total.get(call, 0) + count
    return total
