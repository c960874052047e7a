"""Infor -> Wise assets (group `wise`): recipients, quotes, opt-in transfers, and payout status back.

- `wise_recipients`: suppliers with bank details -> Wise recipients. Recipients are immutable, so
  changed bank details mean delete + recreate (the ledger keeps the old and new ids).
- `wise_quotes`: each open AP invoice -> one quote in the invoice currency, funded from the tenant's
  `wise_source_currency`, with the supplier's recipient attached. Expired quotes are renewed.
- `wise_transfers`: only for tenants with `wise_create_transfers: true`: an unfunded transfer per
  quoted invoice. Funding moves money and stays a human action in Wise; nothing here funds.
- `wise_payout_status` (partitioned by tenant): Wise transfer states (webhook inbox + transfer-list
  polling) written to the Infor invoice's extension record.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from ...core.errors import TargetRejected, ValidationFailed
from ...core.inbox import InboxEvent
from ...core.ledger import Ledger, LedgerEntry
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.infor.adapter import InforAdapter
from ...systems.infor.models import APInvoice, InvoiceExtension, Supplier
from ...systems.wise.client import WiseClient
from ...systems.wise.models import Transfer
from ..frames import from_frame
from ..metadata import log_counts, log_progress, push_session, sync_result
from ..partitions import TENANT_DAY, TENANTS, tenant_day
from ..resources import InforResource, StateResource, WiseResource, not_configured
from .mapping import (
    bank_details_hash,
    existing_recipient_identity,
    payout_status_for,
    quote_request,
    recipient_identity,
    recipient_payload,
    transfer_customer_transaction_id,
)

RECIPIENTS = "wise_recipients"
QUOTES = "wise_quotes"
TRANSFERS = "wise_transfers"
PAYOUT_STATUS = "wise_payout_status"
INBOX_SOURCE = "wise"
POLL_CURSOR = "wise_transfers_created_since"
DEFAULT_SOURCE_CURRENCY = "EUR"
# First poll of a tenant: how far back to look for transfers (unfunded ones are cancelled after 14 days).
FIRST_POLL_LOOKBACK = timedelta(days=30)
# Transfers in these states need no more polling; a later bounce still arrives by webhook.
SETTLED_STATES = frozenset({"outgoing_payment_sent", "cancelled", "funds_refunded", "charged_back"})


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


# Payout status back to Infor --------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedState:
    """One transfer state seen by a webhook (with its inbox row) or by polling (inbox_id None)."""

    transfer_id: int
    state: str
    occurred_at: datetime
    inbox_id: int | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_state_change(event: InboxEvent) -> ObservedState | None:
    """A `transfers#state-change` inbox row -> ObservedState; None for anything else."""
    try:
        payload = json.loads(event.payload)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    data = payload.get("data")
    if payload.get("event_type") != "transfers#state-change" or not isinstance(data, dict):
        return None
    resource = data.get("resource") or {}
    try:
        return ObservedState(
            transfer_id=int(resource["id"]),
            state=str(data["current_state"]),
            occurred_at=_as_utc(datetime.fromisoformat(str(data["occurred_at"]))),
            inbox_id=event.id,
        )
    except (KeyError, TypeError, ValueError):
        return None


def next_poll_cursor(polled: list[Transfer], ours: list[Transfer], previous: datetime) -> datetime:
    """Where the next poll starts: the oldest of our transfers still moving, else the newest seen.

    The transfer list filters on creation time only, so each of our transfers that can still
    change state stays inside the window until it settles. Other transfers never hold it open.
    """
    moving = [_as_utc(t.created) for t in ours if t.created is not None and t.status not in SETTLED_STATES]
    if moving:
        return min(moving)
    return max((_as_utc(t.created) for t in polled if t.created is not None), default=previous)


@dataclass
class InvoiceIndex:
    """Which invoice a Wise transfer pays: by its quote (wise_quotes ledger, renewed quotes too) or
    by its customerTransactionId / id (wise_transfers ledger)."""

    by_quote: dict[str, str]
    by_transaction: dict[str, str]
    by_transfer: dict[str, str]

    @classmethod
    def load(cls, ledger: Ledger, tenant: str) -> "InvoiceIndex":
        by_quote: dict[str, str] = {}
        for entry in ledger.entries(tenant, QUOTES):
            for quote_id in [*entry.extra.get("previous_target_ids", []), entry.target_id]:
                if quote_id:
                    by_quote[quote_id] = entry.source_id
        transfers = ledger.entries(tenant, TRANSFERS)
        return cls(
            by_quote=by_quote,
            by_transaction={
                e.extra["customer_transaction_id"]: e.source_id
                for e in transfers
                if e.extra.get("customer_transaction_id")
            },
            by_transfer={e.target_id: e.source_id for e in transfers if e.target_id},
        )

    def invoice_for(self, transfer: Transfer) -> str | None:
        return (
            self.by_quote.get(transfer.quote_uuid or "")
            or self.by_transaction.get(transfer.customer_transaction_id or "")
            or self.by_transfer.get(str(transfer.id))
        )


class PayoutStatusWriter:
    """Applies observed transfer states to Infor invoices, oldest first."""

    def __init__(
        self, session: SyncSession, client: WiseClient, adapter: InforAdapter, index: InvoiceIndex
    ) -> None:
        self.session = session
        self.client = client
        self.adapter = adapter
        self.index = index
        self.transfers: dict[int, Transfer | None] = {}

    def transfer(self, transfer_id: int) -> Transfer | None:
        if transfer_id not in self.transfers:
            try:
                self.transfers[transfer_id] = self.client.get_transfer(transfer_id)
            except TargetRejected as exc:
                if exc.status not in (403, 404):
                    raise
                self.transfers[transfer_id] = None  # not visible to this tenant's token
        return self.transfers[transfer_id]

    def apply(self, seen: ObservedState) -> SyncResult:
        transfer = self.transfer(seen.transfer_id)
        invoice_key = self.index.invoice_for(transfer) if transfer is not None else None
        transfer_id = str(seen.transfer_id)
        if invoice_key is None:
            return self.session.note(
                f"transfer {transfer_id}",
                "skipped",
                target_id=transfer_id,
                reason="not one of ours: neither its quote nor its customerTransactionId is in the ledger",
            )
        status = payout_status_for(seen.state)
        via = "webhook" if seen.inbox_id is not None else "poll"
        if via == "poll":
            # A poll reports the state as of now: write only what Infor does not show yet.
            current = self.adapter.read_invoice_extension("ap", invoice_key)
            if current is not None and (current.status, current.external_id) == (status, transfer_id):
                return self.session.note(invoice_key, "skipped", target_id=transfer_id, reason="unchanged")
        extension = InvoiceExtension(
            invoice_key=invoice_key, status=status, external_id=transfer_id, updated_at=_iso(seen.occurred_at)
        )
        details = {"state": seen.state, "occurred_at": extension.updated_at, "via": via}
        if self.adapter.write_invoice_extension("ap", invoice_key, extension):
            return self.session.note(
                invoice_key,
                "status",
                target_id=transfer_id,
                reason=f"{seen.state} -> {status}",
                details=details,
            )
        return self.session.note(
            invoice_key,
            "skipped",
            target_id=transfer_id,
            reason=f"{seen.state} at {extension.updated_at} is older than the status Infor holds",
            details=details,
        )


@dg.asset(
    group_name="wise",
    partitions_def=TENANTS,
    pool="infor",
    kinds={"wise", "infor"},
    description="Wise transfer states (webhook inbox, plus transfer-list polling for missed webhooks) "
    "written to the Infor invoices as payout status + Wise transfer id.",
)
def wise_payout_status(
    context: dg.AssetExecutionContext,
    state: StateResource,
    infor: InforResource,
    wise: WiseResource,
) -> dg.MaterializeResult:
    tenant = context.partition_key
    if not state.configured(tenant, "wise"):
        return not_configured(context, tenant, "wise")
    store = state.state()
    session = push_session(context, store, tenant, PAYOUT_STATUS)
    # Clients first: missing credentials fail the run before any inbox row is claimed.
    with wise.client(tenant) as client, infor.adapter(tenant) as adapter:
        ended = session.run_finished
        pending = store.inbox.pending(INBOX_SOURCE, tenant, run_finished=ended)
        claimed = store.inbox.claim([e.id for e in pending], session.run_id, run_finished=ended)
        observed: list[ObservedState] = []
        for event in (event for event in pending if event.id in claimed):
            parsed = parse_state_change(event)
            if parsed is None:
                # Kept as a dead letter with the reason, never retried.
                store.inbox.mark_processed(
                    [event.id], context.run.run_id, error="not a transfer state change"
                )
                session.note(f"inbox {event.id}", "skipped", reason="not a transfer state change")
            else:
                observed.append(parsed)

        polled_at = datetime.now(UTC)
        cursor = store.cursors.get(tenant, POLL_CURSOR)
        since = datetime.fromisoformat(cursor) if cursor else polled_at - FIRST_POLL_LOOKBACK
        try:
            polled = list(client.list_transfers(created_after=since))
        except Exception as exc:  # the safety net failing must not hold back the webhook events
            polled = []
            session.note("transfer list", "failed", reason=f"polling failed: {type(exc).__name__}: {exc}")
        index = InvoiceIndex.load(store.ledger, tenant)
        writer = PayoutStatusWriter(session, client, adapter, index)
        writer.transfers.update({t.id: t for t in polled})
        observed += [ObservedState(t.id, t.status, polled_at) for t in polled]
        # Oldest first, so a late "processing" never lands after "outgoing_payment_sent".
        for seen in sorted(observed, key=lambda s: (s.occurred_at, s.inbox_id is None)):
            try:
                writer.apply(seen)
            except Exception as exc:  # one invoice's write failing never stops the others
                session.note(f"transfer {seen.transfer_id}", "failed", reason=f"{type(exc).__name__}: {exc}")
                if seen.inbox_id is not None:
                    store.inbox.release([seen.inbox_id])
                continue
            if seen.inbox_id is not None:
                # Only now is the status durable in Infor (or deliberately not written).
                store.inbox.mark_processed([seen.inbox_id], context.run.run_id)
        requests = client.requests_made + adapter.requests_made
    if not session.counts["failed"]:
        ours = [t for t in polled if index.invoice_for(t) is not None]
        store.cursors.set(tenant, POLL_CURSOR, next_poll_cursor(polled, ours, since).isoformat())
    log_counts(context, PAYOUT_STATUS, session)
    return sync_result(session, requests)


wise_assets = [wise_recipients, wise_quotes, wise_transfers, wise_payout_status]
