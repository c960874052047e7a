"""Stripe tenant config keys (read by the Stripe push assets and the billing schedule)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat

from ..config_fields import Cron, SystemConfig


class StripeConfig(SystemConfig):
    stripe_rate_limit_per_second: PositiveFloat | None = Field(
        None,
        description="Stripe requests per second for this tenant, only lower than the default "
        "(100/s live, 25/s test)",
    )
    stripe_billing_cron: Cron = Field(
        "0 5 * * *", description="billing cycle of the Stripe billing job (UTC)"
    )
    stripe_closed_invoice_action: Literal["void", "mark_uncollectible"] = Field(
        "void", description="what happens to the Stripe invoice of an Infor invoice closed unpaid"
    )
