"""The Infor -> Cin7 Core integration's Dagster definitions (resources come from the code location)."""

import dagster as dg

from ..kit.schedules import pair_job
from .assets import cin7_assets
from .schedules import JOB_NAME, cin7_accounting_schedule

cin7_accounting_job = pair_job(
    JOB_NAME,
    cin7_assets,
    "Extract one tenant-day's suppliers, purchase orders, AP invoices and GL accounts from Infor and "
    "push them to Cin7 Core.",
)

defs = dg.Definitions(assets=cin7_assets, schedules=[cin7_accounting_schedule], jobs=[cin7_accounting_job])
