"""Webhook payloads, RSA-SHA256 signing and one synchronous delivery attempt (contract section 7)."""

from __future__ import annotations

import base64
import ipaddress
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .keys import load_private_key

STATE_CHANGE = "transfers#state-change"
# Event types a subscription may ask for (contract 7.2); the simulator only ever emits STATE_CHANGE.
EVENT_TYPES = frozenset(
    {
        STATE_CHANGE,
        "transfers#active-cases",
        "transfers#payout-failure",
        "transfers#refund",
        "balances#credit",
        "balances#update",
        "balances#account-state-change",
        "account-details-payment#state-change",
        "swift-in#credit",
        "profiles#verification-state-change",
        "batch-payment-initiations#state-change",
    }
)
SCHEMA_VERSIONS = ("2.0.0", "4.0.0")
# Older Wise wording: a delivery must be answered within 5 s.
DELIVERY_TIMEOUT_SECONDS = 5.0
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_PRIVATE_KEY = load_private_key()


@dataclass(frozen=True)
class StateChange:
    """One ``transfers#state-change`` event, before it is addressed to a subscription."""

    transfer_id: int
    profile_id: int
    account_id: int
    current_state: str
    previous_state: str | None
    occurred_at: str


def state_change_body(
    event: StateChange,
    subscription_id: str,
    schema_version: str,
    sent_at: str,
    event_type: str = STATE_CHANGE,
) -> bytes:
    payload = {
        "data": {
            "resource": {
                "type": "transfer",
                "id": event.transfer_id,
                "profile_id": event.profile_id,
                "account_id": event.account_id,
            },
            "current_state": event.current_state,
            "previous_state": event.previous_state,
            "occurred_at": event.occurred_at,
        },
        "subscription_id": subscription_id,
        "event_type": event_type,
        "schema_version": schema_version,
        "sent_at": sent_at,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(body: bytes) -> str:
    """Base64 SHA256withRSA (PKCS#1 v1.5) over the raw body, as in ``X-Signature-SHA256``."""
    signature = _PRIVATE_KEY.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def callback_url_problem(url: Any) -> str | None:
    """Why Wise would refuse this URL, or None. The sandbox also allows plain http on loopback."""
    if not isinstance(url, str) or not url:
        return "delivery.url is required"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.query:
        return "The callback URL must not have a query string"
    if parts.scheme == "http" and host in _LOOPBACK_HOSTS:
        return None
    if parts.scheme != "https" or parts.port not in (None, 443):
        return "The callback URL must use HTTPS on port 443"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None if "." in host else "The callback URL must use a real domain name"
    return "The callback URL must use a domain name, not an IP address"


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    status_code: int | None
    error: str | None


def deliver(client: httpx.Client, url: str, body: bytes, *, test: bool = False) -> Attempt:
    """POST one signed delivery; failures are returned, never raised."""
    delivery_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-Signature-SHA256": sign(body),
        "X-Delivery-Id": delivery_id,
    }
    if test:
        headers["X-Test-Notification"] = "true"
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Attempt(delivery_id, None, f"{type(exc).__name__}: {exc}")
    return Attempt(delivery_id, response.status_code, None)


def new_client() -> httpx.Client:
    return httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False)
