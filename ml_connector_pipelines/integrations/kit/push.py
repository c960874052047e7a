"""The push factory: one `PushSpec` per flow, one builder for the Dagster asset and its checks.

The builder owns the skeleton every push asset shares: the tenant of the partition, skip (with the
reason) when the tenant does not use the target, the flow's SyncSession, records from the upstream
frame, the target client opened and closed, the records pushed by a bounded pool of workers
(`pushers.push_all`, sized from the client's declared concurrency; the client's rate limit is the
shared token bucket), progress in the run log, counts, metadata and requests used. The pair
supplies only its pusher.

Every push asset gets two checks:
- `<flow>_no_failed_records` (ERROR, blocking): a record that failed for a transient reason fails
  the check, so the run ends failed and a backfill of failed partitions retries it. The
  materialization and its metadata are recorded first; assets downstream in the same run wait.
- `<flow>_no_flagged_records` (WARN): records that need a person, with the target's words.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dagster as dg
import pandas as pd
from pydantic import BaseModel

from ...core.sync import SyncResult, SyncSession
from ..frames import from_frame
from ..metadata import LOG_EVERY, log_counts, push_session, sync_metadata
from ..partitions import TENANT_DAY, tenant_day
from ..resources import not_configured
from .dependencies import Dependencies
from .pushers import PushContext, Pusher, push_all

M = TypeVar("M", bound=BaseModel)
# Tenant config `push_time_budget_seconds`: no record of a push starts after this long (pushers.py).
DEFAULT_TIME_BUDGET_SECONDS = 3600.0
CHECK_SAMPLE = 100  # offending records listed in a check's metadata
# Every flow built by `build_push_asset`, by name: what the write preview (`kit/plan.py`) walks.
PUSH_SPECS: dict[str, "PushSpec[Any]"] = {}


def _open_client(resource: Any, tenant: str) -> Any:
    return resource.client(tenant)


@dataclass(frozen=True)
class RecordSource(Generic[M]):
    """Where a flow's records come from: an upstream asset's frame, its model and record id."""

    asset: str | dg.AssetKey
    model: type[M]
    record_id: Callable[[M], str]


@dataclass(frozen=True)
class PushSpec(Generic[M]):
    """One push flow. `name` is the flow name in the ledger and audit and the asset's name; the
    asset key is `[pair, name]` and its group `pair`."""

    name: str
    pair: str
    target: str  # the target system: resource key, Dagster pool and kind
    records: RecordSource[M]
    pusher: Callable[[PushContext], Pusher[M]]
    description: str
    deps: Sequence[str | dg.AssetKey] = ()
    reads_infor: bool = False  # opens the tenant's Infor adapter when a pusher asks for it
    # How to open the target client from its resource; most resources have `client(tenant)`.
    open_client: Callable[[Any, str], Any] = _open_client
    max_workers: int | None = None  # default: the client's declared max_concurrency
    where: Callable[[M], bool] | None = None  # only these records are the flow's business

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.pair, self.name])

    @property
    def failed_check(self) -> str:
        return f"{self.name}_no_failed_records"

    @property
    def flagged_check(self) -> str:
        return f"{self.name}_no_flagged_records"


@dataclass(frozen=True)
class PushPair:
    """What every push asset of one pair shares: the pair's name, its target, how to open the client.

    WISE = PushPair("wise", "wise")
    wise_recipients = WISE.asset(RECIPIENTS, SUPPLIERS, RecipientSync.of, "Suppliers as ...")
    """

    pair: str
    target: str
    open_client: Callable[[Any, str], Any] = _open_client

    def asset(
        self,
        name: str,
        records: RecordSource[Any],
        pusher: Callable[[PushContext], Pusher[Any]],
        description: str,
        **options: Any,
    ) -> dg.AssetsDefinition:
        """`build_push_asset` for one flow of this pair; `options` are the other PushSpec fields."""
        spec = PushSpec(
            name=name,
            pair=self.pair,
            target=self.target,
            records=records,
            pusher=pusher,
            description=description,
            open_client=self.open_client,
            **options,
        )
        return build_push_asset(spec)


def build_push_asset(spec: PushSpec[Any]) -> dg.AssetsDefinition:
    """The Dagster asset (tenant x day, pool = target system) and its two checks for one flow."""
    PUSH_SPECS[spec.name] = spec
    resource_keys = {"state", spec.target} | ({"infor"} if spec.reads_infor else set())
    source = spec.records.asset
    upstream = source if isinstance(source, dg.AssetKey) else dg.AssetKey(source)

    @dg.asset(
        name=spec.name,
        key_prefix=[spec.pair],
        group_name=spec.pair,
        partitions_def=TENANT_DAY,
        pool=spec.target,
        kinds={spec.target},
        tags={"pair": spec.pair, "system": spec.target},
        ins={"records": dg.AssetIn(key=upstream)},
        deps=[dg.AssetKey(d) if isinstance(d, str) else d for d in spec.deps],
        required_resource_keys=resource_keys,
        check_specs=[
            dg.AssetCheckSpec(
                spec.failed_check,
                asset=spec.key,
                blocking=True,
                description=f"No {spec.name} record failed (transient errors: 429s, timeouts, "
                "dependencies in progress). Rerun the partition to retry them.",
            ),
            dg.AssetCheckSpec(
                spec.flagged_check,
                asset=spec.key,
                description=f"No {spec.name} record was flagged: a flagged record was refused by "
                f"{spec.target} or failed validation and needs a fix at the source.",
            ),
        ],
        description=spec.description,
    )
    def push_asset(context: dg.AssetExecutionContext, records: pd.DataFrame) -> dg.MaterializeResult:
        return run_push(spec, context, records)

    return push_asset


def run_push(
    spec: PushSpec[Any], context: dg.AssetExecutionContext, frame: pd.DataFrame
) -> dg.MaterializeResult:
    tenant, _ = tenant_day(context)
    state = context.resources.state
    if not state.configured(tenant, spec.target):
        skipped = not_configured(context, tenant, spec.target)
        reason = f"tenant {tenant} does not use {spec.target}"
        return dg.MaterializeResult(
            metadata=skipped.metadata,
            check_results=[
                dg.AssetCheckResult(check_name=name, passed=True, description=reason)
                for name in (spec.failed_check, spec.flagged_check)
            ],
        )
    store = state.state()
    session = push_session(context, store, tenant, spec.name)
    records = [r for r in from_frame(frame, spec.records.model) if spec.where is None or spec.where(r)]
    infor_resource = context.resources.infor if spec.reads_infor else None
    with spec.open_client(getattr(context.resources, spec.target), tenant) as client:
        config = state.tenant_config(tenant)
        pctx = PushContext(
            tenant=tenant,
            session=session,
            target=client,
            config=config,
            dependencies=Dependencies(store.ledger, tenant),
            open_infor=(lambda: infor_resource.adapter(tenant)) if infor_resource is not None else None,
            open_session=lambda flow: push_session(context, store, tenant, flow),
        )
        try:
            pusher = spec.pusher(pctx)
            workers = spec.max_workers or int(getattr(client, "max_concurrency", 1))
            push_all(
                pusher,
                session,
                records,
                spec.records.record_id,
                workers=workers,
                progress=_progress(context, spec.name),
                time_budget=float(config.get("push_time_budget_seconds") or DEFAULT_TIME_BUDGET_SECONDS),
            )
        finally:
            pctx.close()
        requests = pctx.requests_made
    log_counts(context, spec.name, session)
    metadata: dict[str, Any] = {
        **sync_metadata(session),
        "requests_used": dg.MetadataValue.int(requests),
        "workers": dg.MetadataValue.int(max(1, min(workers, len(records)))),
    }
    for flow, other in pctx.other_sessions.items():
        log_counts(context, f"{flow} (on the spot)", other)
        metadata[f"{flow}_synced_on_the_spot"] = dg.MetadataValue.int(len(other.results))
    return dg.MaterializeResult(metadata=metadata, check_results=push_checks(spec, session))


def push_checks(spec: PushSpec[Any], session: SyncSession) -> list[dg.AssetCheckResult]:
    """The failed (ERROR) and flagged (WARN) checks of one run, naming the records and reasons."""
    return [
        _check(spec.failed_check, session.results, "failed", dg.AssetCheckSeverity.ERROR),
        _check(spec.flagged_check, session.results, "flagged", dg.AssetCheckSeverity.WARN),
    ]


def _check(
    name: str, results: Sequence[SyncResult], action: str, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    offending = [r for r in results if r.action == action]
    listed = [{"id": r.source_id, "reason": r.reason} for r in offending[:CHECK_SAMPLE]]
    described = (
        f"no record {action}"
        if not offending
        else f"{len(offending)} record(s) {action}: "
        + "; ".join(f"{r.source_id} ({r.reason})" for r in offending[:5])
        + (" ..." if len(offending) > 5 else "")
    )
    return dg.AssetCheckResult(
        check_name=name,
        passed=not offending,
        severity=severity,
        description=described,
        metadata={
            f"{action}_count": dg.MetadataValue.int(len(offending)),
            "records": dg.MetadataValue.json(listed),
        },
    )


def _progress(context: dg.AssetExecutionContext, flow: str) -> Callable[[int, int], None]:
    lock = threading.Lock()

    def log(done: int, total: int) -> None:
        if done % LOG_EVERY == 0 or done == total:
            with lock:
                context.log.info(f"{flow}: {done}/{total} records")

    return log
