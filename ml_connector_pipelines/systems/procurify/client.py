"""A typed client for Procurify's REST API (contracts/procurify.md), on the one HTTP layer.

    with ProcurifyClient("https://acme.procurify.com", "client-id", "secret") as procurify:
        for order in procurify.approved_purchase_orders(date(2026, 12, 1)):
            ...

- Auth: OAuth client credentials, ``POST /oauth/token`` with a JSON body and the ``audience``
  ``https://api.procurify.com/``; the token (24 h) is cached and renewed an hour before expiry
  (Procurify asks clients to cache it), and once more after a 401. Every call also sends
  ``X-Procurify-Client: api``. There is no refresh token.
- Lists follow the absolute ``next`` URL of ``metadata.pagination`` (only on the tenant's own host:
  the bearer token never goes elsewhere); ``page_size`` 100 by default, since Procurify may suspend
  clients whose requests are too large.
- Read only: nothing here writes to Procurify.

Modified-date windows (the day boundary and time zone) -- tenant config ``procurify_timezone``
(IANA name, default ``UTC``): partition day D covers ``[D 00:00, D+1 00:00)`` in that time zone,
compared with each record's last-modified timestamp (PO ``last_modified``, bill
``last_modified_datetime``). Procurify's ``_0`` / ``_1`` filters are inclusive at both ends and its
date filters use the server's time zone [I], so the client asks for one day more on each side and
keeps the half-open window itself: a record modified exactly at midnight belongs to one day only.

Assumptions [I], each tenant config with its default:
- ``procurify_approved_bill_statuses`` (default ``[2]``): which bill ``status`` integers count as
  approved; Procurify publishes the values 0-8 but not their names.
- POs carry no approval status (approval happens on the requisition); every PO that is not
  cancelled (state 1) or legacy (2) is approved, and listed from ``/purchased/all/``.
- ``procurify_page_size`` (default 100) and ``rate_limit_per_second`` (default: the registry's
  budget for Procurify, none documented by Procurify).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ValidationError

from ...core.errors import ConnectorError
from ...core.http import (
    ErrorHooks,
    HttpClient,
    RateLimit,
    RateStore,
    RetryPolicy,
    generic_error_message,
    paginate,
)
from ...core.redact import register_secret
from .models import AccountCode, Bill, Department, Location, PurchaseOrder, Vendor

SYSTEM = "procurify"
AUDIENCE = "https://api.procurify.com/"
CLIENT_HEADER = {"X-Procurify-Client": "api"}
DEFAULT_PAGE_SIZE = 100
DEFAULT_TIMEZONE = "UTC"
DEFAULT_APPROVED_BILL_STATUSES = (2,)
DEFAULT_EXPIRES_IN = 86400.0
RENEW_MARGIN_SECONDS = 3600.0
M = TypeVar("M", bound=BaseModel)


def procurify_error_message(response: httpx.Response) -> str:
    """Django REST Framework's shapes: ``{"detail": "..."}``, or ``{"field": ["message", ...]}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and not isinstance(body.get("detail"), str):
        fields = [
            f"{name}: {'; '.join(str(m) for m in messages)}"
            for name, messages in body.items()
            if isinstance(messages, list) and messages
        ]
        if fields:
            return " | ".join(fields)
    return generic_error_message(response)


PROCURIFY_HOOKS = ErrorHooks(message=procurify_error_message)


@dataclass(frozen=True)
class RejectedRecord:
    """A Procurify object that did not fit its model: left out of the read, named here."""

    record_id: str
    field: str
    reason: str


class ProcurifyAuth:
    """AuthHook: a cached client-credentials token, renewed before expiry and after a 401."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.http = HttpClient(
            SYSTEM,
            base_url,
            credential_id=f"{client_id}:oauth",
            retry=retry,
            transport=transport,
            hooks=PROCURIFY_HOOKS,
        )
        self._client_id = client_id
        self._client_secret = client_secret
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.tokens_fetched = 0

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def reauthenticate(self) -> None:
        with self._lock:
            self._fetch()

    def _fetch(self) -> None:
        body = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "audience": AUDIENCE,
            "grant_type": "client_credentials",
        }
        # Asking for a token twice has no side effect, so a lost answer may be retried.
        answer = self.http.post("/oauth/token", json=body, idempotent=True).json()
        self._token = str(answer["access_token"])
        register_secret(self._token)
        self.tokens_fetched += 1
        lifetime = float(answer.get("expires_in") or DEFAULT_EXPIRES_IN)
        self._renew_at = time.monotonic() + lifetime - min(RENEW_MARGIN_SECONDS, lifetime / 10)

    def close(self) -> None:
        self.http.close()


class ProcurifyClient:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        config: Mapping[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy = RetryPolicy(),
        rate_limit: RateLimit | None = None,
        rate_store: RateStore | None = None,
    ) -> None:
        config = config or {}
        self.base_url = base_url.rstrip("/")
        self.timezone = ZoneInfo(str(config.get("procurify_timezone") or DEFAULT_TIMEZONE))
        self.page_size = int(config.get("procurify_page_size") or DEFAULT_PAGE_SIZE)
        statuses = config.get("procurify_approved_bill_statuses")
        self.approved_bill_statuses = frozenset(
            int(s) for s in (statuses if statuses is not None else DEFAULT_APPROVED_BILL_STATUSES)
        )
        per_second = config.get("rate_limit_per_second")
        # Objects a read could not map: one bad PO or bill never stops the others.
        self.rejected: list[RejectedRecord] = []
        self.auth = ProcurifyAuth(self.base_url, client_id, client_secret, transport=transport, retry=retry)
        self.http = HttpClient(
            SYSTEM,
            self.base_url,
            auth=self.auth,
            credential_id=client_id,
            retry=retry,
            headers=CLIENT_HEADER,
            transport=transport,
            # The tenant's own figure wins over the default budget (Procurify documents none).
            rate_limit=RateLimit(float(per_second)) if per_second else rate_limit,
            hooks=PROCURIFY_HOOKS,
            # Given the state store, the budget holds across every process using this credential.
            rate_store=rate_store,
        )

    @property
    def requests_made(self) -> int:
        return self.http.requests_made + self.auth.http.requests_made

    def ping(self) -> None:
        """One authenticated read: proves the domain, the credentials and the client header."""
        self.http.get("/api/v3/users/me/")

    # Windows ----------------------------------------------------------------------------------------

    def window(self, day: date) -> tuple[datetime, datetime]:
        """``[day 00:00, day+1 00:00)`` in the tenant's time zone, as aware datetimes."""
        start = datetime.combine(day, datetime.min.time(), self.timezone)
        return start, datetime.combine(day + timedelta(days=1), datetime.min.time(), self.timezone)

    @staticmethod
    def _within(moment: datetime, window: tuple[datetime, datetime]) -> bool:
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return window[0] <= moment < window[1]

    # Reads ------------------------------------------------------------------------------------------

    def _list(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following the absolute ``next`` URLs."""
        first = {**(params or {}), "page_size": self.page_size}

        def fetch(url: str | None) -> tuple[list[dict[str, Any]], str | None]:
            response = self.http.get(path, params=first) if url is None else self.http.get(self._own(url))
            body = response.json()
            data = body.get("data")
            if not isinstance(data, list):
                raise ConnectorError(f"procurify {path}: the answer has no data list")
            return data, (body.get("metadata") or {}).get("pagination", {}).get("next")

        return paginate(fetch)

    def _own(self, url: str) -> str:
        """A ``next`` URL, only if it points at this tenant's host (the token must not leave it)."""
        mine, theirs = urlsplit(self.base_url), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            raise ConnectorError(f"procurify pagination points at another host: {theirs.netloc}")
        return url

    def _model(self, model: type[M], row: dict[str, Any], record_id: str) -> M | None:
        try:
            return model.model_validate(row)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            self.rejected.append(RejectedRecord(record_id, where, error["msg"]))
            return None

    def _models(self, model: type[M], rows: Iterable[dict[str, Any]]) -> list[M]:
        name = model.__name__.lower()
        found = (self._model(model, row, f"{name}/{row.get('id')}") for row in rows)
        return [item for item in found if item is not None]

    def vendors(self) -> list[Vendor]:
        return self._models(Vendor, self._list("/api/v3/vendors/"))

    def account_codes(self) -> list[AccountCode]:
        return self._models(AccountCode, self._list("/api/v3/account-codes/"))

    def departments(self) -> list[Department]:
        return self._models(Department, self._list("/api/v3/departments/"))

    def locations(self) -> list[Location]:
        rows: list[dict[str, Any]] = []
        for item in self._list("/api/v2/locations/"):
            # The OpenAPI document wraps a page's locations in one {"data": [...]} object [C P2].
            rows.extend(item["data"] if isinstance(item.get("data"), list) else [item])
        return self._models(Location, rows)

    def purchase_orders(self, day: date) -> Iterator[PurchaseOrder]:
        """Every PO last modified on ``day`` (tenant time zone), with its lines."""
        window = self.window(day)
        params = {
            "modified_date_0": (day - timedelta(days=1)).isoformat(),
            "modified_date_1": (day + timedelta(days=1)).isoformat(),
            "order_by": "id",
        }
        for row in self._list("/api/v2/purchase_orders/purchased/all/", params):
            record_id = f"PFY-{row.get('procurify_PO')}"
            head = self._model(PurchaseOrder, row, record_id)
            if head is None or not self._within(head.last_modified, window):
                continue
            detail = self.http.get(f"/api/v2/purchase_orders/{head.uuid}/").json()["data"]
            order = self._model(PurchaseOrder, detail, record_id)
            if order is not None:
                yield order

    def approved_purchase_orders(self, day: date) -> Iterator[PurchaseOrder]:
        return (order for order in self.purchase_orders(day) if order.approved)

    def bills(self, day: date) -> Iterator[Bill]:
        """Every bill last modified on ``day`` (tenant time zone), with its lines."""
        start, end = self.window(day)
        params = {
            "last_modified_datetime_0": (start - timedelta(days=1)).isoformat(),
            "last_modified_datetime_1": (end + timedelta(days=1)).isoformat(),
            "order_by": "id",
        }
        for row in self._list("/api/v3/ap/bills/", params):
            record_id = f"bill/{row.get('id')}"
            head = self._model(Bill, {**row, "items": ()}, record_id)  # the list gives item ids only
            if head is None or not self._within(head.last_modified_datetime, (start, end)):
                continue
            # By number: the document's id pattern (^[0-9a-f]+$) has no room for a UUID's dashes.
            detail = self.http.get(f"/api/v2/ap/bills/{head.id}/").json()["data"]
            bill = self._model(Bill, detail, record_id)
            if bill is not None:
                yield bill

    def approved_bills(self, day: date) -> Iterator[Bill]:
        return (bill for bill in self.bills(day) if bill.status in self.approved_bill_statuses)

    def close(self) -> None:
        self.http.close()
        self.auth.close()

    def __enter__(self) -> ProcurifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
