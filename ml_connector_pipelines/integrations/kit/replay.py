"""`ml-connector replay`: hand flagged records back for another try, once their cause is fixed.

- An inbox-driven flow (its job carries the `ml_connector/inbox_flow` tag): the flagged events
  (dead letters) are requeued, all of them (`flagged`) or those that flagged `record`, and the flow's
  job runs for the tenant.
- An extract-driven flow (a push fed by a tenant x date extract): the flagged records' partitions,
  read from the audit trail, are run again with the pair job that holds the flow's asset; the ledger
  retries the flagged records and skips what is done.

Every replayed record gets an audit row (action `replayed`). Runs execute in this process on the
given Dagster instance (the CLI's is `DAGSTER_HOME`), so when the command returns the outcome is in
the ledger and the audit trail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ...core.state import State
from ..partitions import TENANTS
from .inbox import INBOX_FLOW_TAG, INBOX_SOURCE_TAG, dead_letters, flagged_record, requeue

MAIN_JOB = "main"


@dataclass
class ReplayReport:
    records: list[str] = field(default_factory=list)
    runs: dict[str, bool] = field(default_factory=dict)  # run id -> succeeded


def _jobs(defs: dg.Definitions) -> list[Any]:
    return sorted(defs.jobs or [], key=lambda job: (job.name == MAIN_JOB, job.name))


def inbox_job_for(defs: dg.Definitions, flow: str) -> Any | None:
    return next((job for job in _jobs(defs) if (job.tags or {}).get(INBOX_FLOW_TAG) == flow), None)


def pair_job_for(defs: dg.Definitions, flow: str) -> str | None:
    """The first job (pair jobs before `main`) that materializes the flow's asset (any key prefix)."""
    for job in _jobs(defs):
        if INBOX_FLOW_TAG in (job.tags or {}):
            continue
        keys = defs.resolve_job_def(job.name).asset_layer.selected_asset_keys
        if any(key.path[-1] == flow for key in keys):
            return job.name
    return None


def replay(
    state: State,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
    tenant: str,
    flow: str,
    *,
    record: str | None = None,
) -> ReplayReport:
    """Replay one record (`record`) or every flagged record of a flow; raises ValueError when there
    is nothing to replay."""
    if state.tenants.get(tenant) is None:
        raise ValueError(f"unknown tenant {tenant!r}")
    if not instance.has_dynamic_partition(TENANTS.name, tenant):
        instance.add_dynamic_partitions(TENANTS.name, [tenant])
    job = inbox_job_for(defs, flow)
    if job is not None:
        return _replay_inbox(state, defs, instance, resources, tenant, flow, job, record)
    job_name = pair_job_for(defs, flow)
    if job_name is None:
        raise ValueError(f"unknown flow {flow!r}")
    return _replay_partitions(state, defs, instance, resources, tenant, flow, job_name, record)


def _run(
    defs: dg.Definitions, instance: dg.DagsterInstance, resources: dict[str, Any], job: str, partition: str
) -> tuple[str, bool]:
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=partition,
        instance=instance,
        resources=resources,
        raise_on_error=False,
        tags={"ml_connector/replay": "true"},
    )
    return result.run_id, result.success


def _replay_inbox(
    state: State,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
    tenant: str,
    flow: str,
    job: Any,
    record: str | None,
) -> ReplayReport:
    source = job.tags[INBOX_SOURCE_TAG]
    letters = dead_letters(state, source, tenant, record)
    if not letters:
        raise ValueError(
            f"nothing flagged to replay for tenant {tenant!r}, flow {flow!r}"
            + (f", record {record!r}" if record else "")
        )
    requeue(state, letters)
    report = ReplayReport()
    for letter in letters:
        source_id = flagged_record(letter)
        state.audit.record(
            tenant,
            flow,
            source_id,
            "replayed",
            reason=f"inbox event {letter.event_id} requeued (was flagged: {letter.error})",
        )
        report.records.append(source_id)
    run_id, success = _run(defs, instance, resources, job.name, tenant)
    report.runs[run_id] = success
    return report


def _replay_partitions(
    state: State,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
    tenant: str,
    flow: str,
    job: str,
    record: str | None,
) -> ReplayReport:
    flagged = [entry.source_id for entry in state.ledger.entries(tenant, flow, status="flagged")]
    records = [r for r in flagged if record is None or r == record]
    if not records:
        raise ValueError(
            f"nothing flagged to replay for tenant {tenant!r}, flow {flow!r}"
            + (f", record {record!r}" if record else "")
        )
    by_partition: dict[str, list[str]] = defaultdict(list)
    for source_id in records:
        # The newest partition that saw the record: the extract it came from.
        seen = [e.partition for e in state.audit.history(tenant, flow=flow, record=source_id) if e.partition]
        if seen:
            by_partition[seen[-1]].append(source_id)
    report = ReplayReport()
    for partition, source_ids in sorted(by_partition.items()):
        for source_id in source_ids:
            state.audit.record(
                tenant,
                flow,
                source_id,
                "replayed",
                partition=partition,
                reason=f"partition {partition} rerun",
            )
            report.records.append(source_id)
        run_id, success = _run(defs, instance, resources, job, partition)
        report.runs[run_id] = success
    return report
