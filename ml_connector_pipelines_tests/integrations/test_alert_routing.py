"""Alert routing per tenant, against a real HTTP receiver and a real SMTP server on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from ml_connector_pipelines.cli import main
from ml_connector_pipelines.core import tables
from ml_connector_pipelines.integrations.alert_routing import TenantAlertRouter, send_digest
from ml_connector_pipelines.integrations.tenancy import register_tenant
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.systems.alerts.channels import alert_routing


class Receiver(ThreadingHTTPServer):
    """A Slack-compatible incoming webhook: keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N805  (the handler, not the server)
                length = int(handler.headers["Content-Length"])
                self.bodies.append(json.loads(handler.rfile.read(length)))
                handler.send_response(200)
                handler.end_headers()
                handler.wfile.write(b"ok")

            def log_message(handler, *args: Any) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/T000/B000/secret-token-xyz"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def routed_tenant(connector: Any, receiver: Receiver, mailbox: tuple[Mailbox, int]) -> str:
    register_tenant(
        connector,
        "ACME",
        ionapi=sandbox_ionapi("http://127.0.0.1:9", "ACME"),
        config={
            "alerts_email_to": "ap@acme.test, ops@acme.test",
            "alerts_smtp_host": "127.0.0.1",
            "alerts_smtp_port": mailbox[1],
            "alerts_smtp_from": "connector@acme.test",
            "alerts_smtp_starttls": False,  # the loopback test server speaks plain SMTP
        },
        alerts={"slack_webhook_url": receiver.url},
    )
    return "ACME"


def flag(connector: Any, tenant: str, source_id: str, reason: str) -> None:
    session = connector.state.sync_session(tenant=tenant, flow="wise_recipients", run_id="r1", partition=None)
    session.flag(source_id, reason, field="iban")


def test_each_alert_goes_to_slack_and_the_digest_to_slack_and_email(
    connector: Any, routed_tenant: str, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    flag(connector, routed_tenant, "S001", "invalid IBAN checksum")
    flag(connector, routed_tenant, "S002", "unknown bank code")

    # Each alert: Slack only (email takes the digest, by default).
    assert [b["text"] for b in receiver.bodies] == [
        "*[ACME] wise_recipients: S001 needs attention*\niban: invalid IBAN checksum",
        "*[ACME] wise_recipients: S002 needs attention*\niban: unknown bank code",
    ]
    assert box.messages == []

    router = TenantAlertRouter(connector.state.tenants, connector.credentials)
    digest, sent = send_digest(connector.state, router, routed_tenant)
    assert sent == ["slack", "email"]
    assert [e.source_id for e in digest.flagged] == ["S001", "S002"]
    slack_digest = receiver.bodies[-1]["text"]
    assert "2 flagged record(s)" in slack_digest and "S001: iban: invalid IBAN checksum" in slack_digest
    [(recipients, message)] = box.messages
    assert recipients == ["ap@acme.test", "ops@acme.test"]
    assert message["From"] == "connector@acme.test"
    assert message["Subject"].startswith("[ACME] 2 flagged record(s) since")
    assert "S002: iban: unknown bank code" in message.get_payload()

    # The next digest starts where this one ended: nothing new, nothing sent.
    again, sent_again = send_digest(connector.state, router, routed_tenant)
    assert again.flagged == [] and sent_again == []
    assert len(box.messages) == 1


def test_the_webhook_url_is_a_secret_in_the_vault_not_in_config(
    connector: Any, routed_tenant: str, receiver: Receiver
) -> None:
    record = connector.state.tenants.get(routed_tenant)
    assert receiver.url not in json.dumps(record.config)
    with connector.state.store.session() as conn:
        stored = conn.execute(sa.select(tables.credentials.c.ciphertext)).scalars().all()
    assert all("secret-token-xyz" not in str(value) for value in stored)
    assert connector.credentials.get(routed_tenant, "alerts") == {"slack_webhook_url": receiver.url}


def test_a_broken_channel_never_fails_the_sync(connector: Any, mailbox: tuple[Mailbox, int]) -> None:
    register_tenant(
        connector,
        "BROKEN",
        ionapi=sandbox_ionapi("http://127.0.0.1:9", "BROKEN"),
        alerts={"slack_webhook_url": f"http://127.0.0.1:{_free_port()}/nobody-listens"},
    )
    flag(connector, "BROKEN", "S001", "bad")  # no exception; the alert is in the audit table
    actions = [e.action for e in connector.state.audit.history("BROKEN")]
    assert actions == ["flagged", "alert"]


def test_email_needs_a_server_and_a_sender() -> None:
    with pytest.raises(ValueError, match="alerts_smtp_host"):
        alert_routing({"alerts_email_to": "a@b.test"})
    assert alert_routing({}).channels == []


def test_cli_prints_and_sends_the_digest(
    connector: Any, routed_tenant: str, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    flag(connector, routed_tenant, "S009", "missing account")
    posted = len(receiver.bodies)
    assert main(["alerts", "digest", routed_tenant, "--print"]) == 0
    assert "S009: iban: missing account" in capsys.readouterr().out
    assert len(receiver.bodies) == posted  # printed only
    assert main(["alerts", "digest", routed_tenant]) == 0
    assert "sent to slack, email" in capsys.readouterr().out
    assert "S009" in receiver.bodies[-1]["text"]


def test_the_daily_digest_job_sends_every_tenants_digest(
    connector: Any, routed_tenant: str, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    import dagster as dg

    from ml_connector_pipelines.definitions import defs
    from ml_connector_pipelines.integrations.resources import build_resources

    assert defs.resolve_schedule_def("alerts_daily_digest").cron_schedule == "0 7 * * *"
    flag(connector, routed_tenant, "S100", "no bank account")
    result = defs.resolve_job_def("alerts_digest").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources=build_resources(db_url=connector.settings.db_url)
    )
    assert result.success
    assert "S100: iban: no bank account" in receiver.bodies[-1]["text"]
    [(_, message)] = mailbox[0].messages
    assert "S100" in message.get_payload()


def test_tenants_add_stores_the_alert_secrets_in_the_vault(
    connector: Any, receiver: Receiver, tmp_path: Any
) -> None:
    ionapi = tmp_path / "acme.ionapi"
    ionapi.write_text(json.dumps(sandbox_ionapi("http://127.0.0.1:9", "ACME2")))
    # The ionapi points nowhere (port 9): --no-check, this test is about where the secrets go.
    argv = ["tenants", "add", "ACME2", "--no-check", "--ionapi", str(ionapi)]
    argv += ["--alerts-slack-webhook-url", receiver.url]
    argv += ["--alerts-email-to", "ap@acme.test", "--alerts-smtp-host", "127.0.0.1"]
    argv += ["--alerts-smtp-from", "c@acme.test", "--alerts-smtp-password", "s3cret-pass"]
    assert main(argv) == 0
    assert connector.credentials.get("ACME2", "alerts") == {
        "slack_webhook_url": receiver.url,
        "smtp_password": "s3cret-pass",
    }
    config = connector.state.tenants.get("ACME2").config
    assert config["alerts_email_to"] == "ap@acme.test" and "s3cret-pass" not in json.dumps(config)
