"""PreviewSession against SyncSession on one real state store: the same decision, and no write.

The "target" here is a dict the callables write to; each scenario is previewed first (the dict and
the ledger must not change), then run for real, and the two actions compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ml_connector_pipelines.core import tables
from ml_connector_pipelines.core.errors import WriteRefused
from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.integrations.kit.plan import NEW_TARGET_ID, PlanLedger, PreviewSession

TENANT, FLOW = "ACME", "things"


class Target:
    """Holds records by id; in read-only mode a write raises WriteRefused, as HttpClient does."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self.read_only = False

    def write(self, record_id: str, value: str) -> str:
        if self.read_only:
            raise WriteRefused("target", "POST", "/things")
        self.records[record_id] = value
        return record_id


def rows(connector: Any) -> list[list[dict[str, Any]]]:
    with connector.state.store.session() as conn:
        return [
            [dict(r) for r in conn.execute(sa.select(t)).mappings()]
            for t in (tables.ledger, tables.audit_events)
        ]


def both(
    connector: Any, target: Target, source_id: str, digest: str, **callables: Callable[..., Any]
) -> tuple[str, str]:
    """(previewed action, real action) for one record."""
    before, held = rows(connector), dict(target.records)
    target.read_only = True
    preview = PreviewSession(
        PlanLedger(Ledger(connector.state.store)), tenant=TENANT, flow=FLOW, partition=None
    )
    planned = preview.sync(source_id, digest, **callables)
    target.read_only = False
    assert rows(connector) == before and target.records == held
    real = connector.state.sync_session(tenant=TENANT, flow=FLOW, run_id="real", partition=None)
    return planned.action, real.sync(source_id, digest, **callables).action


def test_create_update_skip_and_flag_match_the_real_session(connector: Any) -> None:
    target = Target()
    create = lambda: target.write("t1", "v1")  # noqa: E731
    assert both(connector, target, "r1", "h1", create=create) == ("created", "created")
    assert both(connector, target, "r1", "h1", create=create) == ("skipped", "skipped")
    update = lambda old: target.write(old, "v2")  # noqa: E731
    assert both(connector, target, "r1", "h2", create=create, update=update) == ("updated", "updated")

    def rejected() -> str:
        from ml_connector_pipelines.core.errors import ValidationFailed

        raise ValidationFailed("r2", "name", "empty")

    assert both(connector, target, "r2", "h1", create=rejected) == ("flagged", "flagged")


def test_a_record_another_live_run_holds_is_in_progress(connector: Any) -> None:
    Ledger(connector.state.store).claim(TENANT, FLOW, "r1", "other-run")
    preview = PreviewSession(
        PlanLedger(Ledger(connector.state.store)), tenant=TENANT, flow=FLOW, partition=None
    )
    result = preview.sync("r1", "h1", create=lambda: "x")
    assert (result.action, result.in_progress) == ("skipped", True)
    assert preview.sync("r1", "h1", create=lambda: "x").reason == "in progress in run other-run"


def test_a_pending_record_is_looked_up_first(connector: Any) -> None:
    ledger = Ledger(connector.state.store)
    ledger.claim(TENANT, FLOW, "r1", "dead-run", lease_seconds=0)
    ledger.release(TENANT, FLOW, "r1", "dead-run", keep_pending=True, reason="crashed")
    target = Target()
    target.records["t9"] = "v1"  # the dead run's create did commit
    actions = both(
        connector, target, "r1", "h1", create=lambda: target.write("t1", "v1"), lookup=lambda: "t9"
    )
    assert actions == ("created", "created")


def test_a_planned_create_is_seen_by_the_records_that_need_it(connector: Any) -> None:
    plan_ledger = PlanLedger(Ledger(connector.state.store))
    target = Target()
    target.read_only = True
    first = PreviewSession(plan_ledger, tenant=TENANT, flow=FLOW, partition=None)
    assert first.sync("r1", "h1", create=lambda: target.write("t1", "v1")).target_id == NEW_TARGET_ID
    entry = plan_ledger.get(TENANT, FLOW, "r1")
    assert entry is not None and entry.status == "done" and entry.target_id == NEW_TARGET_ID
    assert Ledger(connector.state.store).get(TENANT, FLOW, "r1") is None


def test_the_plan_ledger_cannot_write(connector: Any) -> None:
    from ml_connector_pipelines.integrations.kit.plan import PreviewNotPossible

    with pytest.raises(PreviewNotPossible):
        PlanLedger(Ledger(connector.state.store)).claim(TENANT, FLOW, "r1", "run")


def test_a_claim_of_a_finished_run_is_taken_over_as_in_a_run(connector: Any) -> None:
    Ledger(connector.state.store).claim(TENANT, FLOW, "r1", "ended-run")
    target = Target()

    def finished(run_id: str) -> bool:
        return run_id == "ended-run"

    preview = PreviewSession(
        PlanLedger(Ledger(connector.state.store)),
        tenant=TENANT,
        flow=FLOW,
        partition=None,
        run_finished=finished,
    )
    target.read_only = True
    assert preview.sync("r1", "h1", create=lambda: target.write("t1", "v1")).action == "created"
    real = connector.state.sync_session(
        tenant=TENANT, flow=FLOW, run_id="real", partition=None, run_finished=finished
    )
    target.read_only = False
    assert real.sync("r1", "h1", create=lambda: target.write("t1", "v1")).action == "created"
