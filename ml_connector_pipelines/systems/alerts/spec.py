"""The `alerts` entry of the system registry: a tenant's alert channels (`channels.py`).

Registering it here gives `tenants add` its options, keeps the Slack URL and SMTP password in the
vault with the tenant's other credentials, and lets `tenants check` reach the SMTP server.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from ...core.http import RateLimit
from ..spec import ClientContext, CliOption, SystemSpec
from .channels import AlertChannels, alert_routing


class AlertCredentials(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    slack_webhook_url: str | None = None
    smtp_password: str | None = None

    @field_validator("slack_webhook_url")
    @classmethod
    def _https(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        loopback = bool((info.context or {}).get("allow_loopback_http"))
        local = value.startswith(("http://127.0.0.1", "http://localhost"))
        if not value.startswith("https://") and not (loopback and local):
            raise ValueError("slack_webhook_url must be an https URL")
        return value


def open_channels(credentials: dict[str, Any], context: ClientContext) -> AlertChannels:
    return AlertChannels(alert_routing(context.config, credentials))


SYSTEM = SystemSpec(
    name="alerts",
    title="Alert channels (Slack-compatible webhook, email)",
    credentials=AlertCredentials,
    open_client=open_channels,
    ping=lambda channels: channels.ping(),
    rate_limit=RateLimit(per_second=1, burst=5),  # a few messages; Slack allows about 1 per second
    needs_tenant_config=True,
    cli_options=(
        CliOption("--alerts-slack-webhook-url", "slack_webhook_url", "Slack incoming-webhook URL (secret)"),
        CliOption("--alerts-smtp-password", "smtp_password", "SMTP password (secret)"),
        CliOption(
            "--alerts-email-to",
            "alerts_email_to",
            "alert/digest recipients, comma-separated",
            target="config",
        ),
        CliOption("--alerts-smtp-host", "alerts_smtp_host", target="config"),
        CliOption("--alerts-smtp-port", "alerts_smtp_port", "default 587", target="config"),
        CliOption("--alerts-smtp-from", "alerts_smtp_from", target="config"),
        CliOption("--alerts-smtp-username", "alerts_smtp_username", target="config"),
    ),
)
