"""Alerts: a record needs a person (flagged, unknown GL code...). Logged, audited, POSTed to
ML_CONNECTOR_ALERT_WEBHOOK when one is configured, and handed to `router` (the tenant's own
channels, Slack or email, wired in by `Connector.open`; see `integrations/alert_routing.py`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import httpx

from ml_connector_pipelines.core.audit import AuditWriter

logger = logging.getLogger("ml_connector.alerts")


class Alerts:
    def __init__(self, audit: AuditWriter, webhook_url: str | None = None, timeout: float = 10.0) -> None:
        self.audit = audit
        self.webhook_url = webhook_url or os.environ.get("ML_CONNECTOR_ALERT_WEBHOOK") or None
        self.timeout = timeout
        # (tenant, subject, text) -> the tenant's own channels; best effort, like the webhook.
        self.router: Callable[[str, str, str], None] | None = None

    def alert(self, tenant: str, flow: str, source_id: str, reason: str, run_id: str | None = None) -> None:
        logger.warning("alert: tenant=%s flow=%s record=%s: %s", tenant, flow, source_id, reason)
        event = self.audit.record(tenant, flow, source_id, "alert", run_id=run_id, reason=reason)
        if self.webhook_url:
            self._post(
                {
                    "tenant": tenant,
                    "flow": flow,
                    "source_id": source_id,
                    "reason": reason,
                    "run_id": run_id,
                    "at": event.at.isoformat(),
                }
            )
        if self.router is not None:
            try:
                self.router(tenant, f"[{tenant}] {flow}: {source_id} needs attention", event.reason or reason)
            except Exception as exc:  # a broken channel must not fail the sync that raised the alert
                logger.error(
                    "tenant alert channel failed (%s); alert kept in the audit table", type(exc).__name__
                )

    def _post(self, body: dict[str, str | None]) -> None:
        # Best effort: the alert is already in the log and the audit table, and a broken alert
        # channel must not fail the sync that raised it. The URL may hold a token: never logged.
        try:
            httpx.post(self.webhook_url or "", json=body, timeout=self.timeout).raise_for_status()
        except httpx.HTTPError as exc:
            logger.error("alert webhook failed (%s); alert kept in the audit table", type(exc).__name__)
