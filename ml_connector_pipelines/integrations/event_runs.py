"""Inbox -> runs: how every event sensor names the runs it asks for.

A run key names one batch of waiting inbox events, so a sensor tick that sees the same batch again
launches nothing twice. A batch still waiting after its run finished (its postings failed and were
handed back) gets a key of its own, so it is retried without waiting for a new event to arrive.
"""

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from ..core.inbox import InboxEvent

RUN_KEY_TAG = "dagster/run_key"  # the tag Dagster puts on every run a sensor launched
# dagster.yaml allows one run per value of this tag at a time: a tenant's event runs (a webhook batch
# and a polling run, say) never write the same Infor invoice concurrently.
TENANT_EVENTS_TAG = "ml_connector/tenant_events"


def event_run_request(tenant: str, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, partition_key=tenant, tags={TENANT_EVENTS_TAG: tenant})


def batch_run_key(instance: dg.DagsterInstance, tenant: str, pending: Sequence[InboxEvent]) -> str:
    batch = f"{tenant}:{pending[0].id}-{pending[-1].id}:{len(pending)}"
    attempt = 0
    while True:
        key = batch if attempt == 0 else f"{batch}:retry-{attempt}"
        runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: key}), limit=1)
        if not runs or not runs[0].is_finished:
            return key
        attempt += 1


def poll_run_key(tenant: str, now: datetime, every_minutes: int) -> str:
    """One polling run per tenant per interval, even when no webhook arrived at all."""
    bucket = int(now.timestamp() // (every_minutes * 60))
    return f"{tenant}:poll:{bucket}"
