"""The Procurify registry entry: credentials validated (https, a domain), a client that pings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.registry import SYSTEMS
from ml_connector_pipelines.systems.spec import ClientContext

SPEC = SYSTEMS["procurify"]


def test_credentials_need_a_domain_and_https_and_never_echo_the_secret() -> None:
    good = {"domain": "acme", "client_id": "id", "client_secret": "s3cr3t-value"}
    assert SPEC.validate(good).url == "https://acme.procurify.com"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as raised:
        SPEC.validate({**good, "base_url": "http://acme.example.com"})
    assert "https" in str(raised.value) and "s3cr3t-value" not in str(raised.value)
    with pytest.raises(ValidationError):
        SPEC.validate({**good, "domain": "acme.procurify.com/evil"})
    loopback = {**good, "base_url": "http://127.0.0.1:9/procurify/acme"}
    with pytest.raises(ValidationError):
        SPEC.validate(loopback)
    assert SPEC.validate(loopback, allow_loopback_http=True)


def test_the_sandbox_credentials_open_a_client_that_pings(sandbox_server: SandboxServer) -> None:
    assert SPEC.sandbox_credentials is not None
    credentials = SPEC.sandbox_credentials(sandbox_server.url, "spec-ping")
    client = SPEC.open_client(credentials, ClientContext(allow_loopback_http=True))
    try:
        SPEC.ping(client)
        assert client.requests_made == 2  # the token, then users/me
    finally:
        client.close()
