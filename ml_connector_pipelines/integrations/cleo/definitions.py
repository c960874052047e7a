"""The Infor <-> Cleo integration's Dagster definitions: job `cleo_edi` on the tenant's procurement
cycle, the mailbox sensor and the inbox-driven job that turns stored files into their effect."""

import dagster as dg

from ..kit.schedules import pair_job, tenant_cycle_schedule
from ..kit.sensors import inbox_job, inbox_sensor
from .assets import INBOUND, cleo_assets, cleo_inbound_edi, poll_mailboxes

JOB_NAME = "cleo_edi"
DEFAULT_PROCUREMENT_CRON = "0 5 * * 1-5"  # weekdays 05:00 UTC; tenant config `procurement_cron`

cleo_edi_job = pair_job(
    JOB_NAME,
    cleo_assets,
    "Extract one tenant-day's POs, AR invoices and suppliers from Infor; send 850s and 810s to Cleo.",
)

cleo_procurement_cycle_schedule = tenant_cycle_schedule(
    name="cleo_procurement_cycle_schedule",
    job_name=JOB_NAME,
    config_key="procurement_cron",
    default_cron=DEFAULT_PROCUREMENT_CRON,
    description="For each tenant whose procurement_cron is due: cleo_edi runs for each day since its "
    "last cycle.",
)

cleo_inbound_job = inbox_job(
    INBOUND,
    cleo_inbound_edi,
    "Turn the Cleo files waiting in one tenant's inbox into Infor AP invoices and 997s.",
)

cleo_mailbox_sensor = inbox_sensor(
    name="cleo_mailbox_sensor",
    flow=INBOUND,
    job=cleo_inbound_job,
    system="cleo",
    collect=poll_mailboxes,
    minimum_interval_seconds=120,
    description="Polls every trading partner's download folder: each file is stored in the inbox, then "
    "deleted in Cleo; starts a cleo_inbound_job run per tenant with files waiting.",
)

defs = dg.Definitions(
    assets=[*cleo_assets, cleo_inbound_edi],
    sensors=[cleo_mailbox_sensor],
    schedules=[cleo_procurement_cycle_schedule],
    jobs=[cleo_edi_job, cleo_inbound_job],
)
