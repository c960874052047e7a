"""The Cleo registry entry: credentials validated (https, or loopback http in sandbox mode, errors
never echo secrets), and `tenants check` pings Cleo with the stored credentials."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ml_connector_pipelines.integrations.tenancy import check_tenant, register_tenant
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.systems.registry import SYSTEMS
from ml_connector_pipelines_tests.conftest import make_tenant
from ml_connector_pipelines_tests.integrations.cleo.conftest import sandbox_credentials

SPEC = SYSTEMS["cleo"]


def test_credentials_need_https_except_loopback_in_sandbox_mode() -> None:
    good = {"base_url": "https://acme.cleointegration.com", "username": "u", "password": "s3cret-pass"}
    assert SPEC.validate(good).base_url == "https://acme.cleointegration.com"
    loopback = {**good, "base_url": "http://127.0.0.1:8700/cleo"}
    assert SPEC.validate(loopback, allow_loopback_http=True)
    with pytest.raises(ValidationError) as info:
        SPEC.validate(loopback)
    assert "s3cret-pass" not in str(info.value)
    with pytest.raises(ValidationError):
        SPEC.validate({**good, "base_url": "http://acme.example.com"}, allow_loopback_http=True)
    with pytest.raises(ValidationError):
        SPEC.validate({"base_url": "https://acme.cleointegration.com", "username": "u"})


def test_tenants_check_pings_cleo(sandbox_server: Any, connector: Any) -> None:
    env = make_tenant(sandbox_server, connector)
    cleo = sandbox_credentials(sandbox_server.simulator("cleo").credentials(), env.name)
    register_tenant(connector, env.name, ionapi=sandbox_ionapi(sandbox_server.url, env.name), cleo=cleo)
    assert check_tenant(connector, env.name)["cleo"] == "OK"
    wrong = {**cleo, "password": "not-the-password"}
    register_tenant(connector, env.name, ionapi=sandbox_ionapi(sandbox_server.url, env.name), cleo=wrong)
    result = check_tenant(connector, env.name)["cleo"]
    assert result != "OK" and "not-the-password" not in result
