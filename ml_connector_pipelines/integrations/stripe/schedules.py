"""The Stripe billing cycle: each tenant's `stripe_billing_cron` (tenant config, default daily 05:00 UTC)
decides when its `stripe_billing` runs happen, covering every modified date since its previous cycle
(see `kit/schedules.py`)."""

from ..kit.schedules import tenant_cycle_schedule

DEFAULT_BILLING_CRON = "0 5 * * *"
JOB_NAME = "stripe_billing"

stripe_billing_schedule = tenant_cycle_schedule(
    name="stripe_billing_schedule",
    job_name=JOB_NAME,
    config_key="stripe_billing_cron",
    default_cron=DEFAULT_BILLING_CRON,
    description="For each tenant whose stripe_billing_cron is due: stripe_billing runs for each day "
    "since its last cycle.",
)
