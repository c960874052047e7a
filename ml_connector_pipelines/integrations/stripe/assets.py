"""Infor <-> Stripe assets (group `stripe`).

Outbound, per tenant x modified date: `stripe_customers` and `stripe_invoices` push what the Infor
extracts hold, through one SyncSession each, with a Stripe `Idempotency-Key` derived from the ledger
on every write. Inbound, per tenant: `infor_ar_payments` turns the Stripe events waiting in the inbox
(webhooks and polled events alike) into Infor AR payment lines, each posted once. Then
`stripe_reconciliation` compares one day of Stripe payments and refunds with what Infor holds.
"""

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd

from ...core.errors import HttpError, ValidationFailed
from ...core.store import State
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.infor.adapter import InforAdapter
from ...systems.infor.models import ARInvoice, ARPayment, Customer, PostedARPayment
from ...systems.stripe.client import StripeGateway
from ...systems.stripe.models import StripeInvoice
from ..frames import from_frame
from ..metadata import log_counts, log_progress, push_session, sync_metadata, sync_result
from ..partitions import TENANT_DAY, TENANTS, tenant_day
from ..resources import InforResource, StateResource, StripeResource, not_configured
from . import mapping

CUSTOMERS_FLOW = "stripe_customers"
INVOICES_FLOW = "stripe_invoices"
PAYMENTS_FLOW = "infor_ar_payments"
INBOX_SOURCE = "stripe"  # the receiver's `/webhooks/stripe/{tenant}` and the poller both write here

CLOSE_ACTIONS = ("void", "mark_uncollectible")
# Without `ar_dimensions` in the tenant config, cash is posted to the sandbox's first dimension-1
# account (1000 Cash); a real tenant sets its own bank account and cost centre.
DEFAULT_AR_DIMENSIONS = ("1000",)
# The events that carry payments and refunds: what the poller asks for and webhooks should send.
PAYMENT_EVENT_TYPES = (mapping.PAYMENT_EVENT, *sorted(mapping.REFUND_EVENTS))


def _keys(session: SyncSession, source_id: str, digest: str) -> Callable[[str], str]:
    """Idempotency keys for the writes of one record version, one per action."""
    return lambda action: mapping.idempotency_key(session.tenant, session.flow, source_id, digest, action)


def ar_dimensions(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The accounting dimensions (AIT1..AIT7) cash is posted to, from the tenant config."""
    value = config.get("ar_dimensions", DEFAULT_AR_DIMENSIONS)
    valid = isinstance(value, list | tuple) and 1 <= len(value) <= 7
    if not valid or not all(isinstance(code, str) and code for code in value):
        raise dg.Failure(
            "tenant config 'ar_dimensions' must list 1 to 7 accounting dimension codes, e.g. ['1010', '100']"
        )
    return tuple(value)


def close_action(config: Mapping[str, Any]) -> str:
    action = config.get("stripe_closed_invoice_action", "void")
    if action not in CLOSE_ACTIONS:
        raise dg.Failure(f"tenant config 'stripe_closed_invoice_action' must be one of {CLOSE_ACTIONS}")
    return action


# Customers ---------------------------------------------------------------------------------------


def sync_customer(session: SyncSession, gateway: StripeGateway, customer: Customer) -> SyncResult:
    """Create or update the Stripe customer of one Infor customer. The ledger keeps the mapping;
    after a crash the customer is found by the Infor number in its metadata (list API, not search)."""
    source_id = customer.customer_id
    try:
        params = mapping.customer_params(customer, session.tenant)
    except ValidationFailed as exc:
        return session.flag(source_id, exc.reason, field=exc.field)
    digest = content_hash(params)
    key = _keys(session, source_id, digest)

    def lookup() -> str | None:
        found = gateway.find_customer_by_external_id(source_id)
        return found.id if found else None

    def update(stripe_id: str) -> str:
        changed = mapping.customer_params(customer, session.tenant, clear_missing=True)
        return gateway.update_customer(stripe_id, changed, key("update_customer")).id

    return session.sync(
        source_id,
        digest,
        create=lambda: gateway.create_customer(params, key("create_customer")).id,
        lookup=lookup,
        update=update,
    )


# Invoices ----------------------------------------------------------------------------------------


class InvoicePush:
    """Pushes one tenant's AR invoices: open ones are billed, closed ones are closed in Stripe."""

    def __init__(
        self,
        session: SyncSession,
        customer_session: SyncSession,
        gateway: StripeGateway,
        adapter: InforAdapter,
        close_action: str,
    ) -> None:
        self.session = session
        self.customer_session = customer_session
        self.gateway = gateway
        self.adapter = adapter
        self.close_action = close_action

    def push(self, invoice: ARInvoice) -> SyncResult:
        return self.bill(invoice) if invoice.status == "open" else self.close(invoice)

    def stripe_customer(self, invoice: ARInvoice) -> str:
        """The Stripe id of the invoice's customer. One the ledger does not know (changed on another
        day, so not in this partition's extract) is read from Infor and synced on the spot."""
        entry = self.session.ledger.get(self.session.tenant, CUSTOMERS_FLOW, invoice.customer_id)
        if entry is not None and entry.target_id:
            return entry.target_id
        customer = self.adapter.customer(invoice.customer_id)
        if customer is None:
            raise ValidationFailed(
                invoice.invoice_key, "customer_id", f"customer {invoice.customer_id} not found in Infor"
            )
        result = sync_customer(self.customer_session, self.gateway, customer)
        if result.target_id is None:
            raise ValidationFailed(
                invoice.invoice_key,
                "customer_id",
                f"customer {invoice.customer_id} is not in Stripe: {result.reason}",
            )
        return result.target_id

    def bill(self, invoice: ARInvoice) -> SyncResult:
        """Draft invoice, our one item for the open amount, finalized; a changed invoice replaces
        (voids) the one Stripe holds, unless that one is already paid."""
        source_id = invoice.invoice_key
        try:
            customer_id = self.stripe_customer(invoice)
            params = mapping.invoice_params(invoice, customer_id)
            item = mapping.invoice_item_params(invoice, customer_id, "")
        except ValidationFailed as exc:
            return self.session.flag(source_id, exc.reason, field=exc.field)
        digest = content_hash([params, item])
        key = _keys(self.session, source_id, digest)
        gateway = self.gateway

        def create(replacing: str = "") -> str:
            # Every step is keyed: repeating all three replays what Stripe already did. A
            # replacement has a key of its own, so content that changes back to an earlier version
            # is billed anew rather than replayed as the invoice that was voided; the later steps'
            # keys name the draft they act on.
            draft = gateway.create_invoice(params, key(f"create_invoice{replacing}"))
            return finish(draft.id, add_item=True)

        def finish(invoice_id: str, add_item: bool) -> str:
            if add_item:
                item_key = key(f"create_invoice_item_{invoice_id}")
                gateway.create_invoice_item({**item, "invoice": invoice_id}, item_key)
            return gateway.finalize_invoice(invoice_id, key(f"finalize_invoice_{invoice_id}")).id

        def lookup() -> str | None:
            # After a crash: the newest invoice carrying our key, finished if the crash left a draft.
            found = gateway.find_invoice_by_external_id(source_id, customer_id)
            if found is None or found.status == "void":
                return None
            if found.status == "draft":
                return finish(found.id, add_item=not gateway.list_invoice_items(found.id))
            return found.id

        def recreate(old_id: str) -> str:
            old = gateway.retrieve_invoice(old_id)
            if old.status == "paid":
                raise ValidationFailed(
                    source_id,
                    "open_amount",
                    f"already paid in Stripe ({old_id}), yet Infor shows {invoice.open_amount} "
                    f"{invoice.currency} open: check by hand",
                )
            if old.status in ("open", "uncollectible"):
                gateway.void_invoice(old_id, key("void_invoice"))
            return create(f"_replacing_{old_id}")

        return self.session.sync(source_id, digest, create=create, lookup=lookup, recreate=recreate)

    def close(self, invoice: ARInvoice) -> SyncResult:
        """An invoice closed in Infor (paid or cancelled there) is voided or marked uncollectible in
        Stripe, as the tenant configures. Paid in Stripe (our payment closed it) stays paid."""
        source_id = invoice.invoice_key
        entry = self.session.ledger.get(self.session.tenant, INVOICES_FLOW, source_id)
        if entry is None or entry.target_id is None:
            return self.session.note(
                source_id, "skipped", reason=f"{invoice.status} in Infor, never billed in Stripe"
            )
        digest = content_hash({"infor_status": invoice.status, "close_action": self.close_action})
        key = _keys(self.session, source_id, digest)
        stripe_id = entry.target_id

        def close_in_stripe(invoice_id: str) -> str:
            held: StripeInvoice = self.gateway.retrieve_invoice(invoice_id)
            if self.close_action == "void" and held.status in ("open", "uncollectible"):
                self.gateway.void_invoice(invoice_id, key("void_invoice"))
            elif self.close_action == "mark_uncollectible" and held.status == "open":
                self.gateway.mark_uncollectible(invoice_id, key("mark_uncollectible"))
            return invoice_id

        return self.session.sync(
            source_id, digest, create=lambda: close_in_stripe(stripe_id), update=close_in_stripe
        )


# Payments ----------------------------------------------------------------------------------------


def payment_in_event(
    gateway: StripeGateway, event: Mapping[str, Any], dimensions: tuple[str, ...]
) -> ARPayment | None:
    """The AR payment (positive) or refund (negative) a Stripe event reports, or None when the event
    carries nothing to post (another type, a refund not yet succeeded).

    A payment whose Stripe invoice names no Infor invoice is unmatched: ValidationFailed, so it is
    flagged and alerted rather than dropped.
    """
    kind = event.get("type")
    if kind == mapping.PAYMENT_EVENT:
        invoice = (event.get("data") or {}).get("object") or {}
        if not mapping.is_connector_invoice(invoice):
            raise ValidationFailed(
                str(invoice.get("id")),
                "metadata",
                "unmatched payment: no Infor invoice in the Stripe invoice metadata",
            )
        return mapping.payment_from_event(event, dimensions=dimensions)
    if kind in mapping.REFUND_EVENTS:
        refund = mapping.refund_in_event(event)
        if refund is None or refund.get("status") != "succeeded":
            return None
        payment_intent = mapping.refunded_payment_intent(event)
        paid = gateway.find_invoice_for_payment_intent(payment_intent) if payment_intent else None
        if paid is None or not mapping.is_connector_invoice(paid.model_dump()):
            raise ValidationFailed(
                str(refund.get("id")), "payment_intent", "unmatched refund: the payment paid no Infor invoice"
            )
        return mapping.refund_from_event(event, paid.model_dump(), dimensions=dimensions)
    return None


def post_event(
    session: SyncSession,
    gateway: StripeGateway,
    adapter: InforAdapter,
    event: Mapping[str, Any],
    dimensions: tuple[str, ...],
) -> SyncResult | None:
    """Post one event's payment to Infor, once per payment reference however often it arrives
    (the ledger is keyed by it; after a lost answer, ARS040MI is searched by that reference)."""
    try:
        payment = payment_in_event(gateway, event, dimensions)
    except ValidationFailed as exc:
        return session.flag(exc.record_id, exc.reason, field=exc.field)
    if payment is None:
        return None
    return session.sync(
        payment.reference,
        content_hash(payment.model_dump(mode="json")),
        create=lambda: adapter.add_ar_payment(payment),
        lookup=lambda: adapter.find_ar_payment(payment.reference),
        extra={
            "amount": str(payment.amount),
            "currency": payment.currency,
            "payment_date": payment.payment_date.isoformat(),
            "invoice_number": payment.invoice_number,
        },
    )


def process_inbox(
    context: dg.AssetExecutionContext,
    state: State,
    session: SyncSession,
    gateway: StripeGateway,
    adapter: InforAdapter,
    dimensions: tuple[str, ...],
) -> None:
    """Claim the tenant's pending Stripe events and post them. An event is marked processed only
    once its outcome is durable (posted, skipped or flagged); after a failure it is handed back."""
    ended = session.run_finished
    pending = state.inbox.pending(INBOX_SOURCE, session.tenant, run_finished=ended)
    claimed = set(state.inbox.claim([e.id for e in pending], session.run_id, run_finished=ended))
    events = [event for event in pending if event.id in claimed]
    unfinished = [event.id for event in events]
    try:
        for done, event in enumerate(events, start=1):
            try:
                result = post_event(session, gateway, adapter, json.loads(event.payload), dimensions)
            except HttpError as exc:  # Stripe unreachable before the posting: try again next run
                session.note(event.event_id, "failed", reason=str(exc))
                continue
            if result is not None and (result.action == "failed" or result.in_progress):
                continue  # handed back: retried later, also if the run holding it dies
            # A flagged event is kept as a dead letter with its reason; anything else is done.
            error = result.reason if result is not None and result.action == "flagged" else None
            state.inbox.mark_processed([event.id], session.run_id, error=error)
            unfinished.remove(event.id)
            log_progress(context, PAYMENTS_FLOW, done, len(events))
    finally:
        state.inbox.release(unfinished)


# Reconciliation ----------------------------------------------------------------------------------

RECONCILIATION_COLUMNS = [
    "reference",
    "kind",
    "invoice_number",
    "currency",
    "stripe_amount",
    "infor_postings",
    "infor_amount",
    "status",
]
MATCHED = "matched"


def stripe_payments_on(gateway: StripeGateway, day: date) -> dict[str, ARPayment | str]:
    """Stripe's payments and refunds dated `day`, by reference; one that names no Infor invoice
    maps to "unmatched"."""
    start = int(datetime.combine(day, time(0), UTC).timestamp())
    found: dict[str, ARPayment | str] = {}
    for event in gateway.list_events(created_gt=start - 1, types=PAYMENT_EVENT_TYPES):
        try:
            payment = payment_in_event(gateway, event.payload, ())
        except ValidationFailed as exc:
            if datetime.fromtimestamp(event.created, UTC).date() == day:
                found[exc.record_id] = "unmatched"
            continue
        if payment is not None and payment.payment_date == day:
            found[payment.reference] = payment
    return found


def posted_on(state: State, tenant: str, day: date) -> set[str]:
    """The payment references our ledger posted to Infor for payments dated `day`."""
    return {
        entry.source_id
        for entry in state.ledger.entries(tenant, PAYMENTS_FLOW, status="done")
        if entry.extra.get("payment_date") == day.isoformat()
    }


def reconciliation_status(stripe_payment: ARPayment | str | None, postings: Sequence[PostedARPayment]) -> str:
    """How one reference compares, Stripe's side against every line Infor holds for it: matched,
    amount_differs (amount or currency), missing_in_infor, posted_twice (more than one line),
    not_in_stripe (our ledger posted it, Stripe does not show it) or unmatched (no Infor invoice)."""
    if isinstance(stripe_payment, str):
        return stripe_payment  # unmatched: names no Infor invoice, so nothing to compare
    if stripe_payment is None:
        return "not_in_stripe"
    if not postings:
        return "missing_in_infor"
    if len(postings) > 1:
        return "posted_twice"
    [posting] = postings
    same_currency = posting.currency in (None, stripe_payment.currency)
    return MATCHED if posting.amount == stripe_payment.amount and same_currency else "amount_differs"


def reconcile(
    stripe_side: Mapping[str, ARPayment | str],
    posted: Iterable[str],
    infor_postings: Mapping[str, Sequence[PostedARPayment]],
) -> pd.DataFrame:
    """One row per payment reference of the day, from Stripe or from our ledger (`posted`), with
    what Infor holds for it (`infor_postings`, by reference) and its status."""
    rows: list[dict[str, Any]] = []
    for reference in sorted(set(stripe_side) | set(posted)):
        stripe_payment = stripe_side.get(reference)
        postings = infor_postings.get(reference, ())
        row: dict[str, Any] = {
            "reference": reference,
            "kind": None,
            "invoice_number": postings[0].invoice_number if postings else None,
            "currency": postings[0].currency if postings else None,
            "stripe_amount": None,
            "infor_postings": ", ".join(posting.id for posting in postings) or None,
            "infor_amount": sum((posting.amount for posting in postings), Decimal(0)) if postings else None,
            "status": reconciliation_status(stripe_payment, postings),
        }
        if isinstance(stripe_payment, ARPayment):
            row.update(
                kind="refund" if stripe_payment.amount < 0 else "payment",
                invoice_number=stripe_payment.invoice_number,
                currency=stripe_payment.currency,
                stripe_amount=stripe_payment.amount,
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=RECONCILIATION_COLUMNS)


# Assets ------------------------------------------------------------------------------------------


@dg.asset(
    group_name="stripe",
    partitions_def=TENANT_DAY,
    pool="stripe",
    kinds={"stripe"},
    description="Infor customers changed on the partition date, created or updated in Stripe.",
)
def stripe_customers(
    context: dg.AssetExecutionContext,
    infor_customers: pd.DataFrame,
    state: StateResource,
    stripe: StripeResource,
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    if not state.configured(tenant, "stripe"):
        return not_configured(context, tenant, "stripe")
    session = push_session(context, state.state(), tenant, CUSTOMERS_FLOW)
    customers = from_frame(infor_customers, Customer)
    with stripe.gateway(tenant) as gateway:
        for done, customer in enumerate(customers, start=1):
            sync_customer(session, gateway, customer)
            log_progress(context, CUSTOMERS_FLOW, done, len(customers))
        requests = gateway.requests_made
    log_counts(context, CUSTOMERS_FLOW, session)
    return sync_result(session, requests)


@dg.asset(
    group_name="stripe",
    partitions_def=TENANT_DAY,
    pool="stripe",
    kinds={"stripe"},
    deps=[stripe_customers],  # customers of the same day first, so invoices find them in the ledger
    description=(
        "Infor AR invoices changed on the partition date: open ones billed in Stripe (item + "
        "finalized invoice), closed ones voided or marked uncollectible (`stripe_closed_invoice_action`)."
    ),
)
def stripe_invoices(
    context: dg.AssetExecutionContext,
    infor_ar_invoices: pd.DataFrame,
    state: StateResource,
    infor: InforResource,
    stripe: StripeResource,
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    if not state.configured(tenant, "stripe"):
        return not_configured(context, tenant, "stripe")
    store = state.state()
    session = push_session(context, store, tenant, INVOICES_FLOW)
    customer_session = push_session(context, store, tenant, CUSTOMERS_FLOW)
    action = close_action(state.tenant_config(tenant))
    invoices = from_frame(infor_ar_invoices, ARInvoice)
    with stripe.gateway(tenant) as gateway, infor.adapter(tenant) as adapter:
        pusher = InvoicePush(session, customer_session, gateway, adapter, action)
        for done, invoice in enumerate(invoices, start=1):
            try:
                pusher.push(invoice)
            except HttpError as exc:  # Infor unreachable for the customer read: this record only
                session.note(invoice.invoice_key, "failed", reason=str(exc))
            log_progress(context, INVOICES_FLOW, done, len(invoices))
        requests = gateway.requests_made
    log_counts(context, INVOICES_FLOW, session)
    if customer_session.results:
        log_counts(context, f"{CUSTOMERS_FLOW} (on the spot)", customer_session)
    on_the_spot = dg.MetadataValue.int(len(customer_session.results))
    return sync_result(session, requests, customers_synced_on_the_spot=on_the_spot)


@dg.asset(
    group_name="stripe",
    partitions_def=TENANTS,
    pool="infor",
    kinds={"infor"},
    description=(
        "Stripe payments and refunds waiting in the inbox (webhooks and polled events), posted as "
        "ARS040MI payment lines on the matching Infor AR invoice, each exactly once."
    ),
)
def infor_ar_payments(
    context: dg.AssetExecutionContext,
    state: StateResource,
    infor: InforResource,
    stripe: StripeResource,
) -> dg.MaterializeResult:
    tenant = context.partition_key
    if not state.configured(tenant, "stripe"):
        return not_configured(context, tenant, "stripe")
    store = state.state()
    session = push_session(context, store, tenant, PAYMENTS_FLOW)
    dimensions = ar_dimensions(state.tenant_config(tenant))
    with stripe.gateway(tenant) as gateway, infor.adapter(tenant) as adapter:
        process_inbox(context, store, session, gateway, adapter, dimensions)
    log_counts(context, PAYMENTS_FLOW, session)
    return dg.MaterializeResult(metadata=sync_metadata(session))


@dg.asset(
    group_name="stripe",
    partitions_def=TENANT_DAY,
    pool="stripe",
    kinds={"stripe", "pandas"},
    # Reads what `infor_ar_payments` (partitioned by tenant only) has posted: run after that job.
    check_specs=[dg.AssetCheckSpec("stripe_reconciliation_clean", asset="stripe_reconciliation")],
    description="One day of Stripe payments and refunds against the AR postings Infor holds.",
)
def stripe_reconciliation(
    context: dg.AssetExecutionContext,
    state: StateResource,
    infor: InforResource,
    stripe: StripeResource,
) -> Iterator:
    tenant, day = tenant_day(context)
    if not state.configured(tenant, "stripe"):
        context.log.info(f"tenant {tenant} has no stripe credentials: nothing to reconcile")
        yield dg.Output(pd.DataFrame(columns=RECONCILIATION_COLUMNS), metadata={"configured": False})
        yield dg.AssetCheckResult(
            check_name="stripe_reconciliation_clean", passed=True, description="tenant does not use Stripe"
        )
        return
    with stripe.gateway(tenant) as gateway, infor.adapter(tenant) as adapter:
        stripe_side = stripe_payments_on(gateway, day)
        posted = posted_on(state.state(), tenant, day)
        # What Infor itself holds per reference, not what our ledger says we posted.
        infor_postings = {ref: adapter.ar_payments(ref) for ref in sorted(set(stripe_side) | posted)}
    report = reconcile(stripe_side, posted, infor_postings)
    mismatches = report[report["status"] != MATCHED]
    table = report.to_markdown(index=False) if len(report) else "(no payments or refunds on this day)"
    context.log.info(f"stripe_reconciliation: {len(report)} references, {len(mismatches)} mismatched")
    yield dg.Output(
        report,
        metadata={
            "references": dg.MetadataValue.int(len(report)),
            "mismatches": dg.MetadataValue.int(len(mismatches)),
            "report": dg.MetadataValue.md(table),
        },
    )
    yield dg.AssetCheckResult(
        check_name="stripe_reconciliation_clean",
        passed=mismatches.empty,
        description=(
            "every Stripe payment and refund of the day is posted once in Infor, same amount"
            if mismatches.empty
            else "mismatched: "
            + ", ".join(f"{row.reference} ({row.status})" for row in mismatches.itertuples())
        ),
        metadata={"mismatched_references": dg.MetadataValue.json(mismatches["reference"].tolist())},
    )
