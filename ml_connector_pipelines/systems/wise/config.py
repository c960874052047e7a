"""Wise tenant config keys (read by the Wise push assets and the payment schedule)."""

from __future__ import annotations

from pydantic import Field, PositiveFloat

from ..config_fields import Cron, Currency, SystemConfig


class WiseConfig(SystemConfig):
    wise_rate_limit_per_second: PositiveFloat | None = Field(
        None, description="Wise requests per second for this tenant, only lower than the default (100/s)"
    )
    wise_source_currency: Currency = Field("EUR", description="currency Wise quotes are funded from")
    wise_create_transfers: bool = Field(
        False, description="create Wise transfers for approved AP invoices (never funded by the connector)"
    )
    payment_cron: Cron = Field("0 6 * * 2,5", description="payment cycle of the Wise payouts job (UTC)")
