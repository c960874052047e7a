"""Stripe client: the official SDK pointed at a tenant's API base, with our typed errors.

Why the SDK: it already speaks Stripe's form encoding and error shapes. But every request it makes
goes through core.http's `HttpClient` (`_SdkTransport`), so rate limiting, retries and request
logging are the same as for every other system; the SDK's own retries are off.

- Every write carries a key derived from the ledger (`integrations.stripe.mapping.idempotency_key`),
  so a retry, in this run or a later one, replays Stripe's stored answer instead of creating a
  second object. A request with an `Idempotency-Key` is therefore idempotent for our HTTP layer:
  it is retried on 5xx and timeouts too, always with the same key.
- The HTTP layer hands the final response back unraised, so the SDK still turns it into its typed
  error, which `_translate` maps to ours. A write that still fails with a timeout or a 5xx after
  our retries raises `OutcomeUnknown`: Stripe may have committed it. The sync engine then looks
  the record up by metadata and, if absent, creates it once more with the *same* key.
- Lookups by our external id use the list APIs, which are immediately consistent. Search is not
  (it lags up to an hour), so it would miss an object created moments before a crash.

`StripeWebhookVerifier` checks webhook signatures for the receiver in core/webhooks.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote_plus

import httpx
import stripe

from ml_connector_pipelines.core.errors import (
    AuthenticationFailed,
    HttpError,
    OutcomeUnknown,
    RetryExhausted,
    TargetRejected,
)
from ml_connector_pipelines.core.http import (
    ErrorHooks,
    HttpClient,
    RateLimit,
    RateStore,
    StatusClass,
    capped_rate_limit,
    default_status_class,
    generic_error_message,
    paginate,
)
from ml_connector_pipelines.core.webhooks import InvalidWebhook, UnknownTenant, VerifiedEvent

from .models import (
    StripeCharge,
    StripeCustomer,
    StripeEvent,
    StripeInvoice,
    StripeInvoiceItem,
    StripePaymentIntent,
    StripeRefund,
)

SYSTEM = "stripe"
# The SDK's telemetry is off: it would send each request's latency to Stripe on the next request
# and this host's platform string in every user agent, and building them was a tenth of the SDK's
# cost per request. A process-wide SDK setting; no other part of the connector uses the SDK.
stripe.enable_telemetry = False


def _format_only_when_shown(level: int, log: Callable[..., None]) -> Callable[..., None]:
    """`log` (the SDK's log_info or log_debug), called only when its line would be shown."""
    from stripe import _util

    def maybe_log(message: str, **params: Any) -> None:
        if _util._console_log_level() is not None or _util.logger.isEnabledFor(level):
            log(message, **params)

    return maybe_log


def _sdk_logs_only_when_shown() -> None:
    """The SDK formats a logfmt line for each of its five log calls per request before it asks
    the "stripe" logger whether anyone listens (a tenth of a push's CPU). Its request path then
    calls these instead: the same lines, built only when the "stripe" logger, STRIPE_LOG or
    stripe.log shows them. These are the SDK's private modules: an SDK without them (renamed in
    a later version) is left as it is and logs as it always did."""
    try:
        from stripe import _api_requestor, _util
    except ImportError:
        return
    if all(
        hasattr(_util, name) for name in ("_console_log_level", "logger", "log_info", "log_debug")
    ) and all(hasattr(_api_requestor, name) for name in ("log_info", "log_debug")):
        _api_requestor.log_info = _format_only_when_shown(logging.INFO, _util.log_info)
        _api_requestor.log_debug = _format_only_when_shown(logging.DEBUG, _util.log_debug)


_sdk_logs_only_when_shown()

# Pinned so that an SDK upgrade never silently changes the shape of the objects we read.
STRIPE_API_VERSION = "2026-10-28.endive"
REQUEST_TIMEOUT_SECONDS = 30.0
# Stripe's documented request rates per account: 25/s for test keys, 100/s in live mode.
TEST_MODE_RATE = RateLimit(per_second=25, burst=25)
LIVE_MODE_RATE = RateLimit(per_second=100, burst=100)
# Requests in flight at once: enough for 100/s at up to 160 ms per request.
MAX_CONCURRENCY = 16
PAGE_SIZE = 100  # Stripe's maximum
MAX_EVENT_TYPES = 20  # Stripe's limit for `types[]`

CUSTOMER_ID_KEY = "infor_customer_id"
INVOICE_KEY_KEY = "infor_invoice_key"


def stripe_error_message(response: httpx.Response) -> str:
    """Stripe's error text: `{"error": {"type", "message", ...}}`."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return generic_error_message(response)


def stripe_status_class(status: int, idempotent: bool) -> StatusClass:
    """A 409 is "a request with this Idempotency-Key is still in flight": wait and send it again.
    Every keyed request is idempotent here, so a 409 on one is retried like a 429."""
    if status == 409:
        return StatusClass.THROTTLED if idempotent else StatusClass.FINAL
    return default_status_class(status, idempotent)


STRIPE_HOOKS = ErrorHooks(message=stripe_error_message, classify=stripe_status_class)


def _translate(error: stripe.StripeError, method: str, path: str) -> HttpError:
    """Map an SDK error (raised for the final response of our retries) to ours.

    The message is Stripe's own, never headers or bodies.
    """
    status = error.http_status
    # Capped: for a non-JSON answer the SDK's message quotes the whole body.
    message = (error.user_message or type(error).__name__)[:300]
    if isinstance(error, stripe.AuthenticationError):
        return AuthenticationFailed(SYSTEM, method, path, status, message)
    if status in (408, 429):  # not executed, but still refused after every retry
        return RetryExhausted(SYSTEM, method, path, status, f"still rate limited: {message}")
    if status is not None and 400 <= status < 500 and status != 409:
        return TargetRejected(SYSTEM, method, path, status, message)
    # 5xx, 409 (same key still in flight) or an unreadable answer, after our retries.
    if method == "POST":
        return OutcomeUnknown(SYSTEM, method, path, status, message)
    return RetryExhausted(SYSTEM, method, path, status, message)


class _SdkTransport(stripe.HTTPClient):
    """The SDK's HTTP client interface, implemented with our HttpClient."""

    name = "ml_connector"

    def __init__(self, http: HttpClient) -> None:
        super().__init__()
        self.http = http

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        headers = dict(headers or {})
        keyed = any(name.lower() == "idempotency-key" for name in headers)
        response = self.http.request(
            method,
            url,  # absolute: the SDK builds it from the same base URL
            content=post_data,
            headers=headers,
            idempotent=True if keyed else None,
            raise_for_status=False,
        )
        return response.content, response.status_code, response.headers

    def close(self) -> None:
        self.http.close()


class StripeGateway:
    """Everything the connector does in one tenant's Stripe account."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.stripe.com",
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        rate_store: RateStore | None = None,
        rate_limit_per_second: float | None = None,
    ) -> None:
        base_url = base_url.rstrip("/")
        mode_limit = TEST_MODE_RATE if api_key.startswith("sk_test_") else LIVE_MODE_RATE
        self._http = HttpClient(
            SYSTEM,
            base_url,
            # Stripe's limits are per account; the bucket is keyed by a digest, never the key itself.
            credential_id=hashlib.sha256(api_key.encode()).hexdigest()[:16],
            rate_limit=capped_rate_limit(mode_limit, rate_limit_per_second),
            timeout=timeout,
            max_concurrency=MAX_CONCURRENCY,
            hooks=STRIPE_HOOKS,
            # Given the state store, the rate budget holds across every process using this key.
            rate_store=rate_store,
        )
        self._stripe = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url},
            stripe_version=STRIPE_API_VERSION,
            http_client=_SdkTransport(self._http),
            max_network_retries=0,  # retries are the HTTP layer's
        )

    @property
    def max_concurrency(self) -> int:
        """Requests this gateway may have in flight at once: the push factory's worker count."""
        return self._http.max_concurrency

    @property
    def requests_made(self) -> int:
        """Requests sent, retries included: run metadata."""
        return self._http.requests_made

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StripeGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Plumbing ------------------------------------------------------------------------------------

    # Options the SDK's raw_request takes out of the keyword arguments: never a Stripe parameter.
    _SDK_OPTIONS = frozenset(
        {"api_key", "stripe_version", "stripe_account", "stripe_context", "idempotency_key",
         "max_network_retries", "headers", "base", "usage"}
    )  # fmt: skip

    def _call(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, idempotency_key: str = ""
    ) -> dict[str, Any]:
        """One request through the SDK's `raw_request`: its encoding, version header and typed
        errors, with Stripe's JSON answer as a plain dict. The typed services would build a
        StripeObject tree only for us to turn it back into that dict (a fifth of a push's CPU)."""
        params = dict(params or {})
        clash = self._SDK_OPTIONS.intersection(params)
        if clash:
            raise ValueError(f"Stripe parameters named like SDK options: {sorted(clash)}")
        if idempotency_key:
            params["idempotency_key"] = idempotency_key
        try:
            return self._stripe.raw_request(method.lower(), path, **params).data
        except stripe.StripeError as exc:
            raise _translate(exc, method, path) from None
        except RetryExhausted as exc:
            # No answer after every retry. For a write, any attempt may have committed.
            if method == "POST":
                raise OutcomeUnknown(SYSTEM, method, path, exc.status, exc.target_message) from None
            raise

    def _write(self, path: str, params: Mapping[str, Any] | None, idempotency_key: str) -> dict[str, Any]:
        if not idempotency_key:
            raise ValueError("every Stripe write needs an idempotency key derived from the ledger")
        return self._call("POST", path, params, idempotency_key)

    def _read(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._call("GET", path, params)

    def _list_all(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, in Stripe's order (newest first), 100 per request."""

        def fetch_page(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
            page_params = {**params, "limit": PAGE_SIZE}
            if cursor is not None:
                page_params["starting_after"] = cursor
            page = self._read(path, page_params)
            data = page.get("data") or []
            return data, (data[-1]["id"] if page.get("has_more") and data else None)

        return paginate(fetch_page)

    def ping(self) -> None:
        """One cheap authenticated read: raises AuthenticationFailed for a bad key."""
        self._read("/v1/customers", {"limit": 1})

    # Customers -----------------------------------------------------------------------------------

    def create_customer(self, params: dict[str, Any], idempotency_key: str) -> StripeCustomer:
        return StripeCustomer.model_validate(self._write("/v1/customers", params, idempotency_key))

    def update_customer(
        self, customer_id: str, params: dict[str, Any], idempotency_key: str
    ) -> StripeCustomer:
        raw = self._write(f"/v1/customers/{_id(customer_id)}", params, idempotency_key)
        return StripeCustomer.model_validate(raw)

    def retrieve_customer(self, customer_id: str) -> StripeCustomer:
        return StripeCustomer.model_validate(self._read(f"/v1/customers/{_id(customer_id)}"))

    def find_customer_by_external_id(self, infor_customer_id: str) -> StripeCustomer | None:
        """The customer whose metadata holds this Infor customer number, or None.

        The list API cannot filter on metadata, so this pages through every customer (100 per
        request). Fine for the recovery path it serves (a ledger row left pending by a crash) and
        for sandbox-sized accounts; at scale the ledger's stored Stripe id is the primary mapping
        and this scan is the rare fallback. Search would be one request but may miss a customer
        created in the last minutes, which is exactly the case recovery has to catch.
        """
        for raw in self._list_all("/v1/customers", {}):
            if (raw.get("metadata") or {}).get(CUSTOMER_ID_KEY) == infor_customer_id:
                return StripeCustomer.model_validate(raw)
        return None

    # Invoices ------------------------------------------------------------------------------------

    def create_invoice(self, params: dict[str, Any], idempotency_key: str) -> StripeInvoice:
        """Create a draft invoice. `pending_invoice_items_behavior` must be explicit: with the
        default ("exclude") stray pending items stay out; add ours with `create_invoice_item`."""
        if "pending_invoice_items_behavior" not in params:
            raise ValueError("set pending_invoice_items_behavior explicitly ('exclude' or 'include')")
        return StripeInvoice.model_validate(self._write("/v1/invoices", params, idempotency_key))

    def create_invoice_item(self, params: dict[str, Any], idempotency_key: str) -> StripeInvoiceItem:
        return StripeInvoiceItem.model_validate(self._write("/v1/invoiceitems", params, idempotency_key))

    def list_invoice_items(self, invoice_id: str) -> list[StripeInvoiceItem]:
        """The items already on an invoice: after a crash, tells whether ours was added."""
        rows = self._list_all("/v1/invoiceitems", {"invoice": invoice_id})
        return [StripeInvoiceItem.model_validate(raw) for raw in rows]

    def finalize_invoice(self, invoice_id: str, idempotency_key: str) -> StripeInvoice:
        return self._transition(invoice_id, "finalize", idempotency_key)

    def void_invoice(self, invoice_id: str, idempotency_key: str) -> StripeInvoice:
        return self._transition(invoice_id, "void", idempotency_key)

    def mark_uncollectible(self, invoice_id: str, idempotency_key: str) -> StripeInvoice:
        return self._transition(invoice_id, "mark_uncollectible", idempotency_key)

    def _transition(self, invoice_id: str, action: str, idempotency_key: str) -> StripeInvoice:
        """One of the invoice state moves (POST /v1/invoices/{id}/{action})."""
        raw = self._write(f"/v1/invoices/{_id(invoice_id)}/{action}", None, idempotency_key)
        return StripeInvoice.model_validate(raw)

    def retrieve_invoice(self, invoice_id: str) -> StripeInvoice:
        return StripeInvoice.model_validate(self._read(f"/v1/invoices/{_id(invoice_id)}"))

    def find_invoice_by_external_id(
        self, invoice_key: str, stripe_customer_id: str | None = None
    ) -> StripeInvoice | None:
        """The invoice whose metadata holds this Infor invoice key, or None.

        Pages through the list API like `find_customer_by_external_id`; passing the Stripe
        customer narrows the scan to that customer's invoices.
        """
        params = {"customer": stripe_customer_id} if stripe_customer_id else {}
        for raw in self._list_all("/v1/invoices", params):
            if (raw.get("metadata") or {}).get(INVOICE_KEY_KEY) == invoice_key:
                return StripeInvoice.model_validate(raw)
        return None

    def find_invoice_for_payment_intent(self, payment_intent_id: str) -> StripeInvoice | None:
        """The invoice a PaymentIntent paid (how a refund finds its invoice), or None.

        Since API version 2025-03-31 neither charges nor PaymentIntents name their invoice; the
        InvoicePayment objects link the two.
        """
        params = {"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}}
        payments = self._list_all("/v1/invoice_payments", params)
        payment = next(payments, None)
        return self.retrieve_invoice(payment["invoice"]) if payment else None

    # Payments ------------------------------------------------------------------------------------

    def retrieve_charge(self, charge_id: str) -> StripeCharge:
        return StripeCharge.model_validate(self._read(f"/v1/charges/{_id(charge_id)}"))

    def retrieve_payment_intent(self, payment_intent_id: str) -> StripePaymentIntent:
        raw = self._read(f"/v1/payment_intents/{_id(payment_intent_id)}")
        return StripePaymentIntent.model_validate(raw)

    def retrieve_refund(self, refund_id: str) -> StripeRefund:
        return StripeRefund.model_validate(self._read(f"/v1/refunds/{_id(refund_id)}"))

    # Events --------------------------------------------------------------------------------------

    def list_events(self, created_gt: int | None = None, types: Sequence[str] = ()) -> list[StripeEvent]:
        """All events after `created_gt` (unix seconds), oldest first.

        Stripe lists newest first; walking every page and reversing keeps Stripe's own order for
        events created in the same second. `created[gt]` has one-second resolution, so a poller
        that must not miss a late event of its cursor's second passes `cursor - 1` and relies on
        the inbox dropping duplicate event ids.
        """
        if len(types) > MAX_EVENT_TYPES:
            raise ValueError(f"Stripe accepts at most {MAX_EVENT_TYPES} event types per request")
        params: dict[str, Any] = {}
        if created_gt is not None:
            params["created"] = {"gt": created_gt}
        if types:
            params["types"] = list(types)
        rows = list(self._list_all("/v1/events", params))
        rows.reverse()
        rows.sort(key=lambda raw: raw["created"])  # stable: same-second events keep their order
        return [StripeEvent(id=r["id"], type=r["type"], created=r["created"], payload=r) for r in rows]


def _id(object_id: str) -> str:
    """An object id as a path segment, quoted as the SDK's typed services quote it."""
    return quote_plus(object_id)


# Webhooks ----------------------------------------------------------------------------------------
# `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]` is HMAC-SHA256 over "{t}.{raw body}", keyed with
# the endpoint secret (whsec_...) as UTF-8. The SDK's `WebhookSignature.verify_header` compares in
# constant time against every v1 (several during a secret rotation) and rejects timestamps older
# than the tolerance, which bounds how long a captured request can be replayed. It accepts any
# timestamp in the future, though: a request signed "one year from now" (a leaked secret, a signer
# with a wrong clock) would be replayable for a year. So the future is bounded too, by clock skew.

SIGNATURE_HEADER = "stripe-signature"
DEFAULT_TOLERANCE_SECONDS = 300
FUTURE_TOLERANCE_SECONDS = 60  # how far ahead of our clock a sender's clock may run


class StripeWebhookVerifier:
    """`Verifier` for source "stripe": returns Stripe's event id (`evt_...`)."""

    def __init__(
        self, secret_for_tenant: Callable[[str], str | None], tolerance: int = DEFAULT_TOLERANCE_SECONDS
    ) -> None:
        self._secret_for_tenant = secret_for_tenant
        self._tolerance = tolerance

    def __call__(self, tenant: str, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        secret = self._secret_for_tenant(tenant)
        if not secret:
            raise UnknownTenant(f"no Stripe webhook secret for tenant {tenant!r}")
        signature = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        if not signature:
            raise InvalidWebhook("missing Stripe-Signature header")
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWebhook("body is not UTF-8") from None
        try:
            stripe.WebhookSignature.verify_header(payload, signature, secret, self._tolerance)
        except stripe.SignatureVerificationError as exc:
            # The SDK's message names the failure (no match, too old, unparsable); never the secret.
            raise InvalidWebhook(f"bad Stripe signature: {exc.user_message}") from None
        signed_at = _signature_timestamp(signature)
        if signed_at is None or signed_at > time.time() + FUTURE_TOLERANCE_SECONDS:
            raise InvalidWebhook(
                f"bad Stripe signature: timestamp more than {FUTURE_TOLERANCE_SECONDS} s in the future"
            )
        try:
            event = json.loads(payload)
        except ValueError:
            raise InvalidWebhook("body is not JSON") from None
        event_id = event.get("id") if isinstance(event, dict) else None
        if not isinstance(event_id, str) or not event_id.startswith("evt_"):
            raise InvalidWebhook("body is not a Stripe event (no evt_ id)")
        return VerifiedEvent(event_id=event_id)


def _signature_timestamp(header: str) -> int | None:
    """The `t=` of a Stripe-Signature header (the first one, as the SDK reads it)."""
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value) if value.isdigit() else None
    return None
