"""A typed client for the Cin7 Core External API v2 (contracts/cin7.md), on ``core.http``.

    with Cin7Client("https://inventory.dearsystems.com/ExternalApi/v2", account_id, key) as cin7:
        for supplier in cin7.suppliers():
            ...

What is Cin7-specific, and decided here:
- Auth is two fixed headers per request (``api-auth-accountid``, ``api-auth-applicationkey``).
- Rate: 60 calls per minute per API Application (contract §2): the client's bucket is per
  application key, at ``per_minute`` (default 60).
- A 503 is Cin7's rate-limit answer, not a server failure: the request did not run, so the
  client's ``ErrorHooks`` classify it THROTTLED (retried for every method after a wait, never
  an unknown outcome; 429 likewise). Any other 5xx to a POST is ``OutcomeUnknown``. The budget is
  shared across processes and runs when a ``rate_store`` is given (the registry passes the state
  store).
- 403 is Cin7's "authentication failed" (not a record problem): ``AuthenticationFailed``.
- Errors are a list ``[{ErrorCode, Exception}]`` (or one such object): the messages are joined.
- Paging: ``Page``/``Limit`` with ``Total``; lists are read with ``Limit=1000`` (the maximum).
- POST /purchase has no idempotency: callers look a purchase up (``search_purchases``) before a
  second create.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from ml_connector_pipelines.core.errors import AuthenticationFailed, TargetRejected
from ml_connector_pipelines.core.http import (
    ErrorHooks,
    HttpClient,
    RateLimit,
    RateStore,
    RetryPolicy,
    StatusClass,
    default_status_class,
    generic_error_message,
    paginate,
)

from .models import (
    Account,
    AccountPayload,
    Product,
    Purchase,
    PurchaseHeader,
    PurchaseInvoicePayload,
    PurchaseListItem,
    PurchaseOrderPayload,
    StageResult,
    Supplier,
    SupplierPayload,
)

SYSTEM = "cin7"
DEFAULT_PER_MINUTE = 60
PAGE_LIMIT = 1000
THROTTLE_STATUSES = frozenset({429, 503})
# At 60 calls a minute two requests in flight keep the budget busy while a record is booked.
MAX_CONCURRENCY = 2
M = TypeVar("M", bound=BaseModel)


def cin7_message(response: httpx.Response) -> str:
    """Cin7's own error text: the ``Exception`` of each entry of its error list."""
    try:
        body = response.json()
    except ValueError:
        body = None
    entries = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    messages = [str(e["Exception"]) for e in entries if isinstance(e, dict) and e.get("Exception")]
    return "; ".join(messages) if messages else generic_error_message(response)


def throttle_policy(per_minute: float) -> RetryPolicy:
    """Cin7 sends no Retry-After: after a 503 wait about one call's slot, doubling, up to a minute
    (the window), for up to five minutes in all."""
    return RetryPolicy(max_attempts=10, base_delay=60.0 / per_minute, max_delay=60.0, max_total=300.0)


class Cin7Client:
    def __init__(
        self,
        base_url: str,
        account_id: str,
        application_key: str,
        *,
        per_minute: float = DEFAULT_PER_MINUTE,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        rate_store: RateStore | None = None,
    ) -> None:
        self.per_minute = per_minute
        self.max_concurrency = MAX_CONCURRENCY
        self.throttled = 0  # 503/429 answers seen, for run metadata and the benchmark
        self._count_lock = threading.Lock()
        # The bucket is per application key (Cin7's unit); a digest keeps the key out of it.
        credential_id = "app-" + hashlib.sha256(application_key.encode()).hexdigest()[:12]
        self.http = HttpClient(
            SYSTEM,
            base_url.rstrip("/"),
            credential_id=credential_id,
            rate_limit=RateLimit(per_second=per_minute / 60.0, burst=1),
            retry=retry or throttle_policy(per_minute),
            timeout=timeout,
            max_concurrency=MAX_CONCURRENCY,
            headers={
                "api-auth-accountid": account_id,
                "api-auth-applicationkey": application_key,
                "Content-Type": "application/json",
            },
            transport=transport,
            hooks=ErrorHooks(message=cin7_message, classify=self._classify),
            rate_store=rate_store,
        )

    # Plumbing ------------------------------------------------------------------------------------

    def _classify(self, status: int, idempotent: bool) -> StatusClass:
        if status in THROTTLE_STATUSES:
            with self._count_lock:
                self.throttled += 1
            return StatusClass.THROTTLED
        return default_status_class(status, idempotent)

    def _call(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        try:
            response = self.http.request(method, path, params=params, json=json)
        except TargetRejected as exc:
            if exc.status == 403:
                raise AuthenticationFailed(SYSTEM, exc.method, exc.path, 403, exc.target_message) from None
            raise
        return response.json() if response.content else None

    def _pages(self, path: str, list_name: str, model: type[M], params: dict[str, Any]) -> Iterator[M]:
        def fetch_page(page: int | None) -> tuple[list[M], int | None]:
            number = page or 1
            body = self._call("GET", path, params={**params, "Page": number, "Limit": PAGE_LIMIT})
            items = [model.model_validate(item) for item in body.get(list_name) or []]
            more = items and number * PAGE_LIMIT < int(body.get("Total") or 0)
            return items, number + 1 if more else None

        return paginate(fetch_page)

    # Suppliers -----------------------------------------------------------------------------------

    def suppliers(self, name: str | None = None, include_deprecated: bool = True) -> Iterator[Supplier]:
        params: dict[str, Any] = {"IncludeDeprecated": str(include_deprecated).lower()}
        if name:
            params["Name"] = name
        return self._pages("/supplier", "SupplierList", Supplier, params)

    def supplier(self, supplier_id: str) -> Supplier | None:
        body = self._call("GET", "/supplier", params={"ID": supplier_id, "IncludeDeprecated": "true"})
        items = body.get("SupplierList") or []
        return Supplier.model_validate(items[0]) if items else None

    def create_supplier(self, payload: SupplierPayload) -> Supplier:
        """POST /supplier. Not idempotent (a timeout is OutcomeUnknown); ``Name`` is unique in Cin7."""
        body = self._call("POST", "/supplier", json=payload.to_wire())
        return Supplier.model_validate(body["SupplierList"][0])

    def update_supplier(self, payload: SupplierPayload) -> Supplier:
        """PUT /supplier with ``ID``: sets the fields given."""
        if not payload.id:
            raise ValueError("update_supplier needs the supplier's ID")
        body = self._call("PUT", "/supplier", json=payload.to_wire())
        return Supplier.model_validate(body["SupplierList"][0])

    # Products ------------------------------------------------------------------------------------

    def product_page(self) -> tuple[list[Product], bool]:
        """The first PAGE_LIMIT products, and whether they are the whole catalogue (one call)."""
        body = self._call("GET", "/product", params={"Page": 1, "Limit": PAGE_LIMIT})
        items = [Product.model_validate(item) for item in body.get("Products") or []]
        return items, len(items) >= int(body.get("Total") or 0)

    def product_by_sku(self, sku: str) -> Product | None:
        body = self._call("GET", "/product", params={"Sku": sku, "Page": 1, "Limit": 1})
        items = body.get("Products") or []
        return Product.model_validate(items[0]) if items else None

    # Purchases -----------------------------------------------------------------------------------

    def create_purchase(self, header: PurchaseHeader) -> Purchase:
        """POST /purchase: a new task every time (no idempotency, contract §2)."""
        return Purchase.model_validate(self._call("POST", "/purchase", json=header.to_wire()))

    def purchase(self, purchase_id: str) -> Purchase | None:
        try:
            return Purchase.model_validate(self._call("GET", "/purchase", params={"ID": purchase_id}))
        except TargetRejected as exc:
            if exc.status == 404:
                return None
            raise

    def post_order(self, order: PurchaseOrderPayload) -> StageResult:
        """POST /purchase/order. Replaces the order's lines, so sending it again is safe."""
        return StageResult.model_validate(self._call("POST", "/purchase/order", json=order.to_wire()))

    def post_invoice(self, invoice: PurchaseInvoicePayload) -> StageResult:
        """POST /purchase/invoice. Replaces the invoice's lines while it is DRAFT."""
        return StageResult.model_validate(self._call("POST", "/purchase/invoice", json=invoice.to_wire()))

    def search_purchases(self, search: str) -> Iterator[PurchaseListItem]:
        """purchaseList?Search=: matches OrderNumber, Status, Supplier, InvoiceNumber, CreditNoteNumber."""
        return self._pages("/purchaseList", "PurchaseList", PurchaseListItem, {"Search": search})

    # Chart of accounts ---------------------------------------------------------------------------

    def accounts(self) -> Iterator[Account]:
        return self._pages("/ref/account", "AccountsList", Account, {})

    def create_account(self, payload: AccountPayload) -> Account:
        body = self._call("POST", "/ref/account", json=payload.to_wire())
        return Account.model_validate(body["AccountsList"][0])

    # Lifecycle -----------------------------------------------------------------------------------

    def ping(self) -> None:
        """One cheap authenticated call: raises AuthenticationFailed for a wrong id or key."""
        self._call("GET", "/ref/account", params={"Page": 1, "Limit": 1})

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Cin7Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
