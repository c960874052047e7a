"""Run-level audit: the same materialization metadata for every push asset."""

from __future__ import annotations

from typing import Any

import dagster as dg

from ..core.sync import BASE_ACTIONS, SyncSession


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
