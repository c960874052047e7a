"""Every system has a default request budget from the registry; tenant config may lower it, never
raise it (issue 13)."""

from __future__ import annotations

import pytest

from ml_connector_pipelines.core.http import RateLimit, capped_rate_limit
from ml_connector_pipelines.systems.registry import DEFAULT_RATE_LIMITS, SYSTEMS
from ml_connector_pipelines.systems.spec import ClientContext


def test_every_system_has_a_default_limit() -> None:
    assert set(DEFAULT_RATE_LIMITS) >= {"infor", "wise", "stripe", "cin7", "procurify"}
    assert DEFAULT_RATE_LIMITS["infor"].per_second == pytest.approx(500 / 60)
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
