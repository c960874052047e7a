"""The Stripe entry of the system registry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..spec import ClientContext, CliOption, CredentialsLookup, SystemSpec
from .client import LIVE_MODE_RATE, StripeGateway, StripeWebhookVerifier
from .config import StripeConfig


class StripeCredentials(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)

    api_key: str
    base_url: str = "https://api.stripe.com"
    webhook_secret: str | None = ""


def open_stripe(credentials: dict[str, Any], context: ClientContext) -> StripeGateway:
    # The gateway picks its own budget from the key: 25/s in test mode, 100/s live.
    # Tenant config `stripe_rate_limit_per_second` may lower that budget, never raise it.
    return StripeGateway(
        credentials["api_key"],
        credentials["base_url"],
        rate_store=context.rate_store,
        rate_limit_per_second=context.config.get("stripe_rate_limit_per_second"),
    )


def ping_stripe(gateway: StripeGateway) -> None:
    gateway.ping()


def stripe_verifier(lookup: CredentialsLookup) -> StripeWebhookVerifier:
    return StripeWebhookVerifier(lambda tenant: lookup(tenant).get("webhook_secret"))


SYSTEM = SystemSpec(
    config=StripeConfig,
    name="stripe",
    title="Stripe (billing)",
    credentials=StripeCredentials,
    open_client=open_stripe,
    ping=ping_stripe,
    rate_limit=LIVE_MODE_RATE,  # live mode; test-mode keys get TEST_MODE_RATE (25/s) in the gateway
    webhook_verifier=stripe_verifier,
    # The simulator opens one account per test-mode key.
    sandbox_credentials=lambda base_url, tenant: {
        "api_key": f"sk_test_{tenant.lower()}",
        "base_url": f"{base_url}/stripe",
        "webhook_secret": "",
    },
    cli_options=(
        CliOption("--stripe-key", "api_key", "Stripe secret key"),
        CliOption("--stripe-base-url", "base_url", default="https://api.stripe.com"),
        CliOption("--stripe-webhook-secret", "webhook_secret", "Stripe endpoint secret (whsec_...)"),
        CliOption(
            "--stripe-billing-cron",
            "stripe_billing_cron",
            "billing cycle, cron (default: daily 05:00 UTC)",
            target="config",
        ),
    ),
)
