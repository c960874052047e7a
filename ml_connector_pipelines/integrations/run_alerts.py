"""A failed run is an alert: `failed_run_alert` sends it through `core/alerts.py` (log, audit row and
ML_CONNECTOR_ALERT_WEBHOOK), naming the tenant, the job and Dagster's failure message."""

from __future__ import annotations

import dagster as dg

from .resources import StateResource

PARTITION_TAG = "dagster/partition"


def run_tenant(run: dg.DagsterRun) -> str:
    """The tenant a run worked for: the tenant of its partition (`date|tenant` or `tenant`), else "-"."""
    tags = run.tags or {}
    if "dagster/partition/tenant" in tags:
        return tags["dagster/partition/tenant"]
    key = tags.get(PARTITION_TAG, "")
    return key.rsplit("|", 1)[-1] if key else "-"


@dg.run_failure_sensor(
    name="failed_run_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (log, audit trail, ML_CONNECTOR_ALERT_WEBHOOK) on every failed run of the code "
    "location, naming the tenant, the job and the failure.",
)
def failed_run_alert(context: dg.RunFailureSensorContext, state: StateResource) -> None:
    run = context.dagster_run
    reason = f"run {run.run_id} of {run.job_name} failed: {context.failure_event.message or 'no message'}"
    state.state().alerts.alert(run_tenant(run), run.job_name, run.run_id, reason, run_id=run.run_id)
