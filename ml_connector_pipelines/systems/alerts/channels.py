"""A tenant's alert channels: a Slack-compatible incoming webhook and email over SMTP.

Chosen in tenant config; the secrets (the webhook URL, which carries its token, and the SMTP
password) are credentials of the registry system `alerts`, stored encrypted in the vault.
`alert_routing(config, secrets)` is the one place these keys are read:

| tenant config key           | default | meaning                                                  |
|-----------------------------|---------|----------------------------------------------------------|
| alerts_email_to             | (none)  | recipients, a list or comma-separated; none: no email    |
| alerts_smtp_host            | (none)  | SMTP server; required with alerts_email_to               |
| alerts_smtp_port            | 587     |                                                          |
| alerts_smtp_from            | (none)  | sender address; required with alerts_email_to            |
| alerts_smtp_username        | (none)  | login; none: no AUTH                                     |
| alerts_smtp_starttls        | true    | STARTTLS before login (false only for a local relay)     |
| alerts_slack_each_alert     | true    | post every alert to Slack as it happens (else digest)    |
| alerts_email_each_alert     | false   | mail every alert as it happens (else digest only)        |

| vault (`alerts` credentials) | meaning                                                 |
|------------------------------|---------------------------------------------------------|
| slack_webhook_url            | the incoming-webhook URL; none: no Slack                |
| smtp_password                | with alerts_smtp_username                               |

Sending is best effort (a broken channel never fails the sync that raised the alert) and never
logs the URL, the password or the server's reply text.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

logger = logging.getLogger("ml_connector.alerts")
DEFAULT_SMTP_PORT = 587
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class AlertRouting:
    slack_webhook_url: str | None = None
    email_to: tuple[str, ...] = ()
    smtp_host: str | None = None
    smtp_port: int = DEFAULT_SMTP_PORT
    smtp_from: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    slack_each_alert: bool = True
    email_each_alert: bool = False

    @property
    def channels(self) -> list[str]:
        return (["slack"] if self.slack_webhook_url else []) + (["email"] if self.email_to else [])


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def alert_routing(config: Mapping[str, Any], secrets: Mapping[str, Any] | None = None) -> AlertRouting:
    """A tenant's channels from its config and its `alerts` credentials (module docstring)."""
    secrets = secrets or {}
    to = config.get("alerts_email_to") or ()
    email_to = tuple(a.strip() for a in (to.split(",") if isinstance(to, str) else to) if a.strip())
    routing = AlertRouting(
        slack_webhook_url=secrets.get("slack_webhook_url") or None,
        email_to=email_to,
        smtp_host=config.get("alerts_smtp_host") or None,
        smtp_port=int(config.get("alerts_smtp_port") or DEFAULT_SMTP_PORT),
        smtp_from=config.get("alerts_smtp_from") or None,
        smtp_username=config.get("alerts_smtp_username") or None,
        smtp_password=secrets.get("smtp_password") or None,
        smtp_starttls=_flag(config.get("alerts_smtp_starttls"), True),
        slack_each_alert=_flag(config.get("alerts_slack_each_alert"), True),
        email_each_alert=_flag(config.get("alerts_email_each_alert"), False),
    )
    if routing.email_to and not (routing.smtp_host and routing.smtp_from):
        raise ValueError("tenant config alerts_email_to needs alerts_smtp_host and alerts_smtp_from")
    return routing


class AlertChannels:
    """Sends text to a tenant's channels. `send` returns the channels that took it."""

    def __init__(self, routing: AlertRouting) -> None:
        self.routing = routing

    def send(self, subject: str, text: str, *, each_alert: bool = False) -> list[str]:
        routing, sent = self.routing, []
        if routing.slack_webhook_url and (routing.slack_each_alert or not each_alert):
            if self._post_slack(f"*{subject}*\n{text}"):
                sent.append("slack")
        if routing.email_to and (routing.email_each_alert or not each_alert):
            if self._mail(subject, text):
                sent.append("email")
        return sent

    def _post_slack(self, text: str) -> bool:
        try:
            response = httpx.post(
                self.routing.slack_webhook_url or "", json={"text": text}, timeout=TIMEOUT_SECONDS
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.error("Slack alert webhook failed (%s)", type(exc).__name__)
            return False
        return True

    def _mail(self, subject: str, text: str) -> bool:
        routing = self.routing
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = routing.smtp_from or ""
        message["To"] = ", ".join(routing.email_to)
        message.set_content(text)
        try:
            with smtplib.SMTP(routing.smtp_host or "", routing.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
                if routing.smtp_starttls:
                    smtp.starttls()
                if routing.smtp_username:
                    smtp.login(routing.smtp_username, routing.smtp_password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            logger.error("alert email failed (%s)", type(exc).__name__)
            return False
        return True

    def ping(self) -> None:
        """`tenants check`: reach the SMTP server (Slack has no way to test a webhook without posting)."""
        routing = self.routing
        if routing.email_to:
            with smtplib.SMTP(routing.smtp_host or "", routing.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
                smtp.noop()

    def close(self) -> None:
        """Nothing held open: one connection per message."""

    def __enter__(self) -> AlertChannels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
