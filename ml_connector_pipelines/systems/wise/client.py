"""A typed client for the Wise Platform API (legacy /v1 /v2 /v3 paths, contracts/wise.md).

Retries, rate limiting and error mapping come from core.http: a 4xx arrives here as TargetRejected
carrying Wise's own message. Usable from a script:

    with WiseClient("https://api.wise-sandbox.com", token="...") as wise:
        quote = wise.create_quote("GBP", "EUR", target_amount=Decimal("120.00"))
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from ml_connector_pipelines.core.errors import ConnectorError, TargetRejected
from ml_connector_pipelines.core.http import (
    ErrorHooks,
    HttpClient,
    RateLimit,
    RateStore,
    RetryPolicy,
    generic_error_message,
    paginate,
)
from ml_connector_pipelines.core.redact import register_secret

from .models import AccountRequirement, Profile, Quote, Recipient, Subscription, Transfer

SYSTEM = "wise"
RECIPIENT_PAGE_SIZE = 20  # the v2 list documents "a maximum of 20" (wise.md §5.2)
TRANSFER_PAGE_SIZE = 100
TRANSFER_STATE_CHANGE = "transfers#state-change"
# Wise publishes no numeric rate limit (wise.md §8: dynamic per account, 429 when exceeded). We
# assume 100 requests/s per credential and keep 32 requests in flight (100/s at up to 320 ms each);
# pass `rate_limit` to change it. 429s are retried either way.
DEFAULT_RATE_LIMIT = RateLimit(per_second=100, burst=10)
MAX_CONCURRENCY = 32
# Account requirements are asked for a route and an amount (wise.md §5.4). Recipients are created before
# any quote, so the route's source defaults to the tenant default (EUR) and the amount to the docs'
# example, 1000 [I]; callers that know the funding currency pass it.
REQUIREMENTS_SOURCE_CURRENCY = "EUR"
REQUIREMENTS_SOURCE_AMOUNT = Decimal("1000")


class WiseClientCredentials:
    """AuthHook for an OAuth client-credentials application token (12 h lifetime).

    Tokens are renewed proactively, well before expiry (Wise advises about 6 h ahead; at half
    the lifetime for shorter tokens), so a batch never runs into an expiry half-way; a 401 still
    forces one renewal.
    """

    refresh_margin_seconds = 6 * 3600

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
    ) -> None:
        self._token_http = HttpClient(
            SYSTEM, base_url, credential_id=client_id, retry=retry, timeout=timeout, hooks=WISE_HOOKS
        )
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._basic_header = f"Basic {basic}"
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    def reauthenticate(self) -> None:
        with self._lock:
            self._fetch_token()

    def _fetch_token(self) -> None:
        response = self._token_http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": self._basic_header},
            idempotent=True,  # asking for a token twice has no side effect
        )
        body = response.json()
        self._token = body["access_token"]
        register_secret(self._token)  # it did not come through the vault, so tell the log filter
        lifetime = float(body.get("expires_in", 43199))
        self._refresh_at = time.monotonic() + lifetime - min(self.refresh_margin_seconds, lifetime / 2)

    @property
    def requests_made(self) -> int:
        return self._token_http.requests_made

    def close(self) -> None:
        self._token_http.close()


def wise_error_message(response: httpx.Response) -> str:
    """Wise's error text: validation errors list one entry per failing field
    (`{"errors": [{"code", "message", "path"}]}`), other errors carry `message` (wise.md §8)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            messages = [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
            if messages:
                return "; ".join(messages)
        if isinstance(body.get("message"), str) and body["message"].strip():
            return body["message"].strip()
    return generic_error_message(response)


# A 409 from Wise is its duplicate answer, never "try again": the default classes already say so.
WISE_HOOKS = ErrorHooks(message=wise_error_message)


def _money(amount: Decimal | None) -> float | None:
    # Wise takes JSON numbers; invoice amounts have at most a few decimals, exact as a float repr.
    return None if amount is None else float(amount)


class WiseClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        profile_id: int | None = None,
        *,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
        max_concurrency: int = MAX_CONCURRENCY,
        rate_store: RateStore | None = None,
    ) -> None:
        # A personal token never changes, so it is a fixed header; OAuth needs a refreshing AuthHook.
        self._credentials: WiseClientCredentials | None = None
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
            # The rate-limit bucket is per credential; a digest keeps the token itself out of it.
            credential_id = "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
        elif client_id and client_secret:
            self._credentials = WiseClientCredentials(
                base_url, client_id, client_secret, retry=retry, timeout=timeout
            )
            credential_id = client_id
        else:
            raise ValueError("WiseClient needs a personal token, or client_id and client_secret")
        self.http = HttpClient(
            SYSTEM,
            base_url,
            auth=self._credentials,
            headers=headers,
            credential_id=credential_id,
            rate_limit=rate_limit,
            retry=retry,
            timeout=timeout,
            max_concurrency=max_concurrency,
            hooks=WISE_HOOKS,
            # Given the state store, the rate budget holds across every process using this credential.
            rate_store=rate_store,
        )
        self._profile_id = profile_id
        # Requirements per (source, target) route, asked once per client (one client per run).
        self._requirements: dict[tuple[str, str], list[AccountRequirement]] = {}
        self._requirements_lock = threading.Lock()
        self._clock_lock = threading.Lock()

    # Profiles ------------------------------------------------------------------------------------

    def profiles(self) -> list[Profile]:
        return [Profile.model_validate(item) for item in self.http.get("/v2/profiles").json()]

    def business_profile_id(self) -> int:
        """The configured profile, else the account's business profile (looked up once)."""
        if self._profile_id is None:
            # Under the lock: a pool of push workers starting at once asks Wise once, not each.
            with self._requirements_lock:
                if self._profile_id is None:
                    business = [profile for profile in self.profiles() if profile.type == "BUSINESS"]
                    if not business:
                        raise ConnectorError("the Wise token has no business profile; set profile_id")
                    self._profile_id = business[0].id
        return self._profile_id

    # Quotes --------------------------------------------------------------------------------------

    def create_quote(
        self,
        source_currency: str,
        target_currency: str,
        *,
        target_amount: Decimal | None = None,
        source_amount: Decimal | None = None,
        target_account: int | None = None,
        pay_out: str = "BANK_TRANSFER",
    ) -> Quote:
        """Lock a rate for 30 minutes. Give exactly one of target_amount or source_amount."""
        if (target_amount is None) == (source_amount is None):
            raise ValueError("give exactly one of target_amount or source_amount")
        body = {
            "sourceCurrency": source_currency,
            "targetCurrency": target_currency,
            "sourceAmount": _money(source_amount),
            "targetAmount": _money(target_amount),
            "targetAccount": target_account,
            "payOut": pay_out,
        }
        # A spare quote is harmless (it expires unused), so retrying after a timeout is safe.
        response = self.http.post(
            f"/v3/profiles/{self.business_profile_id()}/quotes", json=body, idempotent=True
        )
        return Quote.model_validate(response.json())

    def get_quote(self, quote_id: str) -> Quote:
        return Quote.model_validate(
            self.http.get(f"/v3/profiles/{self.business_profile_id()}/quotes/{quote_id}").json()
        )

    def attach_recipient(self, quote_id: str, recipient_id: int) -> Quote:
        """Set the quote's recipient; Wise may change payOut and fees for the new route."""
        response = self.http.patch(
            f"/v3/profiles/{self.business_profile_id()}/quotes/{quote_id}",
            content=json.dumps({"targetAccount": recipient_id}).encode(),
            headers={"Content-Type": "application/merge-patch+json"},
            idempotent=True,  # setting the same field twice leaves the same quote
        )
        return Quote.model_validate(response.json())

    # Recipients ----------------------------------------------------------------------------------

    def account_requirements(
        self, target_currency: str, source_currency: str = REQUIREMENTS_SOURCE_CURRENCY
    ) -> list[AccountRequirement]:
        """The recipient types Wise offers for paying out in `target_currency`, with their fields
        (v1.1, so the name field is included). Cached per route for the life of the client."""
        route = (source_currency, target_currency)
        with self._requirements_lock:
            if route not in self._requirements:
                response = self.http.get(
                    "/v1/account-requirements",
                    params={
                        "source": source_currency,
                        "target": target_currency,
                        "sourceAmount": str(REQUIREMENTS_SOURCE_AMOUNT),
                    },
                    headers={"Accept-Minor-Version": "1"},
                )
                self._requirements[route] = [
                    AccountRequirement.model_validate(item) for item in response.json()
                ]
            return self._requirements[route]

    def create_recipient(self, payload: dict[str, Any]) -> Recipient:
        """POST /v1/accounts. Not idempotent: a timeout raises OutcomeUnknown, look it up before retrying."""
        return Recipient.model_validate(self.http.post("/v1/accounts", json=payload).json())

    def get_recipient(self, recipient_id: int) -> Recipient:
        return Recipient.model_validate(self.http.get(f"/v2/accounts/{recipient_id}").json())

    def list_recipients(self, currency: str | None = None) -> Iterator[Recipient]:
        """Active recipients of the profile, paged with the v2 seek position."""
        params: dict[str, Any] = {"profileId": self.business_profile_id(), "size": RECIPIENT_PAGE_SIZE}
        if currency:
            params["currency"] = currency

        def fetch_page(seek: int | None) -> tuple[list[Recipient], int | None]:
            page_params = params if seek is None else {**params, "seekPosition": seek}
            page = self.http.get("/v2/accounts", params=page_params).json()
            content = [Recipient.model_validate(item) for item in page.get("content", [])]
            # An empty page ends the listing even if Wise still hands out a next position.
            return content, page.get("seekPositionForNext") if content else None

        return paginate(fetch_page)

    def delete_recipient(self, recipient_id: int) -> None:
        """Deactivate a recipient. Already inactive counts as done (Wise answers 403 for that)."""
        try:
            self.http.delete(f"/v2/accounts/{recipient_id}")
        except TargetRejected as exc:
            # 403 also means "not yours"; only an inactive recipient makes it a success.
            if exc.status != 403 or self.get_recipient(recipient_id).active:
                raise

    # Transfers -----------------------------------------------------------------------------------

    def create_transfer(
        self, target_account: int, quote_uuid: str, customer_transaction_id: str, reference: str
    ) -> Transfer:
        """Create (not fund) a transfer. Safe to retry: Wise dedupes on customerTransactionId."""
        body = {
            "targetAccount": target_account,
            "quoteUuid": quote_uuid,
            "customerTransactionId": customer_transaction_id,
            "details": {"reference": reference},
        }
        return Transfer.model_validate(self.http.post("/v1/transfers", json=body, idempotent=True).json())

    def get_transfer(self, transfer_id: int) -> Transfer:
        return Transfer.model_validate(self.http.get(f"/v1/transfers/{transfer_id}").json())

    def list_transfers(
        self, status: str | Iterable[str] | None = None, created_after: datetime | None = None
    ) -> Iterator[Transfer]:
        """Transfers of the profile; `created_after` is inclusive (Wise's createdDateStart)."""
        params: dict[str, Any] = {"profile": self.business_profile_id(), "limit": TRANSFER_PAGE_SIZE}
        if status:
            params["status"] = status if isinstance(status, str) else ",".join(status)
        if created_after is not None:
            moment = created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC)
            params["createdDateStart"] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        def fetch_page(offset: int | None) -> tuple[list[Transfer], int | None]:
            start = offset or 0
            items = self.http.get("/v1/transfers", params={**params, "offset": start}).json()
            transfers = [Transfer.model_validate(item) for item in items]
            # A short page is the last one: the list is a bare array with no "next" marker.
            return transfers, start + len(transfers) if len(transfers) == TRANSFER_PAGE_SIZE else None

        return paginate(fetch_page)

    # Webhook subscriptions -----------------------------------------------------------------------

    def create_subscription(self, url: str, name: str = "ml-connector transfer states") -> Subscription:
        """Subscribe the profile to transfer state changes. Wise first sends a test event to `url`."""
        body = {
            "name": name,
            "trigger_on": TRANSFER_STATE_CHANGE,
            "delivery": {"version": "2.0.0", "url": url},
        }
        response = self.http.post(f"/v3/profiles/{self.business_profile_id()}/subscriptions", json=body)
        return Subscription.model_validate(response.json())

    def list_subscriptions(self) -> list[Subscription]:
        items = self.http.get(f"/v3/profiles/{self.business_profile_id()}/subscriptions").json()
        return [Subscription.model_validate(item) for item in items]

    # Lifecycle -----------------------------------------------------------------------------------

    @property
    def max_concurrency(self) -> int:
        """Requests this client may have in flight at once: the push factory's worker count."""
        return self.http.max_concurrency

    def wise_now(self) -> datetime | None:
        """Wise's clock (the Date header of its latest answer, advanced by the time since), which a
        quote's `expirationTime` is judged against whatever this machine's clock says. With no answer
        yet, asks once: the profile lookup profile-scoped calls need anyway, else the profile list.
        None only if Wise's answers carry no Date."""
        now = self.http.server_now()
        if now is None:
            with self._clock_lock:  # a pool of workers starting at once asks once, not each
                now = self.http.server_now()
                if now is None:
                    if self._profile_id is None:
                        self.business_profile_id()
                    else:
                        self.profiles()
                    now = self.http.server_now()
        return now

    @property
    def requests_made(self) -> int:
        """API calls plus token requests, for the "requests used" run metadata."""
        token_requests = self._credentials.requests_made if self._credentials else 0
        return self.http.requests_made + token_requests

    def close(self) -> None:
        self.http.close()
        if self._credentials is not None:
            self._credentials.close()

    def __enter__(self) -> WiseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
