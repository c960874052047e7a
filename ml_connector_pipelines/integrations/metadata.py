"""What every push asset shares: its SyncSession, progress in the run log, and run-level metadata."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from ..core.state import State
from ..core.sync import BASE_ACTIONS, SyncSession
from .runs import run_finished_for

LOG_EVERY = 25  # records between progress lines in the run log
# Who answers for every asset of the code location (the UI's owner filter); one team, or an email.
OWNERS = [os.environ.get("ML_CONNECTOR_ASSET_OWNER") or "team:integrations"]


def asset_tags(pair: str, system: str) -> dict[str, str]:
    """Which pair an asset belongs to and which external system it reads or writes."""
    return {"pair": pair, "system": system}


def push_session(context: dg.AssetExecutionContext, state: State, tenant: str, flow: str) -> SyncSession:
    """The SyncSession of one flow in this run and partition."""
    return state.sync_session(
        tenant=tenant,
        flow=flow,
        run_id=context.run.run_id,
        partition=str(context.partition_key),
        run_finished=run_finished_for(context),  # a dead run's claims are taken over at once
    )


def log_progress(context: dg.AssetExecutionContext, flow: str, done: int, total: int) -> None:
    if done % LOG_EVERY == 0 or done == total:
        context.log.info(f"{flow}: {done}/{total} records")


def sync_metadata(session: SyncSession, sample_size: int = 20) -> dict[str, Any]:
    """Counts per action plus a sample table, flagged and failed records first."""
    counts = {action: 0 for action in BASE_ACTIONS} | session.counts
    summary = session.summary()
    if len(summary):
        first = summary["action"].isin(["flagged", "failed"]).map({True: 0, False: 1})
        summary = summary.assign(_order=first).sort_values("_order", kind="stable").drop(columns="_order")
        summary = summary.head(sample_size)
    table = summary.to_markdown(index=False) if len(summary) else "(nothing to do)"
    return {
        **{action: dg.MetadataValue.int(n) for action, n in counts.items()},
        "records": dg.MetadataValue.md(table),
    }


def log_counts(context: dg.AssetExecutionContext, flow: str, session: SyncSession) -> None:
    counts = ", ".join(f"{n} {action}" for action, n in session.counts.items()) or "nothing to do"
    context.log.info(f"{flow}: {counts}")


def sync_result(session: SyncSession, requests: int, **extra: Any) -> dg.MaterializeResult:
    """Counts, sample table and requests used: the materialization of a push asset."""
    return dg.MaterializeResult(
        metadata={**sync_metadata(session), "requests_used": dg.MetadataValue.int(requests), **extra}
    )
