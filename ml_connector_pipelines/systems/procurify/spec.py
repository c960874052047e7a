"""The Procurify entry of the system registry."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from ...core.http import RateLimit
from ..spec import ClientContext, CliOption, SystemSpec
from .client import ProcurifyClient

# Procurify documents no rate limit, only that oversized or timing-out requests risk suspension
# (contracts/procurify.md §2): a gentle 5 requests/s per credential is the connector's assumption.
RATE_LIMIT = RateLimit(per_second=5, burst=5)
SANDBOX_CLIENT_SECRET = "procurify-sandbox-secret"  # sandbox/procurify/simulator.py hands it out


class ProcurifyCredentials(BaseModel):
    """An API application of one Procurify domain (Settings -> Integrations -> API)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    domain: str
    client_id: str
    client_secret: str
    base_url: str | None = None  # default https://{domain}.procurify.com

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not value or not all(ch.isalnum() or ch in "-_" for ch in value):
            raise ValueError("the Procurify domain is the first label of <domain>.procurify.com")
        return value

    @model_validator(mode="after")
    def _https(self, info: ValidationInfo) -> ProcurifyCredentials:
        url = urlsplit(self.url)
        loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
        allowed = bool((info.context or {}).get("allow_loopback_http")) and loopback
        if url.scheme != "https" and not allowed:
            raise ValueError("the Procurify base URL must be https")
        return self

    @property
    def url(self) -> str:
        return self.base_url or f"https://{self.domain}.procurify.com"


def open_procurify(credentials: dict[str, Any], context: ClientContext) -> ProcurifyClient:
    creds = ProcurifyCredentials.model_validate(
        credentials, context={"allow_loopback_http": context.allow_loopback_http}
    )
    return ProcurifyClient(
        creds.url,
        creds.client_id,
        creds.client_secret,
        config=context.config,
        rate_limit=RATE_LIMIT,
        rate_store=context.rate_store,
    )


def ping_procurify(client: ProcurifyClient) -> None:
    client.ping()


SYSTEM = SystemSpec(
    name="procurify",
    title="Procurify (procurement)",
    credentials=ProcurifyCredentials,
    open_client=open_procurify,
    ping=ping_procurify,
    rate_limit=RATE_LIMIT,
    needs_tenant_config=True,
    # The simulator serves any domain at {sandbox}/procurify/{domain}, client id sandbox-{domain}.
    sandbox_credentials=lambda base_url, tenant: {
        "domain": tenant,
        "client_id": f"sandbox-{tenant}",
        "client_secret": SANDBOX_CLIENT_SECRET,
        "base_url": f"{base_url}/procurify/{tenant}",
    },
    cli_options=(
        CliOption("--procurify-domain", "domain", "the <domain> of <domain>.procurify.com"),
        CliOption("--procurify-client-id", "client_id"),
        CliOption("--procurify-client-secret", "client_secret"),
        CliOption("--procurify-base-url", "base_url", "default https://<domain>.procurify.com"),
        CliOption(
            "--procurify-timezone",
            "procurify_timezone",
            "IANA time zone of the modified-date day (default UTC)",
            target="config",
        ),
        CliOption(
            "--procurement-cron",
            "procurement_cron",
            "procurement calendar, cron (default: weekdays 07:00 UTC)",
            target="config",
        ),
    ),
)
