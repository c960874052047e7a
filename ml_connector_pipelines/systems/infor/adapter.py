"""One product-neutral face for M3 and SyteLine: integrations call an `InforAdapter` and get models.

`open_adapter(ionapi, product, config)` builds the gateway client and the right adapter for a tenant:
`M3Adapter` (`m3_adapter.py`, MI programs checked against the M3 metadata, see docs/infor.md) or
`SyteLineAdapter` (`syteline_adapter.py`, Mongoose IDOs). Reads take one modified date and stream
canonical records (`models.py`) page by page; writes return the id Infor gave the new record.

Tenant config keys (all products): page_size (default 500), client_auth ("form" | "basic"),
rate_limit_per_second (requests per second for the tenant's gateway credential; default and ceiling
`DEFAULT_RATE_LIMIT`, 500 requests/min: the ION API Gateway publishes no default quota, and 500/min is
what the seed copy allows, so a setting may lower it, never raise it).
M3 keys are listed in `m3_adapter.py`; SyteLine needs mongoose_config.

A row that cannot become a canonical record is skipped and kept in `adapter.rejected`, naming the
row and the M3 column / IDO property that was bad: one bad field never stops a whole extract.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, Protocol, Self

from ...core.http import HttpClient, RateLimit, capped_rate_limit
from .auth import GATEWAY_RETRY, IonApiAuth
from .common import InvoiceKind, RejectedRecord, is_newer, split_invoice_key
from .errors import INFOR_HOOKS
from .ionapi import IonApi
from .m3_adapter import M3Adapter
from .models import (
    APInvoice,
    ARInvoice,
    ARPayment,
    Customer,
    GLAccount,
    InvoiceExtension,
    NewAPInvoice,
    NewPurchaseOrder,
    PostedARPayment,
    Product,
    PurchaseOrder,
    Supplier,
)
from .syteline_adapter import SyteLineAdapter

__all__ = [
    "InforAdapter",
    "InvoiceKind",
    "M3Adapter",
    "RejectedRecord",
    "SyteLineAdapter",
    "is_newer",
    "open_adapter",
    "split_invoice_key",
]

# Infor recommends a client timeout of 5 minutes or more (the gateway itself gives up after 1-5).
GATEWAY_TIMEOUT_SECONDS = 300.0

# Per tenant (the gateway credential), shared by every adapter and process of the tenant: a burst of
# 50, then 450/min, so no 60 s window holds more than 500 requests.
DEFAULT_RATE_LIMIT = RateLimit(per_second=450 / 60, burst=50)


class InforAdapter(Protocol):
    product: Product
    rejected: list[RejectedRecord]

    @property
    def requests_made(self) -> int: ...

    def suppliers(self, day: date) -> Iterator[Supplier]: ...
    # Changed on any day from `first` to `last`, read as one window (a lookback, not a partition).
    def suppliers_changed(self, first: date, last: date) -> Iterator[Supplier]: ...
    def supplier(self, supplier_id: str) -> Supplier | None: ...
    def customers(self, day: date) -> Iterator[Customer]: ...
    def customer(self, customer_id: str) -> Customer | None: ...
    def ap_invoices(self, day: date) -> Iterator[APInvoice]: ...
    def ar_invoices(self, day: date) -> Iterator[ARInvoice]: ...
    def purchase_orders(self, day: date) -> Iterator[PurchaseOrder]: ...
    def gl_accounts(self, day: date) -> Iterator[GLAccount]: ...
    def gl_accounts_changed(self, first: date, last: date) -> Iterator[GLAccount]: ...

    def create_purchase_order(self, order: NewPurchaseOrder) -> str: ...
    def find_purchase_order(self, external_ref: str) -> str | None: ...
    def create_ap_invoice(self, invoice: NewAPInvoice) -> str: ...
    def find_ap_invoice(self, invoice: NewAPInvoice) -> str | None: ...
    def add_ar_payment(self, payment: ARPayment) -> str: ...
    def find_ar_payment(self, reference: str) -> str | None: ...
    def ar_payments(self, reference: str) -> list[PostedARPayment]: ...
    def write_invoice_extension(
        self, kind: InvoiceKind, invoice_key: str, extension: InvoiceExtension
    ) -> bool: ...
    def read_invoice_extension(self, kind: InvoiceKind, invoice_key: str) -> InvoiceExtension | None: ...

    def ping(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...


def open_adapter(
    ionapi: IonApi, product: str, config: Mapping[str, Any], *, allow_loopback_http: bool = False
) -> InforAdapter:
    """The adapter for one tenant. Close it (or use `with`) to revoke the OAuth grant."""
    ionapi.check_urls(allow_loopback_http=allow_loopback_http)
    headers: dict[str, str] = {}
    if product == "syteline":
        if not config.get("mongoose_config"):
            raise ValueError(
                "SyteLine tenant config needs 'mongoose_config' (the X-Infor-MongooseConfig name)"
            )
        headers["X-Infor-MongooseConfig"] = str(config["mongoose_config"])
    elif product != "m3":
        raise ValueError(f"unknown Infor product {product!r}; expected 'm3' or 'syteline'")
    auth = IonApiAuth(ionapi, client_auth=config.get("client_auth", "form"))
    per_second = config.get("rate_limit_per_second")
    # The one place an Infor HttpClient is built.
    http = HttpClient(
        "infor",
        ionapi.api_base,
        auth=auth,
        credential_id=ionapi.tenant,
        retry=GATEWAY_RETRY,
        timeout=GATEWAY_TIMEOUT_SECONDS,
        headers=headers,
        hooks=INFOR_HOOKS,
        # Shared per (system, credential_id): every adapter of this tenant draws from one bucket.
        rate_limit=capped_rate_limit(DEFAULT_RATE_LIMIT, per_second),
    )
    if product == "m3":
        return M3Adapter(http, auth, config)
    return SyteLineAdapter(http, auth, config)
