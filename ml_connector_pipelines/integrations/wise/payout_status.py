"""Wise -> Infor: `wise_payout_status` (partitioned by tenant) writes Wise transfer states (webhook inbox
+ transfer-list polling) to the Infor invoice's extension record.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from ...core.errors import TargetRejected
from ...core.inbox import InboxEvent
from ...core.ledger import Ledger
from ...core.sync import SyncResult, SyncSession
from ...systems.infor.adapter import InforAdapter
from ...systems.infor.models import InvoiceExtension
from ...systems.wise.client import WiseClient
from ...systems.wise.models import Transfer
from ..kit.inbox import InboxFlow, inbox_batch
from ..kit.push import record_check_specs, record_checks, skipped_result
from ..metadata import OWNERS, asset_tags, log_counts, push_session, sync_result
from ..partitions import TENANTS
from ..resources import InforResource, StateResource, WiseResource
from .assets import QUOTES, TRANSFERS
from .mapping import payout_status_for

PAYOUT_STATUS = "wise_payout_status"
INBOX_SOURCE = "wise"
POLL_CURSOR = "wise_transfers_created_since"
# First poll of a tenant: how far back to look for transfers (unfunded ones are cancelled after 14 days).
FIRST_POLL_LOOKBACK = timedelta(days=30)
# Transfers in these states need no more polling; a later bounce still arrives by webhook.
SETTLED_STATES = frozenset({"outgoing_payment_sent", "cancelled", "funds_refunded", "charged_back"})
PAYOUT_STATUS_FLOW = InboxFlow(PAYOUT_STATUS, INBOX_SOURCE, job="wise_payout_status_job", asset=PAYOUT_STATUS)


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
    owners=OWNERS,
    tags=asset_tags("wise", "infor"),
    check_specs=record_check_specs(PAYOUT_STATUS, PAYOUT_STATUS, "infor"),
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
    skipped = skipped_result(context, state, tenant, "wise", PAYOUT_STATUS)
    if skipped is not None:
        return skipped
    store = state.state()
    session = push_session(context, store, tenant, PAYOUT_STATUS)
    # Clients first: missing credentials fail the run before any inbox row is claimed.
    with wise.client(tenant) as client, infor.adapter(tenant) as adapter:
        with inbox_batch(store, INBOX_SOURCE, session) as batch:
            observed: list[ObservedState] = []
            for event in batch.events:
                parsed = parse_state_change(event)
                if parsed is None:
                    # Kept as a dead letter with the reason.
                    batch.done(event, error="not a transfer state change")
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
                reason = f"polling failed: {type(exc).__name__}: {exc}"
                session.note("transfer list", "failed", reason=reason)
                context.log.error(f"{PAYOUT_STATUS}: Wise transfer {reason}")
            index = InvoiceIndex.load(store.ledger, tenant)
            writer = PayoutStatusWriter(session, client, adapter, index)
            writer.transfers.update({t.id: t for t in polled})
            observed += [ObservedState(t.id, t.status, polled_at) for t in polled]
            # Oldest first, so a late "processing" never lands after "outgoing_payment_sent".
            for seen in sorted(observed, key=lambda s: (s.occurred_at, s.inbox_id is None)):
                try:
                    result = writer.apply(seen)
                except Exception as exc:  # one invoice's write failing never stops the others
                    reason = f"{type(exc).__name__}: {exc}"
                    session.note(f"transfer {seen.transfer_id}", "failed", reason=reason)
                    continue  # its event is handed back when the batch closes
                if seen.inbox_id is not None:
                    # Only now is the status durable in Infor (or deliberately not written).
                    batch.settle(seen.inbox_id, result)
        requests = client.requests_made + adapter.requests_made
    if not session.counts["failed"]:
        ours = [t for t in polled if index.invoice_for(t) is not None]
        store.cursors.set(tenant, POLL_CURSOR, next_poll_cursor(polled, ours, since).isoformat())
    log_counts(context, PAYOUT_STATUS, session)
    # A failed record (the transfer list unreachable, a write that failed) fails the blocking check,
    # so the run ends failed (red, and alerted by the run-failure sensor). What could be written
    # was, and the failed events are back in the inbox: the next run retries them.
    return dg.MaterializeResult(
        metadata=sync_result(session, requests).metadata, check_results=record_checks(PAYOUT_STATUS, session)
    )
