"""The Wise payment cycle: each tenant's `payment_cron` (tenant config, default Tuesday and Friday
06:00 UTC) decides when its `wise_payouts` runs happen, covering every modified date since its
previous cycle (see `kit/schedules.py`)."""

from ..kit.schedules import tenant_cycle_schedule

DEFAULT_PAYMENT_CRON = "0 6 * * 2,5"
JOB_NAME = "wise_payouts"

wise_payment_cycle_schedule = tenant_cycle_schedule(
    name="wise_payment_cycle_schedule",
    job_name=JOB_NAME,
    config_key="payment_cron",
    default_cron=DEFAULT_PAYMENT_CRON,
    description="For each tenant whose payment_cron is due: wise_payouts runs for each day since its "
    "last cycle.",
)
