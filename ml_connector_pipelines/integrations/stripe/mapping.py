"""Infor <-> Stripe field mapping. Pure functions: no I/O, so every rule is unit-tested on its own.

Outbound: an Infor customer becomes a Stripe customer, an open AR invoice becomes a draft invoice
plus one invoice item for its open amount. The Infor identity of each record goes into Stripe
metadata, which is how a record is found again after a crash and how payments find their way back.
Inbound: `invoice.paid` becomes a positive AR payment, a refund a negative one, both addressed to
the Infor invoice named in the Stripe invoice's metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pycountry

from ml_connector_pipelines.core.errors import ValidationFailed
from ml_connector_pipelines.systems.infor.models import ARInvoice, ARPayment, Customer
from ml_connector_pipelines.systems.stripe.client import CUSTOMER_ID_KEY, INVOICE_KEY_KEY

# Metadata keys (Stripe limits: 40-character keys, 500-character string values). The two the
# client's lookups match on come from the client.
TENANT_KEY = "infor_tenant"
INVOICE_NUMBER_KEY = "infor_invoice_number"
DIVISION_KEY = "infor_division"
INVOICE_YEAR_KEY = "infor_invoice_year"
DUE_DATE_KEY = "infor_due_date"
METADATA_VALUE_LIMIT = 500

# Stripe's minor-unit exponents that differ from 2 (docs.stripe.com/currencies). ISO 4217 is not
# the authority here: Stripe decides how it wants the amount spelled.
ZERO_DECIMAL_CURRENCIES = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL_CURRENCIES = frozenset("BHD JOD KWD OMR TND".split())

# Stripe refuses a due_date that is not in the future ("Invalid timestamp: must be an integer Unix
# timestamp in the future", param due_date; stripe-python#925). A due date closer than this margin (the
# request takes time, and the invoice is finalized after its item is added) counts as passed.
DUE_DATE_MARGIN = timedelta(hours=1)
# Terms for an invoice already overdue in Infor: payable at once, due in Stripe the next day. The Infor
# due date stays in metadata (DUE_DATE_KEY). 1 is the smallest positive number of days [I].
OVERDUE_DAYS_UNTIL_DUE = 1
DEFAULT_DAYS_UNTIL_DUE = 30

PAYMENT_EVENT = "invoice.paid"
# A refund reaches us as the refund itself or as the charge it reduced. Both carry the refund id,
# which is the payment reference, so one refund reported by two events posts once.
REFUND_EVENTS = frozenset({"charge.refunded", "refund.created", "refund.updated", "charge.refund.updated"})


# Amounts -----------------------------------------------------------------------------------------


def currency_exponent(currency: str, record_id: str, field: str = "currency") -> int:
    """Decimal places Stripe expects for this ISO 4217 code; unknown codes fail validation."""
    code = (currency or "").upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise ValidationFailed(record_id, field, f"unknown currency {currency!r}")
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str, record_id: str, field: str) -> int:
    """Decimal amount -> Stripe integer. Refuses amounts that would need rounding: money is not
    rounded silently (e.g. JPY 10.50, or USD 1.005)."""
    exponent = currency_exponent(currency, record_id)
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(record_id, field, f"{amount} has more than {exponent} decimals for {currency}")
    minor = int(scaled)
    # Stripe takes three-decimal currencies in thousandths but only in steps of ten.
    if exponent == 3 and minor % 10:
        raise ValidationFailed(record_id, field, f"{amount} {currency} must be a multiple of 0.010")
    return minor


def from_minor_units(amount: int, currency: str, record_id: str) -> Decimal:
    return Decimal(amount).scaleb(-currency_exponent(currency, record_id))


# Idempotency -------------------------------------------------------------------------------------


def idempotency_key(tenant: str, flow: str, source_id: str, content_hash: str | None, action: str) -> str:
    """Stripe `Idempotency-Key` for one write, stable across runs for the same record version.

    Same inputs -> same key, so a retry in a later run replays Stripe's stored answer. A changed
    record has a new content hash and so a new key (reusing a key with other parameters is an
    error at Stripe). Hashed so that no customer data travels in a header; well under 255 chars.
    """
    canonical = json.dumps([tenant, flow, source_id, content_hash or "", action], separators=(",", ":"))
    return f"mlc-{action[:40]}-{hashlib.sha256(canonical.encode()).hexdigest()}"


# Outbound ----------------------------------------------------------------------------------------


def _metadata_value(value: str, record_id: str, field: str) -> str:
    if len(value) > METADATA_VALUE_LIMIT:
        raise ValidationFailed(
            record_id, field, f"longer than Stripe's {METADATA_VALUE_LIMIT}-character limit"
        )
    return value


def customer_params(customer: Customer, tenant: str, *, clear_missing: bool = False) -> dict[str, Any]:
    """Create/update parameters for a Stripe customer.

    `clear_missing=True` (for updates) sends "" for fields Infor no longer has, which Stripe reads
    as "unset"; otherwise such fields are left out and keep whatever Stripe holds.
    """
    record_id = customer.customer_id
    unset = "" if clear_missing else None
    if customer.country is not None and pycountry.countries.get(alpha_2=customer.country.upper()) is None:
        raise ValidationFailed(record_id, "country", f"unknown ISO 3166 country {customer.country!r}")
    address_fields = {
        "line1": customer.address_line,
        "city": customer.city,
        "postal_code": customer.post_code,
        "country": customer.country.upper() if customer.country else None,
    }
    address: dict[str, str] | str | None
    if any(address_fields.values()):
        address = {k: v for k, v in address_fields.items() if v}
    else:
        address = unset
    params: dict[str, Any] = {
        "name": customer.name,
        "email": customer.email or unset,
        "address": address,
        "metadata": {
            CUSTOMER_ID_KEY: _metadata_value(record_id, record_id, "customer_id"),
            TENANT_KEY: _metadata_value(tenant, record_id, "tenant"),
        },
    }
    return {k: v for k, v in params.items() if v is not None}


def _invoice_metadata(invoice: ARInvoice) -> dict[str, str]:
    record_id = invoice.invoice_key
    metadata = {
        INVOICE_KEY_KEY: _metadata_value(invoice.invoice_key, record_id, "invoice_key"),
        INVOICE_NUMBER_KEY: invoice.invoice_number,
        DIVISION_KEY: invoice.division,
        CUSTOMER_ID_KEY: invoice.customer_id,
        INVOICE_YEAR_KEY: str(invoice.invoice_year),
    }
    return metadata


def _billable_amount(invoice: ARInvoice) -> int:
    """What Stripe collects: the invoice's open amount, in minor units."""
    record_id = invoice.invoice_key
    if invoice.status != "open":
        raise ValidationFailed(
            record_id, "status", f"only open invoices are billed in Stripe, not {invoice.status}"
        )
    if invoice.open_amount <= 0:
        raise ValidationFailed(record_id, "open_amount", f"must be positive, got {invoice.open_amount}")
    return to_minor_units(invoice.open_amount, invoice.currency, record_id, "open_amount")


def invoice_params(
    invoice: ARInvoice, stripe_customer_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Draft invoice, sent for payment (not charged automatically), due when Infor says it is due.

    `pending_invoice_items_behavior="exclude"`: stray pending items of the customer (created by
    hand, or by an earlier crashed run) must never be billed on this invoice; ours is attached
    explicitly with `invoice_item_params`. `auto_advance=False`: we finalize when the item is on.
    Stripe takes no due date in the past, so an invoice already overdue in Infor (at `now`, default
    the current time) is sent with `days_until_due=OVERDUE_DAYS_UNTIL_DUE` instead; its Infor due date
    is always in the metadata.
    """
    _billable_amount(invoice)  # validate before anything is created
    params: dict[str, Any] = {
        "customer": stripe_customer_id,
        "currency": invoice.currency.lower(),
        "collection_method": "send_invoice",
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "description": f"Invoice {invoice.invoice_number} ({invoice.invoice_year})",
        "metadata": _invoice_metadata(invoice),
    }
    if invoice.due_date is None:
        params["days_until_due"] = DEFAULT_DAYS_UNTIL_DUE
        return params
    params["metadata"][DUE_DATE_KEY] = invoice.due_date.isoformat()
    due = _end_of_day(invoice.due_date)
    if due > (now or datetime.now(UTC)) + DUE_DATE_MARGIN:
        params["due_date"] = int(due.timestamp())
    else:
        params["days_until_due"] = OVERDUE_DAYS_UNTIL_DUE
    return params


def _end_of_day(day: date) -> datetime:
    # End of the due day in UTC, so the invoice is not overdue on its own due date.
    return datetime.combine(day, time(23, 59, 59), UTC)


def invoice_digest(params: dict[str, Any]) -> dict[str, Any]:
    """The invoice parameters as they were before overdue invoices got terms: always the Infor due
    date, never the clock. Which terms are sent depends on the day of the call (an invoice becomes
    overdue), so a digest of them would void and re-send an invoice when its partition is replayed
    after the due date; this one stays the same, and is the digest such invoices already have."""
    metadata = dict(params["metadata"])
    due = metadata.pop(DUE_DATE_KEY, None)
    stable = {**params, "metadata": metadata}
    if due is not None:
        stable.pop("days_until_due", None)
        stable["due_date"] = int(_end_of_day(date.fromisoformat(due)).timestamp())
    return stable


def invoice_item_params(
    invoice: ARInvoice, stripe_customer_id: str, stripe_invoice_id: str
) -> dict[str, Any]:
    """The single line of the Stripe invoice: the Infor invoice's open amount."""
    return {
        "customer": stripe_customer_id,
        "invoice": stripe_invoice_id,
        "amount": _billable_amount(invoice),
        "currency": invoice.currency.lower(),
        "description": f"Invoice {invoice.invoice_number} of {invoice.invoice_date.isoformat()}",
        "metadata": _invoice_metadata(invoice),
    }


# Inbound -----------------------------------------------------------------------------------------


def _event_object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, Mapping):
        raise ValidationFailed(str(event.get("id")), "data.object", "event has no object")
    return obj


def _utc_date(timestamp: int | None, fallback: int) -> date:
    return datetime.fromtimestamp(timestamp or fallback, UTC).date()


def _ar_payment(
    invoice_metadata: Mapping[str, str],
    *,
    record_id: str,
    amount: Decimal,
    currency: str,
    payment_date: date,
    reference: str,
    dimensions: tuple[str, ...],
) -> ARPayment:
    missing = [
        key
        for key in (DIVISION_KEY, CUSTOMER_ID_KEY, INVOICE_NUMBER_KEY, INVOICE_YEAR_KEY)
        if not invoice_metadata.get(key)
    ]
    if missing:
        raise ValidationFailed(record_id, "metadata", f"Stripe invoice lacks {', '.join(missing)}")
    try:
        year = int(invoice_metadata[INVOICE_YEAR_KEY])
    except ValueError:
        raise ValidationFailed(record_id, INVOICE_YEAR_KEY, "not a year") from None
    return ARPayment(
        division=invoice_metadata[DIVISION_KEY],
        customer_id=invoice_metadata[CUSTOMER_ID_KEY],
        invoice_number=invoice_metadata[INVOICE_NUMBER_KEY],
        invoice_year=year,
        amount=amount,
        currency=currency.upper(),
        payment_date=payment_date,
        reference=reference,
        dimensions=dimensions,
    )


def is_connector_invoice(invoice: Mapping[str, Any]) -> bool:
    """True for invoices this connector created (they carry the Infor invoice key)."""
    return bool((invoice.get("metadata") or {}).get(INVOICE_KEY_KEY))


def payment_from_event(event: Mapping[str, Any], *, dimensions: tuple[str, ...] = ()) -> ARPayment | None:
    """`invoice.paid` -> a positive AR payment on the Infor invoice. None for other events and for
    invoices the connector did not create (made by hand in Stripe: nothing to apply them to)."""
    if event.get("type") != PAYMENT_EVENT:
        return None
    invoice = _event_object(event)
    if not is_connector_invoice(invoice):
        return None
    record_id = str(invoice["metadata"][INVOICE_KEY_KEY])
    currency = str(invoice.get("currency") or "")
    # Money recorded as paid outside Stripe (paid out of band) is already known where it was paid.
    amount_paid = int(invoice.get("amount_paid") or 0) - int(invoice.get("amount_paid_off_stripe") or 0)
    if amount_paid <= 0:
        raise ValidationFailed(
            record_id, "amount_paid", "invoice.paid without any amount paid through Stripe"
        )
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    return _ar_payment(
        invoice["metadata"],
        record_id=record_id,
        amount=from_minor_units(amount_paid, currency, record_id),
        currency=currency,
        payment_date=_utc_date(paid_at, int(event["created"])),
        # An invoice is paid once (`paid` is final), so its id names the payment for good.
        reference=str(invoice["id"]),
        dimensions=dimensions,
    )


def refund_in_event(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The refund an event reports: the object itself, or the newest refund in a charge snapshot."""
    obj = _event_object(event)
    if obj.get("object") == "refund":
        return obj
    refunds = (obj.get("refunds") or {}).get("data") or []
    return max(refunds, key=lambda refund: refund.get("created") or 0, default=None)


def refunded_payment_intent(event: Mapping[str, Any]) -> str | None:
    """The PaymentIntent a refund event reverses: what the caller resolves to a Stripe invoice."""
    if event.get("type") not in REFUND_EVENTS:
        return None
    refund = refund_in_event(event)
    payment_intent = (refund or {}).get("payment_intent") or _event_object(event).get("payment_intent")
    return payment_intent if isinstance(payment_intent, str) else None


def refund_from_event(
    event: Mapping[str, Any], invoice: Mapping[str, Any], *, dimensions: tuple[str, ...] = ()
) -> ARPayment | None:
    """A succeeded refund -> a negative AR payment on the Infor invoice that `invoice` (the Stripe
    invoice the refunded payment paid, resolved by the caller) was created for.

    None for other events, refunds not yet succeeded (a later `refund.updated` brings them) and
    invoices the connector did not create.
    """
    if event.get("type") not in REFUND_EVENTS or not is_connector_invoice(invoice):
        return None
    refund = refund_in_event(event)
    if refund is None or refund.get("status") != "succeeded":
        return None
    record_id = str(refund.get("id"))
    currency = str(refund.get("currency") or "")
    amount = int(refund.get("amount") or 0)
    if amount <= 0:
        raise ValidationFailed(record_id, "amount", f"refund amount must be positive, got {amount}")
    return _ar_payment(
        invoice["metadata"],
        record_id=record_id,
        amount=-from_minor_units(amount, currency, record_id),
        currency=currency,
        payment_date=_utc_date(refund.get("created"), int(event["created"])),
        reference=record_id,
        dimensions=dimensions,
    )
