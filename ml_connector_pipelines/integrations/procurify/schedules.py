"""The procurement calendar: each tenant's `procurement_cron` (tenant config, default weekdays 07:00
UTC [I]) decides when its `procurify_procurement` runs happen, covering every modified date since
its previous cycle (`kit/schedules.py`). Procurify has no webhooks, so this schedule is the trigger."""

from ..kit.schedules import tenant_cycle_schedule

DEFAULT_PROCUREMENT_CRON = "0 7 * * 1-5"
JOB_NAME = "procurify_procurement"

procurify_procurement_schedule = tenant_cycle_schedule(
    name="procurify_procurement_schedule",
    job_name=JOB_NAME,
    config_key="procurement_cron",
    default_cron=DEFAULT_PROCUREMENT_CRON,
    description="For each tenant whose procurement_cron is due: procurify_procurement runs for each "
    "day since its last cycle (tenants without Procurify are skipped by the assets, with the reason).",
)
