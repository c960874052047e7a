"""Every system has a default request budget from the registry; tenant config may lower it, never
raise it (issue 13)."""

from __future__ import annotations

import pytest

from ml_connector_pipelines.core.http import RateLimit, capped_rate_limit
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.systems.registry import DEFAULT_RATE_LIMITS, SYSTEMS
from ml_connector_pipelines.systems.spec import ClientContext


def test_every_system_has_a_default_limit() -> None:
    assert set(DEFAULT_RATE_LIMITS) >= {"infor", "wise", "stripe", "cin7", "procurify"}
    infor = DEFAULT_RATE_LIMITS["infor"]
    # Per tenant, no 60 s window above the 500 requests/min of the seed copy: burst + a minute of refill.
    assert infor.burst + infor.per_second * 60 <= 500 + 1e-9
    assert all(limit.per_second > 0 for limit in DEFAULT_RATE_LIMITS.values())


def test_a_tenant_setting_lowers_but_never_raises_the_default() -> None:
    default = RateLimit(per_second=100, burst=10)
    assert capped_rate_limit(default, None) == default
    assert capped_rate_limit(default, 1000) == default
    assert capped_rate_limit(default, "5") == RateLimit(per_second=5, burst=5)
    assert capped_rate_limit(default, 0.5) == RateLimit(per_second=0.5, burst=1)
    with pytest.raises(ValueError, match="positive"):
        capped_rate_limit(default, 0)


@pytest.mark.parametrize(
    ("system", "credentials", "key", "default"),
    [
        ("wise", {"token": "t", "base_url": "http://127.0.0.1:1/wise"}, "wise_rate_limit_per_second", 100),
        (
            "stripe",
            {"api_key": "sk_test_x", "base_url": "http://127.0.0.1:1/stripe"},
            "stripe_rate_limit_per_second",
            25,
        ),
        (
            "stripe",
            {"api_key": "sk_live_x", "base_url": "http://127.0.0.1:1/stripe"},
            "stripe_rate_limit_per_second",
            100,
        ),
    ],
)
def test_clients_take_the_tenant_setting_up_to_the_default(
    system: str, credentials: dict[str, str], key: str, default: float
) -> None:
    def budget(config: dict[str, object]) -> float:
        with SYSTEMS[system].open_client(credentials, ClientContext(config=config)) as client:
            http = getattr(client, "http", None) or client._http
            return http.bucket.limit.per_second

    assert budget({}) == default
    assert budget({key: 2}) == 2
    assert budget({key: default * 10}) == default


def test_infor_has_a_per_tenant_default_that_config_can_only_lower() -> None:
    def budget(config: dict[str, object]) -> float:
        ionapi = sandbox_ionapi("http://127.0.0.1:1", "RATELIMIT")
        context = ClientContext(config=config, allow_loopback_http=True)
        with SYSTEMS["infor"].open_client(ionapi, context) as adapter:
            return adapter.http.bucket.limit.per_second

    default = DEFAULT_RATE_LIMITS["infor"].per_second
    assert budget({}) == default <= 500 / 60
    assert budget({"rate_limit_per_second": 1000}) == default
    assert budget({"rate_limit_per_second": 2}) == 2
