"""The Cleo client against the sandbox over real HTTP and SFTP."""

from __future__ import annotations

import time

import asyncssh
import httpx
import pytest

from ml_connector_pipelines.core.errors import AuthenticationFailed, ConnectorError, TargetRejected
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.cleo.client import CleoClient
from ml_connector_pipelines.systems.cleo.models import CleoCredentials, Connection


def credentials(sandbox: SandboxServer, username: str, **changes: object) -> CleoCredentials:
    secrets = sandbox.simulator("cleo").credentials()
    base = {
        "base_url": secrets["base_url"],
        "username": username,
        "password": secrets["password"],
        "sftp_host": secrets["sftp_host"],
        "sftp_port": secrets["sftp_port"],
        "sftp_host_key": secrets["sftp_host_key"],
    }
    return CleoCredentials.model_validate({**base, **changes}, context={"allow_loopback_http": True})


def test_connections_are_paged_and_filtered(sandbox_server: SandboxServer) -> None:
    with CleoClient(credentials(sandbox_server, "client-paging")) as cleo:
        for n in range(120):
            cleo.create_connection(Connection(alias=f"P{n:03d}", type="sftp", partnerName=f"Partner {n}"))
        aliases = [c.alias for c in cleo.connections()]
        assert len(aliases) == 121 and len(set(aliases)) == 121  # with the seeded connection
        found = cleo.connection("P042")
        assert found is not None and found.partner_name == "Partner 42"
        updated = cleo.update_connection(found, Connection(alias="P042", type="ftp", partnerName="New"))
        assert (updated.type, updated.partner_name) == ("ftp", "New")
        assert cleo.connection("NOPE") is None


def test_an_expired_token_is_renewed(sandbox_server: SandboxServer) -> None:
    httpx.put(f"{sandbox_server.url}/_sandbox/cleo/settings", json={"token_lifetime": 2}).raise_for_status()
    try:
        with CleoClient(credentials(sandbox_server, "client-expiry")) as cleo:
            cleo.ping()
            assert cleo._token_http.requests_made == 1
            time.sleep(2.2)  # past the token's lifetime in the simulator
            cleo.ping()
            # A second token was fetched (a third too if a loaded machine let the second expire on
            # the way: the 401 renews it once more).
            assert cleo._token_http.requests_made >= 2
    finally:
        httpx.put(f"{sandbox_server.url}/_sandbox/cleo/settings", json={"token_lifetime": 3600})


def test_wrong_password_is_an_authentication_error(sandbox_server: SandboxServer) -> None:
    with CleoClient(credentials(sandbox_server, "client-bad", password="wrong")) as cleo:
        with pytest.raises((AuthenticationFailed, TargetRejected)) as info:
            cleo.ping()
        assert "wrong" not in str(info.value)


@pytest.mark.parametrize("kind", ["rest", "sftp"])
def test_mailbox_operations_behave_the_same_on_both_transports(
    sandbox_server: SandboxServer, kind: str
) -> None:
    with CleoClient(credentials(sandbox_server, f"client-files-{kind}")) as cleo:
        cleo.create_connection(Connection(alias="M1", type="sftp"))
        transport = cleo.transport(kind)
        [seeded] = transport.list("SANDBOX-SUPPLIER", "download")
        assert transport.download(seeded).startswith(b"ISA*")
        transport.upload("M1", "upload", "note.txt", b"hello")
        assert [f.name for f in transport.list("M1", "upload")] == ["note.txt"]
        with pytest.raises(TargetRejected):
            transport.upload("M1", "download", "x.txt", b"no")
        transport.delete(seeded)
        assert transport.list("SANDBOX-SUPPLIER", "download") == []


def test_sftp_verifies_the_host_key(sandbox_server: SandboxServer) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    with CleoClient(credentials(sandbox_server, "client-hostkey", sftp_host_key=other)) as cleo:
        with pytest.raises(ConnectorError, match="SFTP connect"):
            cleo.transport("sftp").list("SANDBOX-SUPPLIER", "download")
