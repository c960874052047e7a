"""The inbox-sensor factory: one sensor shape for every event source (Wise webhooks, Stripe events,
Cleo files next).

Each tick, for every tenant (the Dagster partitions) that has credentials for the flow's system:
1. `collect(tenant, state, client)`, if given, pulls new events into the inbox (Stripe's event poll,
   a Cleo folder listing) with the system's client; a failure is logged and the other tenants go on;
   the tick then fails (red in the UI) naming the tenants whose source was unreachable, unless it
   has runs to request for other tenants (those go first; the next tick fails once they ran);
2. a tenant with events waiting gets a run for that batch (`batch_run_key`: one run per batch);
3. with `poll_minutes`, a tenant with nothing waiting still gets one run per interval, for a flow
   whose asset polls the source itself (Wise's transfer list catches missed webhooks).
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ...core.state import State
from ..event_runs import batch_run_key, event_run_request, poll_run_key
from ..partitions import TENANTS
from ..resources import StateResource
from ..runs import run_finished_checker
from ..tenancy import open_client
from .inbox import INBOX_FLOW_TAG, INBOX_SOURCE_TAG, InboxFlow

Collect = Callable[[str, State, Any], int]  # (tenant, state, client) -> events newly stored


class CollectFailed(Exception):
    """A source could not be polled: raised so the sensor tick fails and shows red."""


def inbox_job(flow: InboxFlow, asset: dg.AssetsDefinition, description: str) -> Any:
    # The tags name the flow on the job (and its runs), so `ml-connector replay` finds it.
    tags = {INBOX_FLOW_TAG: flow.flow, INBOX_SOURCE_TAG: flow.source}
    return dg.define_asset_job(flow.job, selection=[asset], description=description, tags=tags)


def inbox_sensor(
    *,
    name: str,
    flow: InboxFlow,
    job: Any,
    system: str,
    description: str,
    collect: Collect | None = None,
    poll_minutes: int | None = None,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def _sensor(context: dg.SensorEvaluationContext, state: StateResource) -> dg.SensorResult:
        store = state.state()
        now = datetime.now(UTC)
        requests: list[dg.RunRequest] = []
        unreachable: dict[str, str] = {}
        ended = run_finished_checker(context.instance)  # events held by a dead run count as waiting
        for tenant in sorted(context.instance.get_dynamic_partitions(TENANTS.name)):
            skip = state.skip_reason(tenant, system)
            if skip:
                if state.skip_reason(tenant) is not None:  # not the tenant's system: nothing to say
                    context.log.info(f"skipped: {skip}")
                continue  # a paused tenant's events stay in the inbox until it resumes
            if collect is not None:
                try:
                    with open_client(state.connector(), tenant, system) as client:
                        stored = collect(tenant, store, client)
                    if stored:
                        context.log.info(f"{tenant}: {stored} new {flow.source} events collected")
                except Exception as exc:  # one tenant's trouble must not stop the others
                    unreachable[tenant] = f"{type(exc).__name__}: {exc}"
                    context.log.error(f"{tenant}: collecting {flow.source} events failed: {exc}")
            pending = store.inbox.pending(flow.source, tenant, run_finished=ended)
            if pending:
                requests.append(event_run_request(tenant, batch_run_key(context.instance, tenant, pending)))
            elif poll_minutes:
                requests.append(event_run_request(tenant, poll_run_key(tenant, now, poll_minutes)))
        if unreachable and not requests:
            raise CollectFailed(
                f"collecting {flow.source} events failed for "
                + "; ".join(f"{tenant}: {why}" for tenant, why in unreachable.items())
            )
        return dg.SensorResult(run_requests=requests)

    return _sensor
