"""Infor <-> Stripe: customers and AR invoices out, payments and refunds back, daily reconciliation."""

import dagster as dg

from .assets import stripe_customers, stripe_invoices, stripe_reconciliation
from .payments import infor_ar_payments
from .sensors import stripe_ar_payments_job, stripe_events_sensor

defs = dg.Definitions(
    assets=[stripe_customers, stripe_invoices, infor_ar_payments, stripe_reconciliation],
    sensors=[stripe_events_sensor],
    jobs=[stripe_ar_payments_job],
)
