"""Infor <-> Stripe assets (group `stripe`).

Outbound, per tenant x modified date: `stripe_customers` and `stripe_invoices` push what the Infor
extracts hold, through one SyncSession each, with a Stripe `Idempotency-Key` derived from the ledger
on every write. Inbound, per tenant: `infor_ar_payments` turns the Stripe events waiting in the inbox
(webhooks and polled events alike) into Infor AR payment lines, each posted once. Then
`stripe_reconciliation` compares one day of Stripe payments and refunds with what Infor holds.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd

from ...core.errors import ValidationFailed
from ...core.ledger import LedgerEntry
from ...core.state import State
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.infor.models import ARInvoice, ARPayment, Customer, PostedARPayment
from ...systems.stripe.client import StripeGateway
from ...systems.stripe.models import StripeInvoice
from ..kit.push import PushPair, RecordSource
from ..kit.pushers import PushContext
from ..metadata import OWNERS, asset_tags
from ..partitions import TENANT_DAY, tenant_day
from ..resources import InforResource, StateResource, StripeResource
from . import mapping
from .payments import PAYMENT_EVENT_TYPES, PAYMENTS_FLOW, payment_in_event

CUSTOMERS_FLOW = "stripe_customers"
INVOICES_FLOW = "stripe_invoices"

CLOSE_ACTIONS = ("void", "mark_uncollectible")


def _keys(session: SyncSession, source_id: str, digest: str) -> Callable[[str], str]:
    """Idempotency keys for the writes of one record version, one per action."""
    return lambda action: mapping.idempotency_key(session.tenant, session.flow, source_id, digest, action)


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


class CustomerSync:
    """Infor customer -> Stripe customer: the pusher of `stripe_customers`."""

    def __init__(self, session: SyncSession, gateway: StripeGateway) -> None:
        self.session = session
        self.gateway = gateway

    def will_claim(self, customer: Customer) -> bool:
        """Every customer is flagged or synced (see `Pusher`)."""
        return True

    def sync(self, customer: Customer) -> SyncResult:
        return sync_customer(self.session, self.gateway, customer)


# Invoices ----------------------------------------------------------------------------------------


class InvoicePush:
    """AR invoice -> Stripe: open ones are billed, closed ones are closed (the `stripe_invoices` pusher)."""

    def __init__(self, ctx: PushContext) -> None:
        self.session = ctx.session
        self.customers = CustomerSync(ctx.session_for(CUSTOMERS_FLOW), ctx.target)
        self.gateway: StripeGateway = ctx.target
        self.infor = ctx.infor
        self.dependencies = ctx.dependencies
        self.close_action = close_action(ctx.config)

    def sync(self, invoice: ARInvoice) -> SyncResult:
        return self.bill(invoice) if invoice.status == "open" else self.close(invoice)

    def stripe_customer(self, invoice: ARInvoice) -> str:
        """The Stripe id of the invoice's customer. One the ledger does not know (changed on another
        day, so not in this partition's extract) is read from Infor and synced on the spot."""
        customer_id = invoice.customer_id

        def sync_now(entry: LedgerEntry | None) -> None:
            if entry is not None and entry.target_id:
                return  # in Stripe already, from an earlier version: good enough to bill
            customer = self.infor().customer(customer_id)
            if customer is None:
                raise ValidationFailed(
                    invoice.invoice_key, "customer_id", f"customer {customer_id} not found in Infor"
                )
            self.customers.sync(customer)

        entry = self.dependencies.resolve(
            invoice.invoice_key,
            "customer_id",
            CUSTOMERS_FLOW,
            customer_id,
            sync_now,
            "the invoice's Stripe customer",
            usable=lambda found: bool(found.target_id),
        )
        return entry.target_id or ""

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
        digest = content_hash([mapping.invoice_digest(params), item])
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


def _open_gateway(resource: StripeResource, tenant: str) -> StripeGateway:
    return resource.gateway(tenant)


STRIPE = PushPair("stripe", "stripe", open_client=_open_gateway)

stripe_customers = STRIPE.asset(
    CUSTOMERS_FLOW,
    RecordSource("infor_customers", Customer, lambda customer: customer.customer_id),
    lambda ctx: CustomerSync(ctx.session, ctx.target),
    "Infor customers changed on the partition date, created or updated in Stripe.",
)

stripe_invoices = STRIPE.asset(
    INVOICES_FLOW,
    RecordSource("infor_ar_invoices", ARInvoice, lambda invoice: invoice.invoice_key),
    InvoicePush,
    "Infor AR invoices changed on the partition date: open ones billed in Stripe (item + finalized "
    "invoice), closed ones voided or marked uncollectible (`stripe_closed_invoice_action`).",
    reads_infor=True,
    deps=[stripe_customers.key],  # customers of the same day first, so invoices find them in the ledger
)


@dg.asset(
    key_prefix=["stripe"],
    group_name="stripe",
    partitions_def=TENANT_DAY,
    pool="stripe",
    kinds={"stripe", "pandas"},
    tags=asset_tags("stripe", "stripe"),
    owners=OWNERS,
    # Reads what `infor_ar_payments` (partitioned by tenant only) has posted: run after that job.
    check_specs=[
        dg.AssetCheckSpec(
            "stripe_reconciliation_clean",
            asset=dg.AssetKey(["stripe", "stripe_reconciliation"]),
            description="Every Stripe payment and refund of the day is posted once in Infor, same amount.",
        )
    ],
    description="One day of Stripe payments and refunds against the AR postings Infor holds.",
)
def stripe_reconciliation(
    context: dg.AssetExecutionContext,
    state: StateResource,
    infor: InforResource,
    stripe: StripeResource,
) -> Iterator:
    tenant, day = tenant_day(context)
    skip = state.skip_reason(tenant, "stripe")
    if skip:
        context.log.info(f"skipped: {skip}")
        yield dg.Output(
            pd.DataFrame(columns=RECONCILIATION_COLUMNS), metadata={"configured": False, "reason": skip}
        )
        yield dg.AssetCheckResult(
            check_name="stripe_reconciliation_clean", passed=True, description=f"skipped: {skip}"
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
