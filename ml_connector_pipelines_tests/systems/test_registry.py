"""The system registry is the one list of systems: tenancy, CLI, receiver and resources follow it."""

from __future__ import annotations

from typing import Any

import pytest

from ml_connector_pipelines.cli import build_parser
from ml_connector_pipelines.integrations.resources import build_resources
from ml_connector_pipelines.integrations.tenancy import register_tenant, webhook_verifiers
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.systems.registry import DEFAULT_RATE_LIMITS, SYSTEMS


def test_every_system_is_offered_everywhere(connector: Any) -> None:
    assert set(build_resources()) == {"state", *SYSTEMS}
    senders = {name for name, spec in SYSTEMS.items() if spec.webhook_verifier is not None}
    assert set(webhook_verifiers(connector)) == senders == {"wise", "stripe"}
    add_help = build_parser()._subparsers._group_actions[0].choices["tenants"]  # type: ignore[union-attr]
    add = add_help._subparsers._group_actions[0].choices["add"].format_help()
    for spec in SYSTEMS.values():
        assert spec.title in add
        assert all(option.flag in add for option in spec.cli_options)
    # Budgets for the systems to come are data already.
    assert {"infor", "wise", "stripe", "cin7", "procurify", "cleo"} <= set(DEFAULT_RATE_LIMITS)
    assert DEFAULT_RATE_LIMITS["cin7"].per_second == 1


def test_register_tenant_validates_every_system_before_storing(connector: Any) -> None:
    ionapi = sandbox_ionapi("http://127.0.0.1:1", "TREG1")
    with pytest.raises(ValueError, match="unknown system"):
        register_tenant(connector, "TREG1", ionapi=ionapi, nosuch={"x": 1})
    with pytest.raises(ValueError, match="Wise needs a token") as raised:
        register_tenant(connector, "TREG1", ionapi=ionapi, wise={"base_url": "https://x", "client_id": "c1d"})
    assert "c1d" not in str(raised.value)  # errors never echo credentials
    with pytest.raises(ValueError, match="api_key"):
        register_tenant(connector, "TREG1", ionapi=ionapi, stripe={"webhook_secret": "whsec_secret"})
    assert connector.state.tenants.get("TREG1") is None
    register_tenant(connector, "TREG1", ionapi=ionapi, stripe={"api_key": "sk_test_treg1"})
    assert connector.credentials.systems("TREG1") == ["infor", "stripe"]
