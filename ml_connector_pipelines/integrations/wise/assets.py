"""Infor -> Wise assets (group `wise`): recipients, quotes, opt-in transfers, and payout status back.

- `wise_recipients`: suppliers with bank details -> Wise recipients. Recipients are immutable, so
  changed bank details mean delete + recreate (the ledger keeps the old and new ids).
- `wise_quotes`: each open AP invoice -> one quote in the invoice currency, funded from the tenant's
  `wise_source_currency`, with the supplier's recipient attached. Expired quotes are renewed. The
  ledger keeps each quote's `expirationTime`; a re-poll asks Wise about a quote only once it is
  near or past that time by Wise's clock (the Date of its answers), never by this machine's.
- `wise_transfers`: only for tenants with `wise_create_transfers: true`: an unfunded transfer per
  quoted invoice. Funding moves money and stays a human action in Wise; nothing here funds.

The inbound side (`wise_payout_status`, Wise transfer states back to Infor) lives in `payout_status.py`.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from ...core.errors import TargetRejected, ValidationFailed
from ...core.ledger import Ledger, LedgerEntry
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.infor.models import APInvoice, Supplier
from ...systems.wise.client import WiseClient
from ..kit.push import PushPair, RecordSource
from ..kit.pushers import PushContext
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
# A quote whose stored expiry is less than this ahead of Wise's clock is asked about: that clock is
# read from whole-second Date headers that arrive a request late, so a near one is checked, not assumed.
EXPIRY_MARGIN = timedelta(minutes=2)


# Recipients -------------------------------------------------------------------------------------------


class RecipientSync:
    """Supplier -> Wise recipient. One implementation for `wise_recipients` and for the quotes that
    need a recipient created on the spot."""

    def __init__(self, session: SyncSession, client: WiseClient) -> None:
        self.session = session
        self.client = client

    def will_claim(self, supplier: Supplier) -> bool:
        """A new supplier is flagged or synced unless it has no bank details (see `Pusher`)."""
        return supplier.bank_account is not None

    def sync(self, supplier: Supplier) -> SyncResult:
        supplier_id = supplier.supplier_id
        if supplier.bank_account is None:
            return self.session.note(supplier_id, "skipped", reason="supplier has no bank details")
        digest = bank_details_hash(supplier)
        # Before the payload: building it asks Wise for the profile and the account requirements.
        unchanged = self.session.skip_if_unchanged(supplier_id, digest)
        if unchanged is not None:
            return unchanged
        try:
            # Validated (schwifty for IBANs, checksums, formats) before any call to Wise.
            payload = recipient_payload(
                supplier, self.client.business_profile_id(), self.client.account_requirements
            )
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


WISE = PushPair("wise", "wise")
AP_INVOICES = RecordSource("infor_ap_invoices", APInvoice, lambda invoice: invoice.invoice_key)

wise_recipients = WISE.asset(
    RECIPIENTS,
    RecordSource("infor_suppliers", Supplier, lambda supplier: supplier.supplier_id),
    lambda ctx: RecipientSync(ctx.session, ctx.target),
    "Suppliers with bank details as Wise recipients (changed details: delete + recreate).",
)


# Quotes -----------------------------------------------------------------------------------------------


class QuoteSync:
    """Open AP invoice -> Wise quote with the supplier's recipient attached."""

    def __init__(self, ctx: PushContext) -> None:
        self.quotes = ctx.session
        self.recipients = RecipientSync(ctx.session_for(RECIPIENTS), ctx.target)
        self.client: WiseClient = ctx.target
        self.infor = ctx.infor
        self.source_currency = str(ctx.config.get("wise_source_currency") or DEFAULT_SOURCE_CURRENCY)
        self.dependencies = ctx.dependencies
        self.ledger: Ledger = self.quotes.ledger
        self.tenant = self.quotes.tenant

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
        recipient_id = self._recipient(key, invoice.supplier_id)

        renews = current.extra.get("renews") if current else None
        digest = _quote_hash(request, recipient_id, renews)
        if current is not None and current.status == "done" and current.content_hash == digest:
            if not self._expired(current):
                return self.quotes.note(key, "skipped", target_id=current.target_id, reason="unchanged")
            # Same invoice, but the locked rate ran out: a new hash makes the session replace it.
            renews = current.target_id
            digest = _quote_hash(request, recipient_id, renews)

        extra: dict[str, Any] = {
            "invoice_key": key,
            "supplier_id": invoice.supplier_id,
            "recipient_id": recipient_id,
            "renews": renews,
            "expires_at": None,  # set by create(): never the replaced quote's expiry
        }

        def create() -> str:
            quote = self.client.create_quote(**request)
            attached = self.client.attach_recipient(quote.id, int(recipient_id))
            expires = attached.expiration_time or quote.expiration_time
            # The session writes `extra` once the call returned, so the new quote's expiry goes with it.
            extra["expires_at"] = expires.isoformat() if expires else None
            return quote.id

        return self.quotes.sync(
            key,
            digest,
            create=create,
            # A quote cannot change its amount: a changed invoice or recipient gets a new quote.
            recreate=lambda old_id: create(),
            extra=extra,
        )

    def _recipient(self, key: str, supplier_id: str) -> str:
        """The supplier's Wise recipient id. One not created yet (its supplier changed on another day
        than this invoice) is created now: a quote never waits for the next recipients run."""

        def sync_now(entry: LedgerEntry | None) -> None:
            supplier = self.infor().supplier(supplier_id)
            if supplier is None:
                raise ValidationFailed(key, "supplier_id", f"supplier {supplier_id} not found in Infor")
            # A flagged recipient is retried only once its bank details changed.
            if (
                entry is None
                or entry.status != "flagged"
                or entry.content_hash != bank_details_hash(supplier)
            ):
                self.recipients.sync(supplier)

        entry = self.dependencies.resolve(
            key, "supplier_id", RECIPIENTS, supplier_id, sync_now, "the supplier's Wise recipient"
        )
        return entry.target_id or ""

    def _expired(self, current: LedgerEntry) -> bool:
        """Whether the quote's rate lock ran out. Judged from its stored expiry while that is clearly
        ahead of Wise's clock; otherwise (near or past it, or no expiry stored) Wise is asked, since a
        quote past its time may also be ACCEPTED by a transfer and must then be kept."""
        quote_id = current.target_id or ""
        expires = _stored_expiry(current)
        if expires is not None:
            now = self.client.wise_now()
            if now is not None and expires - now > EXPIRY_MARGIN:
                return False
        return self._ask(quote_id)

    def _ask(self, quote_id: str) -> bool:
        """Ask Wise: a quote past its 30-minute rate lock reads EXPIRED, and 404 after ~48 h."""
        try:
            quote = self.client.get_quote(quote_id)
        except TargetRejected as exc:
            if exc.status == 404:
                return True
            raise
        return quote.status == "EXPIRED"


def _stored_expiry(entry: LedgerEntry) -> datetime | None:
    value = entry.extra.get("expires_at")
    if not value:
        return None  # a quote created before expiries were stored
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _quote_hash(request: dict[str, Any], recipient_id: str, renews: str | None) -> str:
    # `renews` (the expired quote this one replaced) keeps the hash stable until the next renewal.
    return content_hash({"request": request, "recipient": recipient_id, "renews": renews})


wise_quotes = WISE.asset(
    QUOTES,
    AP_INVOICES,
    QuoteSync,
    "One Wise quote per open AP invoice, recipient attached; expired quotes renewed.",
    deps=[wise_recipients.key],
    reads_infor=True,
)


# Transfers (opt-in, never funded) ---------------------------------------------------------------------


class TransferSync:
    """Quoted open invoice -> unfunded Wise transfer, only for tenants with `wise_create_transfers`."""

    def __init__(self, ctx: PushContext) -> None:
        self.session = ctx.session
        self.client: WiseClient = ctx.target
        self.opted_in = ctx.config.get("wise_create_transfers") is True

    def sync(self, invoice: APInvoice) -> SyncResult:
        key = invoice.invoice_key
        if not self.opted_in:
            return self.session.note(key, "skipped", reason="not opted in")
        session = self.session
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
                self.client.create_transfer(recipient_id, quote_id, transaction_id, invoice.invoice_number).id
            ),
            extra={
                "customer_transaction_id": transaction_id,
                "quote_id": quote_id,
                "recipient_id": recipient_id,
            },
        )


wise_transfers = WISE.asset(
    TRANSFERS,
    AP_INVOICES,
    TransferSync,
    "Unfunded Wise transfers for quoted invoices, only for tenants that opted in. "
    "Funding is always a human action in Wise.",
    where=lambda invoice: invoice.status == "open",
    deps=[wise_quotes.key],
)


wise_assets = [wise_recipients, wise_quotes, wise_transfers]
