"""v3 quotes: a locked rate, fees per pay-in/pay-out option, and the quote's JSON (contract section 4).

Rates and fees are fixed tables, so every amount is reproducible. The tables are the sandbox's own
invention; only their shape follows Wise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

RATE_LOCK = timedelta(minutes=30)
# Expired quotes stay readable for about 48 h (contract 4), then they are gone.
EXPIRED_QUOTE_RETENTION = timedelta(hours=48)

# Units of each currency per 1 USD.
USD_RATES = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CHF": 0.88, "SEK": 10.45, "NOK": 10.6, "DKK": 6.86,
    "PLN": 3.98, "CZK": 23.1, "HUF": 358.0, "CAD": 1.36, "AUD": 1.52, "NZD": 1.66, "SGD": 1.34,
    "JPY": 149.5, "MYR": 4.7, "HKD": 7.8, "INR": 83.2, "ZAR": 18.6, "MXN": 17.1,
}  # fmt: skip
PAY_OUTS = ("BANK_TRANSFER", "BALANCE", "SWIFT", "SWIFT_OUR", "INTERAC")
# Wise's own fee per pay-out: (fixed fee in USD, converted to the source currency; share of the amount).
_PAY_OUT_FEES = {
    "BANK_TRANSFER": (0.5, 0.0045),
    "BALANCE": (0.5, 0.0045),
    "SWIFT": (4.0, 0.0045),
    "SWIFT_OUR": (10.0, 0.0045),
    "INTERAC": (1.0, 0.0045),
}
# Pay-in methods offered on every quote, with the share of the amount the pay-in costs.
PAY_INS = {"BALANCE": 0.0, "BANK_TRANSFER": 0.0, "DEBIT": 0.005}
_DELIVERY_DAYS = {"BANK_TRANSFER": 1, "BALANCE": 0, "SWIFT": 2, "SWIFT_OUR": 2, "INTERAC": 1}


@dataclass
class Quote:
    id: str
    user_id: int
    profile_id: int
    source_currency: str
    target_currency: str
    provided_amount_type: str  # SOURCE or TARGET
    provided_amount: float
    requested_pay_out: str  # what the caller asked for; ``pay_out`` is that after routing
    pay_out: str
    preferred_pay_in: str | None
    rate: float  # locked when the quote is created
    created_at: datetime
    target_account: int | None = None
    status: str = "PENDING"  # PENDING, ACCEPTED (has a transfer) or FUNDED; EXPIRED is derived
    payment_metadata: dict[str, Any] | None = None
    pricing_configuration: dict[str, Any] | None = None

    @property
    def expires_at(self) -> datetime:
        return self.created_at + RATE_LOCK

    def current_status(self, now: datetime) -> str:
        if self.status == "PENDING" and now > self.expires_at:
            return "EXPIRED"
        return self.status

    def selected_option(self) -> dict[str, Any]:
        """The option the top-level amounts come from: the preferred pay-in, else a bank transfer."""
        pay_in = self.preferred_pay_in or "BANK_TRANSFER"
        return next(option for option in payment_options(self) if option["payIn"] == pay_in)


def exchange_rate(source: str, target: str) -> float:
    return round(USD_RATES[target] / USD_RATES[source], 6)


def route_pay_out(requested: str, target_currency: str, recipient_country: str | None) -> str:
    """USD paid to an account outside the US goes over SWIFT (contract section 9)."""
    if requested == "BANK_TRANSFER" and target_currency == "USD" and recipient_country not in (None, "US"):
        return "SWIFT"
    return requested


def _money(value: float) -> float:
    return round(value, 2)


def _option(quote: Quote, pay_in: str) -> dict[str, Any]:
    fixed_usd, share = _PAY_OUT_FEES[quote.pay_out]
    fixed = fixed_usd * USD_RATES[quote.source_currency]
    pay_in_share = PAY_INS[pay_in]
    if quote.provided_amount_type == "SOURCE":
        source = quote.provided_amount
    else:
        # Solve source = target / rate + fees(source) for the source amount, rounded up to the cent.
        source = (
            math.ceil((quote.provided_amount / quote.rate + fixed) / (1 - share - pay_in_share) * 100) / 100
        )
    wise_fee = _money(fixed + share * source)
    pay_in_fee = _money(pay_in_share * source)
    total = _money(wise_fee + pay_in_fee)
    if quote.provided_amount_type == "SOURCE":
        target = _money((source - total) * quote.rate)
    else:
        target = quote.provided_amount
    disabled = target <= 0
    delivery = quote.created_at + timedelta(days=_DELIVERY_DAYS[quote.pay_out])
    currency = quote.source_currency
    return {
        "disabled": disabled,
        "disabledReason": (
            {"code": "error.payInmethod.disabled", "message": "The amount does not cover the fees."}
            if disabled
            else None
        ),
        "estimatedDelivery": _iso(delivery),
        "formattedEstimatedDelivery": f"by {delivery:%A}",
        "estimatedDeliveryDelays": [],
        "fee": {"transferwise": wise_fee, "payIn": pay_in_fee, "discount": 0, "partner": 0, "total": total},
        "price": {
            "priceSetId": 238,
            "total": _price_item("TOTAL", "Total fees", total, currency),
            "items": [
                _price_item("TRANSFERWISE", "Our fee", wise_fee, currency),
                _price_item("PAYIN", "Pay-in fee", pay_in_fee, currency),
            ],
        },
        "sourceAmount": _money(source),
        "targetAmount": max(target, 0.0),
        "sourceCurrency": quote.source_currency,
        "targetCurrency": quote.target_currency,
        "payIn": pay_in,
        "payOut": quote.pay_out,
        "allowedProfileTypes": ["PERSONAL", "BUSINESS"],
        "payInProduct": "BALANCE" if pay_in == "BALANCE" else "CHEAP",
        "feePercentage": round(total / source, 4) if source else 0,
    }


def _price_item(kind: str, label: str, amount: float, currency: str) -> dict[str, Any]:
    return {"type": kind, "label": label, "value": {"amount": amount, "currency": currency, "label": ""}}


def payment_options(quote: Quote) -> list[dict[str, Any]]:
    return [_option(quote, pay_in) for pay_in in PAY_INS]


def quote_json(quote: Quote, now: datetime) -> dict[str, Any]:
    """The v3 quote object. No top-level ``fee``: v3 quotes only carry fees per payment option."""
    selected = quote.selected_option()
    return {
        "id": quote.id,
        "sourceCurrency": quote.source_currency,
        "targetCurrency": quote.target_currency,
        "sourceAmount": selected["sourceAmount"],
        "targetAmount": selected["targetAmount"],
        "payOut": quote.pay_out,
        "preferredPayIn": quote.preferred_pay_in,
        "rate": quote.rate,
        "createdTime": _iso(quote.created_at),
        "user": quote.user_id,
        "profile": quote.profile_id,
        "rateType": "FIXED",
        "rateExpirationTime": _iso(quote.expires_at),
        "guaranteedTargetAmountAllowed": True,
        "targetAmountAllowed": True,
        "guaranteedTargetAmount": False,
        "providedAmountType": quote.provided_amount_type,
        "paymentOptions": payment_options(quote),
        "status": quote.current_status(now),
        "expirationTime": _iso(quote.expires_at),
        "targetAccount": quote.target_account,
        "paymentMetadata": quote.payment_metadata,
        "notices": [],
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
