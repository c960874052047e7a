"""The Infor -> Wise integration's Dagster definitions (resources come from the code location)."""

import dagster as dg

from .assets import wise_assets
from .payout_status import wise_payout_status
from .schedules import wise_payment_cycle_schedule
from .sensors import wise_events_sensor, wise_payout_status_job

defs = dg.Definitions(
    assets=[*wise_assets, wise_payout_status],
    sensors=[wise_events_sensor],
    schedules=[wise_payment_cycle_schedule],
    jobs=[wise_payout_status_job],
)
