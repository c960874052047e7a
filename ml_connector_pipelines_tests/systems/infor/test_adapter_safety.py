"""Tenant rate limits reach the gateway client; issued tokens never reach the logs."""

from __future__ import annotations

import logging

import pytest

from ml_connector_pipelines.core.http import RateLimit, shared_bucket
from ml_connector_pipelines.core.redact import install_redaction
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.infor.adapter import DEFAULT_RATE_LIMIT

from .conftest import open_for

# Own tenant names, so the shared fixture's numbering (and the seeded data of the other modules'
# tenants) stays as it was.


@pytest.mark.parametrize("product", ["m3", "syteline"])
def test_the_configured_rate_limit_is_the_tenant_credentials_shared_bucket(
    server: SandboxServer, product: str
) -> None:
    tenant = f"RATED_{product.upper()}"
    with open_for(server, tenant, product, rate_limit_per_second=5.0) as adapter:
        adapter.ping()
        bucket = adapter.http.bucket  # type: ignore[attr-defined]
        assert bucket is not None and bucket.limit.per_second == 5.0
        # Every client on this credential draws from the same bucket.
        assert bucket is shared_bucket("infor", tenant, RateLimit(5.0, burst=5))
        with open_for(server, tenant, product, rate_limit_per_second="5") as second:
            assert second.http.bucket is bucket  # type: ignore[attr-defined]


def test_the_default_budget_unless_configured_and_never_above_it(server: SandboxServer) -> None:
    # Issue 13: no tenant setting used to mean no limit at all; now the registry's default applies.
    with open_for(server, "UNRATED", "m3") as adapter:
        assert adapter.http.bucket.limit == DEFAULT_RATE_LIMIT  # type: ignore[attr-defined]
    with open_for(server, "OVERRATED", "m3", rate_limit_per_second=1000) as adapter:
        assert adapter.http.bucket.limit == DEFAULT_RATE_LIMIT  # type: ignore[attr-defined]


def test_issued_tokens_are_masked_in_logs(server: SandboxServer, caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    with open_for(server, "TOKENS", "m3") as adapter:
        adapter.ping()
        auth = adapter.auth  # type: ignore[attr-defined]
        tokens = [auth._access_token, auth._refresh_token]
        assert all(tokens), "the sandbox issues an access and a refresh token"
        with caplog.at_level(logging.INFO):
            for token in tokens:
                logging.getLogger("ml_connector.test").info("debugging with token %s", token)
    assert caplog.records and all(token not in caplog.text for token in tokens)
    assert caplog.text.count("***") == 2
