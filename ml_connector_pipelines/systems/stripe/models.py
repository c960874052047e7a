"""Pydantic models of the Stripe objects we read back: only the fields the connector uses.

Stripe adds fields in every API version, so unknown fields are ignored rather than rejected.
Amounts are integers in the currency's smallest unit; currencies are lower-case ISO codes.
Ids of related objects are plain strings (we never ask the SDK to expand them).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _StripeObject(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeCustomer(_StripeObject):
    email: str | None = None
    name: str | None = None
    created: int | None = None


class StripeInvoiceItem(_StripeObject):
    customer: str | None = None
    invoice: str | None = None
    amount: int
    currency: str
    description: str | None = None


class StripeInvoice(_StripeObject):
    customer: str | None = None
    # draft | open | paid | uncollectible | void
    status: str | None = None
    currency: str
    total: int = 0
    amount_due: int = 0
    amount_paid: int = 0
    amount_remaining: int = 0
    number: str | None = None
    created: int | None = None
    status_transitions: dict[str, int | None] = Field(default_factory=dict)


class StripePaymentIntent(_StripeObject):
    amount: int
    currency: str
    status: str
    customer: str | None = None
    latest_charge: str | None = None


class StripeCharge(_StripeObject):
    amount: int
    amount_refunded: int = 0
    currency: str
    status: str
    customer: str | None = None
    payment_intent: str | None = None
    refunded: bool = False


class StripeRefund(_StripeObject):
    amount: int
    currency: str
    status: str | None = None
    charge: str | None = None
    payment_intent: str | None = None
    created: int | None = None


class StripeEvent(BaseModel):
    """One event. `payload` is the whole event as Stripe sent it: the same shape a webhook body has,
    so polled and pushed events go into the inbox and through the mapping identically."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    created: int
    payload: dict[str, Any]
