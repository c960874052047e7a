"""Alerts go to the log, the audit table and a webhook, and a dead webhook does not break them."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ml_connector_pipelines.core.alerts import Alerts
from ml_connector_pipelines.core.audit import AuditWriter
from ml_connector_pipelines.core.store import StateStore


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_alert_logs_audits_and_posts(
    state_store: StateStore, webhook: tuple[str, list[dict]], caplog: pytest.LogCaptureFixture
) -> None:
    url, received = webhook
    audit = AuditWriter(state_store)
    with caplog.at_level(logging.WARNING, logger="ml_connector.alerts"):
        Alerts(audit, webhook_url=url).alert("acme", "bills", "B7", "unknown GL code 6999", run_id="r1")
    assert "unknown GL code 6999" in caplog.text
    [event] = audit.history("acme", "bills", "B7")
    assert (event.action, event.reason, event.run_id) == ("alert", "unknown GL code 6999", "r1")
    assert len(received) == 1
    assert {k: received[0][k] for k in ("tenant", "flow", "source_id", "reason")} == {
        "tenant": "acme",
        "flow": "bills",
        "source_id": "B7",
        "reason": "unknown GL code 6999",
    }


def test_webhook_from_environment_and_failure_is_not_fatal(
    state_store: StateStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ML_CONNECTOR_ALERT_WEBHOOK", "http://127.0.0.1:9/unreachable?token=abc")
    alerts = Alerts(AuditWriter(state_store))
    assert alerts.webhook_url == "http://127.0.0.1:9/unreachable?token=abc"
    with caplog.at_level(logging.ERROR, logger="ml_connector.alerts"):
        alerts.alert("acme", "bills", "B8", "vendor missing")
    assert "alert webhook failed" in caplog.text and "token=abc" not in caplog.text
    assert [e.action for e in AuditWriter(state_store).history("acme")] == ["alert"]
