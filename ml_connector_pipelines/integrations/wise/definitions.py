"""The Infor -> Wise integration's Dagster definitions (resources come from the code location)."""

import dagster as dg

from ..kit.schedules import pair_job
from .assets import wise_assets
from .payout_status import wise_payout_status
from .schedules import JOB_NAME, wise_payment_cycle_schedule
from .sensors import wise_events_sensor, wise_payout_status_job

wise_payouts_job = pair_job(
    JOB_NAME,
    wise_assets,
    "Extract one tenant-day's suppliers and AP invoices from Infor and push them to Wise.",
)

defs = dg.Definitions(
    assets=[*wise_assets, wise_payout_status],
    sensors=[wise_events_sensor],
    schedules=[wise_payment_cycle_schedule],
    jobs=[wise_payouts_job, wise_payout_status_job],
)
