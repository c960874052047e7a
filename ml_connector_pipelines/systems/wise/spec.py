"""The Wise entry of the system registry."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, model_validator

from ...core.http import RateLimit, capped_rate_limit
from ..spec import ClientContext, CliOption, CredentialsLookup, SystemSpec
from .client import WiseClient
from .config import WiseConfig
from .signature import WISE_LIVE_PUBLIC_KEY_PEM, WISE_SANDBOX_PUBLIC_KEY_PEM, WiseWebhookVerifier

# Wise publishes no numeric limit (contracts/wise.md §8: dynamic per account, HTTP 429). 100 requests/s
# per credential is the connector's assumption; the client backs off on 429 whatever the figure.
RATE_LIMIT = RateLimit(per_second=100, burst=100)

WISE_SANDBOX_HOSTS = frozenset(
    {"api.wise-sandbox.com", "api.sandbox.transferwise.tech", "api-mtls.sandbox.transferwise.tech"}
)
WISE_LIVE_HOSTS = frozenset({"api.wise.com", "api.transferwise.com", "api-mtls.transferwise.com"})


class WiseCredentials(BaseModel):
    """A personal API token, or an OAuth client id and secret; extra PEM keys to trust for webhooks."""

    model_config = ConfigDict(hide_input_in_errors=True)

    base_url: str = "https://api.wise.com"
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    profile_id: int | None = None
    webhook_public_keys: list[str] = []

    @model_validator(mode="after")
    def _one_way_in(self) -> WiseCredentials:
        if not self.token and not (self.client_id and self.client_secret):
            raise ValueError("Wise needs a token, or client_id and client_secret")
        return self


def open_wise(credentials: dict[str, Any], context: ClientContext) -> WiseClient:
    return WiseClient(
        credentials["base_url"],
        token=credentials.get("token"),
        client_id=credentials.get("client_id"),
        client_secret=credentials.get("client_secret"),
        profile_id=credentials.get("profile_id"),
        # Tenant config `wise_rate_limit_per_second` may lower the default, never raise it.
        rate_limit=capped_rate_limit(RATE_LIMIT, context.config.get("wise_rate_limit_per_second")),
        rate_store=context.rate_store,
    )


def ping_wise(client: WiseClient) -> None:
    client.profiles()


def wise_builtin_keys(base_url: str) -> list[str]:
    """Wise's own webhook key for the environment the tenant talks to, and only that one: anyone can
    sign events with a Wise sandbox account, so a live tenant must never trust the sandbox key."""
    host = urlsplit(base_url).hostname or ""
    if host in WISE_LIVE_HOSTS:
        return [WISE_LIVE_PUBLIC_KEY_PEM]
    if host in WISE_SANDBOX_HOSTS:
        return [WISE_SANDBOX_PUBLIC_KEY_PEM]
    return []  # our simulator or a proxy: only the keys configured for the tenant


def wise_verifier(lookup: CredentialsLookup) -> WiseWebhookVerifier:
    def keys(tenant: str) -> list[str]:
        creds = lookup(tenant)
        return [*wise_builtin_keys(creds.get("base_url", "")), *creds.get("webhook_public_keys", [])]

    def profile(tenant: str) -> int | None:
        # An event about another profile is refused at the door; without a configured profile_id,
        # wise_payout_status matches each transfer to the tenant's own invoices instead.
        return lookup(tenant).get("profile_id")

    return WiseWebhookVerifier(keys, profile)


SYSTEM = SystemSpec(
    config=WiseConfig,
    name="wise",
    title="Wise Business (payouts)",
    credentials=WiseCredentials,
    open_client=open_wise,
    ping=ping_wise,
    rate_limit=RATE_LIMIT,
    webhook_verifier=wise_verifier,
    # The simulator accepts any token of the form wise-sandbox-<tenant>.
    sandbox_credentials=lambda base_url, tenant: {
        "base_url": f"{base_url}/wise",
        "token": f"wise-sandbox-{tenant.lower()}",
    },
    cli_options=(
        CliOption("--wise-token", "token", "Wise personal API token"),
        CliOption("--wise-client-id", "client_id"),
        CliOption("--wise-client-secret", "client_secret"),
        CliOption("--wise-base-url", "base_url", default="https://api.wise.com"),
        CliOption(
            "--wise-webhook-public-key",
            "webhook_public_keys",
            "extra PEM file to trust",
            file="text",
            repeat=True,
        ),
        CliOption(
            "--wise-source-currency",
            "wise_source_currency",
            "currency quotes are funded from (default EUR)",
            target="config",
        ),
        CliOption(
            "--payment-cron",
            "payment_cron",
            "payment cycle, cron (default: Tue and Fri 06:00)",
            target="config",
        ),
    ),
)
