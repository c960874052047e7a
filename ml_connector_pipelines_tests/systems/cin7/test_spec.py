"""The Cin7 registry entry: credentials validation, client factory, ping."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ml_connector_pipelines.core.errors import AuthenticationFailed
from ml_connector_pipelines.systems.registry import DEFAULT_RATE_LIMITS, SYSTEMS
from ml_connector_pipelines.systems.spec import ClientContext

from .cin7_env import Cin7Company

CIN7 = SYSTEMS["cin7"]


def test_credentials_need_both_values_and_https() -> None:
    good = {"account_id": "a", "application_key": "k"}
    assert CIN7.validate(good).base_url.startswith("https://inventory.dearsystems.com/")
    with pytest.raises(ValidationError) as caught:
        CIN7.validate({"account_id": "a", "application_key": "  "})
    assert "application_key" in str(caught.value)
    loopback = {**good, "base_url": "http://127.0.0.1:8700/cin7/ExternalApi/v2"}
    with pytest.raises(ValidationError, match="https"):
        CIN7.validate(loopback)
    assert CIN7.validate(loopback, allow_loopback_http=True).base_url.endswith("/ExternalApi/v2")
    with pytest.raises(ValidationError, match="https"):
        CIN7.validate({**good, "base_url": "http://cin7.example.com"}, allow_loopback_http=True)


def test_client_from_the_registry_pings_and_takes_the_tenant_budget(company: Cin7Company) -> None:
    assert CIN7.rate_limit == DEFAULT_RATE_LIMITS["cin7"]
    creds = {
        "account_id": company.account_id,
        "application_key": company.application_key,
        "base_url": company.base_url,
    }
    with CIN7.open_client(creds, ClientContext(config={"cin7_calls_per_minute": 30})) as client:
        assert client.per_minute == 30 and client.max_concurrency == 2
    with CIN7.open_client(creds, ClientContext(config={"cin7_calls_per_minute": 100_000})) as client:
        CIN7.ping(client)
    wrong = {**creds, "application_key": "00000000-0000-0000-0000-000000000000"}
    with CIN7.open_client(wrong, ClientContext()) as client, pytest.raises(AuthenticationFailed):
        CIN7.ping(client)
