"""Infor <-> Stripe: customers and AR invoices out, payments and refunds back, daily reconciliation."""

import dagster as dg

from ..kit.schedules import pair_job
from .assets import stripe_customers, stripe_invoices, stripe_reconciliation
from .payments import infor_ar_payments
from .schedules import JOB_NAME, stripe_billing_schedule
from .sensors import stripe_ar_payments_job, stripe_events_sensor

stripe_billing_job = pair_job(
    JOB_NAME,
    [stripe_customers, stripe_invoices, stripe_reconciliation],
    "Extract one tenant-day's customers and AR invoices from Infor, bill them in Stripe, reconcile the day.",
)

defs = dg.Definitions(
    assets=[stripe_customers, stripe_invoices, infor_ar_payments, stripe_reconciliation],
    sensors=[stripe_events_sensor],
    schedules=[stripe_billing_schedule],
    jobs=[stripe_billing_job, stripe_ar_payments_job],
)
