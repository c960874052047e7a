"""The Procurify -> Infor integration's Dagster definitions (resources come from the code location)."""

import dagster as dg

from ..kit.schedules import pair_job
from .assets import procurify_assets
from .schedules import JOB_NAME, procurify_procurement_schedule

procurify_procurement_job = pair_job(
    JOB_NAME,
    procurify_assets,
    "Extract one tenant-day of Procurify POs and bills, align reference data with Infor, and push "
    "approved POs and bills into Infor.",
)

defs = dg.Definitions(
    assets=procurify_assets, schedules=[procurify_procurement_schedule], jobs=[procurify_procurement_job]
)
