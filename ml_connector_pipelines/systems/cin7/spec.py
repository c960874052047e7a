"""The Cin7 Core entry of the system registry."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from ..spec import ClientContext, CliOption, SystemSpec, per_minute
from .client import DEFAULT_PER_MINUTE, Cin7Client

DEFAULT_BASE_URL = "https://inventory.dearsystems.com/ExternalApi/v2"
# "60 calls per minute" per API Application (contracts/cin7.md §2); over it Cin7 answers 503.
RATE_LIMIT = per_minute(DEFAULT_PER_MINUTE)


class Cin7Credentials(BaseModel):
    """An API Application of one Cin7 account: the account id and the application key (GUIDs)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    account_id: str
    application_key: str
    base_url: str = DEFAULT_BASE_URL

    @field_validator("account_id", "application_key")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str, info: ValidationInfo) -> str:
        url = urlsplit(value)
        loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
        allowed = url.scheme == "https" or (
            url.scheme == "http" and loopback and (info.context or {}).get("allow_loopback_http")
        )
        if not allowed or not url.hostname:
            raise ValueError("base_url must be an https URL (plain http only to loopback in sandbox mode)")
        return value.rstrip("/")


def open_cin7(credentials: dict[str, Any], context: ClientContext) -> Cin7Client:
    # The tenant's budget: lower it when other integrations share the API Application.
    limit = float(context.config.get("cin7_calls_per_minute") or DEFAULT_PER_MINUTE)
    return Cin7Client(
        credentials.get("base_url") or DEFAULT_BASE_URL,
        credentials["account_id"],
        credentials["application_key"],
        per_minute=limit,
        rate_store=context.rate_store,
    )


def ping_cin7(client: Cin7Client) -> None:
    client.ping()


SYSTEM = SystemSpec(
    name="cin7",
    title="Cin7 Core (inventory, purchasing)",
    credentials=Cin7Credentials,
    open_client=open_cin7,
    ping=ping_cin7,
    rate_limit=RATE_LIMIT,
    needs_tenant_config=True,
    # The sandbox hands out a tenant's account id and key itself (POST /_sandbox/cin7/accounts), and
    # a test tenant on Cin7 at 60 calls/min is opted in by the Cin7 tests, not given to every tenant.
    sandbox_credentials=None,
    cli_options=(
        CliOption("--cin7-account-id", "account_id", "Cin7 Core account id (api-auth-accountid)"),
        CliOption("--cin7-application-key", "application_key", "API Application key"),
        CliOption("--cin7-base-url", "base_url", default=DEFAULT_BASE_URL),
        CliOption(
            "--cin7-calls-per-minute",
            "cin7_calls_per_minute",
            "this connector's share of the API Application's 60 calls/min (default 60)",
            target="config",
        ),
        CliOption(
            "--cin7-accounting-cycle",
            "cin7_accounting_cycle",
            "daily, weekly or period_close (default daily), or a cron string",
            target="config",
        ),
    ),
)
