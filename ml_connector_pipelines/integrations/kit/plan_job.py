"""The write preview as a Dagster job: `write_preview`, launched from the UI's launchpad with a tenant
and a date, shows per push flow what each record would do (`kit/plan.py`) in its step metadata.

A job rather than asset checks: a check of a push asset would also run with every real
materialization of it, and after it, when the plan has nothing left to show.
(No `from __future__ import annotations` here: Dagster reads the config class's annotations.)
"""

from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from ...systems.registry import SYSTEMS
from ..runs import run_finished_checker
from .plan import VERBS, plan_markdown, plan_partition


class WritePreviewConfig(dg.Config):
    tenant: str
    date: str = ""  # YYYY-MM-DD; empty: today (UTC)
    flows: list[str] = []  # empty: every push flow


@dg.op(
    required_resource_keys={"state", *SYSTEMS},
    description="What each push of a tenant-day would create, update, recreate, link, skip or flag; "
    "writes nothing to a target, the ledger or the audit table.",
)
def plan_tenant_day(context: dg.OpExecutionContext, config: WritePreviewConfig) -> dg.Output[None]:
    day = date.fromisoformat(config.date) if config.date else datetime.now(UTC).date()
    resources = {key: getattr(context.resources, key) for key in ("state", *SYSTEMS)}
    finished = run_finished_checker(context.instance)
    plans = plan_partition(resources, config.tenant, day, config.flows or None, finished)
    metadata: dict[str, Any] = {"partition": dg.MetadataValue.text(f"{config.tenant} {day.isoformat()}")}
    for plan in plans:
        counts = ", ".join(f"{n} {VERBS.get(a, a)}" for a, n in sorted(plan.counts.items()))
        context.log.info(f"{plan.flow}: {plan.note or counts or 'nothing to do'}")
        metadata[plan.flow] = dg.MetadataValue.md(plan_markdown(plan))
    return dg.Output(None, metadata=metadata)


@dg.job(
    name="write_preview",
    description="The write preview (`ml-connector plan`) of one tenant-day: set tenant and date in the "
    "launchpad; the plan is in the step's output metadata.",
    tags={"kind": "preview"},
)
def write_preview_job() -> None:
    plan_tenant_day()
