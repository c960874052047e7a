"""Infor -> Wise assets (group `wise`): recipients, quotes, opt-in transfers, and payout status back.

- `wise_recipients`: suppliers with bank details -> Wise recipients. Recipients are immutable, so
  changed bank details mean delete + recreate (the ledger keeps the old and new ids).
- `wise_quotes`: each open AP invoice -> one quote in the invoice currency, funded from the tenant's
  `wise_source_currency`, with the supplier's recipient attached. Expired quotes are renewed.
- `wise_transfers`: only for tenants with `wise_create_transfers: true`: an unfunded transfer per
  quoted invoice. Funding moves money and stays a human action in Wise; nothing here funds.

The inbound side (`wise_payout_status`, Wise transfer states back to Infor) lives in `payout_status.py`.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from ...core.errors import TargetRejected, ValidationFailed
from ...core.ledger import Ledger, LedgerEntry
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.infor.adapter import InforAdapter
from ...systems.infor.models import APInvoice, Supplier
from ...systems.wise.client import WiseClient
from ..frames import from_frame
from ..metadata import log_counts, log_progress, push_session, sync_result
from ..partitions import TENANT_DAY, tenant_day
from ..resources import InforResource, StateResource, WiseResource, not_configured
from .mapping import (
    bank_details_hash,
    existing_recipient_identity,
    quote_request,
    recipient_identity,
    recipient_payload,
    transfer_customer_transaction_id,
)

RECIPIENTS = "wise_recipients"
QUOTES = "wise_quotes"
TRANSFERS = "wise_transfers"
DEFAULT_SOURCE_CURRENCY = "EUR"


# Recipients -------------------------------------------------------------------------------------------


class RecipientSync:
    """Supplier -> Wise recipient. One implementation for `wise_recipients` and for the quotes that
    need a recipient created on the spot."""

    def __init__(self, session: SyncSession, client: WiseClient) -> None:
        self.session = session
        self.client = client

    def sync(self, supplier: Supplier) -> SyncResult:
        supplier_id = supplier.supplier_id
        if supplier.bank_account is None:
            return self.session.note(supplier_id, "skipped", reason="supplier has no bank details")
        digest = bank_details_hash(supplier)
        try:
            # Validated (schwifty for IBANs, checksums, formats) before any call to Wise.
            payload = recipient_payload(supplier, self.client.business_profile_id())
        except ValidationFailed as exc:
            return self.session.flag(supplier_id, exc.reason, field=exc.field, content_hash=digest)

        def create() -> str:
            return str(self.client.create_recipient(payload).id)

        def recreate(old_id: str) -> str:
            # Wise has no recipient update: retire the old account, then create the new one.
            self.client.delete_recipient(int(old_id))
            return create()

        return self.session.sync(
            supplier_id,
            digest,
            create=create,
            lookup=lambda: self._find(supplier_id, payload),
            recreate=recreate,
            extra={"currency": payload["currency"], "type": payload["type"]},
        )

    def _find(self, supplier_id: str, payload: dict[str, Any]) -> str | None:
        """The active recipient with these exact details, after a create whose answer was lost."""
        wanted = recipient_identity(payload)
        for recipient in self.client.list_recipients(payload["currency"]):
            if existing_recipient_identity(recipient) != wanted:
                continue
            # Two suppliers may share an account; never take over another supplier's recipient.
            owner = self.session.ledger.find_by_target(self.session.tenant, RECIPIENTS, str(recipient.id))
            if owner is None or owner.source_id == supplier_id:
                return str(recipient.id)
        return None


@dg.asset(
    group_name="wise",
    partitions_def=TENANT_DAY,
    pool="wise",
    kinds={"wise"},
    description="Suppliers with bank details as Wise recipients (changed details: delete + recreate).",
)
def wise_recipients(
    context: dg.AssetExecutionContext,
    infor_suppliers: pd.DataFrame,
    state: StateResource,
    wise: WiseResource,
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    if not state.configured(tenant, "wise"):
        return not_configured(context, tenant, "wise")
    session = push_session(context, state.state(), tenant, RECIPIENTS)
    suppliers = from_frame(infor_suppliers, Supplier)
    with wise.client(tenant) as client:
        recipients = RecipientSync(session, client)
        for done, supplier in enumerate(suppliers, start=1):
            try:
                recipients.sync(supplier)
            except Exception as exc:  # e.g. the profile lookup failed: this record only, not the run
                session.note(supplier.supplier_id, "failed", reason=f"{type(exc).__name__}: {exc}")
            log_progress(context, RECIPIENTS, done, len(suppliers))
        requests = client.requests_made
    log_counts(context, RECIPIENTS, session)
    return sync_result(session, requests)


# Quotes -----------------------------------------------------------------------------------------------


class QuoteSync:
    """Open AP invoice -> Wise quote with the supplier's recipient attached."""

    def __init__(
        self,
        quotes: SyncSession,
        recipients: RecipientSync,
        client: WiseClient,
        infor: Callable[[], InforAdapter],
        source_currency: str,
    ) -> None:
        self.quotes = quotes
        self.recipients = recipients
        self.client = client
        self.infor = infor
        self.source_currency = source_currency
        self.ledger: Ledger = quotes.ledger
        self.tenant = quotes.tenant
        # Suppliers already synced on the spot in this run: at most one attempt (and alert) each.
        self._synced_on_the_spot: set[str] = set()

    def sync(self, invoice: APInvoice) -> SyncResult:
        key = invoice.invoice_key
        current = self.ledger.get(self.tenant, QUOTES, key)
        if invoice.status != "open":
            # Paid or cancelled: no new quote; an old one simply expires in Wise.
            target = current.target_id if current else None
            return self.quotes.note(key, "skipped", target_id=target, reason=f"invoice is {invoice.status}")
        try:
            request = quote_request(invoice, self.source_currency)
        except ValidationFailed as exc:
            return self.quotes.flag(key, exc.reason, field=exc.field)
        recipient = self._recipient(key, invoice.supplier_id)
        if isinstance(recipient, SyncResult):
            return recipient
        recipient_id = recipient.target_id or ""

        renews = current.extra.get("renews") if current else None
        digest = _quote_hash(request, recipient_id, renews)
        if current is not None and current.status == "done" and current.content_hash == digest:
            if not self._expired(current.target_id or ""):
                return self.quotes.note(key, "skipped", target_id=current.target_id, reason="unchanged")
            # Same invoice, but the locked rate ran out: a new hash makes the session replace it.
            renews = current.target_id
            digest = _quote_hash(request, recipient_id, renews)

        def create() -> str:
            quote = self.client.create_quote(**request)
            self.client.attach_recipient(quote.id, int(recipient_id))
            return quote.id

        return self.quotes.sync(
            key,
            digest,
            create=create,
            # A quote cannot change its amount: a changed invoice or recipient gets a new quote.
            recreate=lambda old_id: create(),
            extra={
                "invoice_key": key,
                "supplier_id": invoice.supplier_id,
                "recipient_id": recipient_id,
                "renews": renews,
            },
        )

    def _recipient(self, key: str, supplier_id: str) -> LedgerEntry | SyncResult:
        """The supplier's done recipient entry, creating it now if needed; else the quote's outcome."""
        entry = self.ledger.get(self.tenant, RECIPIENTS, supplier_id)
        if (entry is None or entry.status != "done") and supplier_id not in self._synced_on_the_spot:
            # Its supplier changed on another day than this invoice: create it now, a quote never waits.
            self._synced_on_the_spot.add(supplier_id)
            supplier = self.infor().supplier(supplier_id)
            if supplier is None:
                return self.quotes.flag(key, f"supplier {supplier_id} not found in Infor")
            if (
                entry is None
                or entry.status != "flagged"
                or entry.content_hash != bank_details_hash(supplier)
            ):
                self.recipients.sync(supplier)
            entry = self.ledger.get(self.tenant, RECIPIENTS, supplier_id)
        if entry is not None and entry.status == "done":
            return entry
        if entry is not None and entry.status == "flagged":
            return self.quotes.flag(key, f"the supplier's Wise recipient is flagged: {entry.reason}")
        reason = entry.reason if entry is not None and entry.reason else "recipient not created yet"
        return self.quotes.note(
            key, "failed", reason=f"no Wise recipient for supplier {supplier_id}: {reason}"
        )

    def _expired(self, quote_id: str) -> bool:
        """Ask Wise: a quote past its 30-minute rate lock reads EXPIRED, and 404 after ~48 h."""
        try:
            quote = self.client.get_quote(quote_id)
        except TargetRejected as exc:
            if exc.status == 404:
                return True
            raise
        return quote.status == "EXPIRED"


def _quote_hash(request: dict[str, Any], recipient_id: str, renews: str | None) -> str:
    # `renews` (the expired quote this one replaced) keeps the hash stable until the next renewal.
    return content_hash({"request": request, "recipient": recipient_id, "renews": renews})


@dg.asset(
    group_name="wise",
    partitions_def=TENANT_DAY,
    pool="wise",
    kinds={"wise"},
    deps=[wise_recipients],
    description="One Wise quote per open AP invoice, recipient attached; expired quotes renewed.",
)
def wise_quotes(
    context: dg.AssetExecutionContext,
    infor_ap_invoices: pd.DataFrame,
    state: StateResource,
    infor: InforResource,
    wise: WiseResource,
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    if not state.configured(tenant, "wise"):
        return not_configured(context, tenant, "wise")
    store = state.state()
    config = state.tenant_config(tenant)
    source_currency = str(config.get("wise_source_currency") or DEFAULT_SOURCE_CURRENCY)
    session = push_session(context, store, tenant, QUOTES)
    invoices = from_frame(infor_ap_invoices, APInvoice)
    adapters: list[InforAdapter] = []

    def infor_adapter() -> InforAdapter:
        # Opened only when a supplier has to be read: most runs never need Infor here.
        if not adapters:
            adapters.append(infor.adapter(tenant))
        return adapters[0]

    try:
        with wise.client(tenant) as client:
            recipients = RecipientSync(push_session(context, store, tenant, RECIPIENTS), client)
            quotes = QuoteSync(session, recipients, client, infor_adapter, source_currency)
            for done, invoice in enumerate(invoices, start=1):
                try:
                    quotes.sync(invoice)
                except Exception as exc:  # one invoice's trouble (an Infor read) never stops the rest
                    session.note(invoice.invoice_key, "failed", reason=f"{type(exc).__name__}: {exc}")
                log_progress(context, QUOTES, done, len(invoices))
            requests = client.requests_made
    finally:
        for adapter in adapters:
            adapter.close()
    log_counts(context, QUOTES, session)
    return sync_result(session, requests)


# Transfers (opt-in, never funded) ---------------------------------------------------------------------


@dg.asset(
    group_name="wise",
    partitions_def=TENANT_DAY,
    pool="wise",
    kinds={"wise"},
    deps=[wise_quotes],
    description="Unfunded Wise transfers for quoted invoices, only for tenants that opted in. "
    "Funding is always a human action in Wise.",
)
def wise_transfers(
    context: dg.AssetExecutionContext,
    infor_ap_invoices: pd.DataFrame,
    state: StateResource,
    wise: WiseResource,
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    if not state.configured(tenant, "wise"):
        return not_configured(context, tenant, "wise")
    store = state.state()
    session = push_session(context, store, tenant, TRANSFERS)
    invoices = [i for i in from_frame(infor_ap_invoices, APInvoice) if i.status == "open"]
    if state.tenant_config(tenant).get("wise_create_transfers") is not True:
        for invoice in invoices:
            session.note(invoice.invoice_key, "skipped", reason="not opted in")
        return sync_result(session, 0)
    with wise.client(tenant) as client:
        for done, invoice in enumerate(invoices, start=1):
            _create_transfer(session, client, invoice)
            log_progress(context, TRANSFERS, done, len(invoices))
        requests = client.requests_made
    log_counts(context, TRANSFERS, session)
    return sync_result(session, requests)


def _create_transfer(session: SyncSession, client: WiseClient, invoice: APInvoice) -> SyncResult:
    key = invoice.invoice_key
    quote = session.ledger.get(session.tenant, QUOTES, key)
    if quote is None or quote.status != "done" or not quote.target_id:
        return session.note(key, "skipped", reason="no Wise quote for this invoice yet")
    quote_id, recipient_id = quote.target_id, int(quote.extra["recipient_id"])
    # Wise dedupes on customerTransactionId: the same key on every run makes the create idempotent.
    transaction_id = transfer_customer_transaction_id(session.tenant, key)
    return session.sync(
        key,
        transaction_id,
        create=lambda: str(
            client.create_transfer(recipient_id, quote_id, transaction_id, invoice.invoice_number).id
        ),
        extra={"customer_transaction_id": transaction_id, "quote_id": quote_id, "recipient_id": recipient_id},
    )


wise_assets = [wise_recipients, wise_quotes, wise_transfers]
