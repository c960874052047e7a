"""The write preview (`ml-connector plan`, the `write_preview` job): what the next run of a tenant-day
would do to each record, with no write to any target and none to the ledger or the audit table.

It runs the flow's own pusher, unchanged, against a `PreviewSession` instead of a `SyncSession`:

- the session decides from the ledger exactly as `SyncSession.sync` does (unchanged: skipped; held
  by another live run: skipped; pending: `lookup()` first; new: create; changed: update, else
  recreate), and records the prediction instead of writing it;
- it calls the pusher's create / update / recreate callables with every target client read-only
  (`HttpClient.read_only`): what they read (a Stripe invoice's status before a replacement, a
  Wise quote's expiry) still happens, so a record the real run would flag is flagged here too; the
  first write raises `WriteRefused` and stands for "this write would happen";
- a write outside `session.sync` (a pusher posting on its own) is refused the same way and shows
  up as a failed record naming the refused call, so nothing slips through to a target;
- the ledger the pusher sees is the real one read through an overlay of this plan's predictions,
  so a quote planned after its supplier's new recipient sees that recipient as it will be.

Records come from the same extract code as the run: the partition is read from the source system
now (`ExtractSpec.read_day`, quarantine included), not taken from the last materialized frame, so
the preview shows what the next run will see. Flows are planned in dependency order.

Known limit: a record whose dependency is only planned (not yet in the target) carries the
placeholder target id `NEW_TARGET_ID`; a pusher that parses such an id (Wise transfers read the
recipient id as an integer) reports that record as failed in the preview.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import pandas as pd

from ...core.errors import TargetRejected, ValidationFailed, WriteRefused
from ...core.http import HttpClient
from ...core.ledger import Ledger, LedgerEntry, Status
from ...core.sync import SessionResults, SyncResult, target_message_for
from ...core.tables import utcnow
from ..frames import from_frame, to_frame
from .dependencies import Dependencies
from .extract import EXTRACT_SPECS, quarantine
from .push import DEFAULT_TIME_BUDGET_SECONDS, PUSH_SPECS, PushSpec
from .pushers import PushContext, push_all

NEW_TARGET_ID = "(new)"  # the target id of a record the plan would create
PLAN_RUN_ID = "write-preview"
VERBS = {
    "created": "create",
    "updated": "update",
    "recreated": "recreate",
    "linked": "link",
    "skipped": "skip",
    "flagged": "flag",
    "failed": "fail",
}


class PreviewNotPossible(RuntimeError):
    """The preview cannot guarantee it writes nothing for this flow, so it does not run it."""


# The write guard --------------------------------------------------------------------------------


def read_only(client: Any) -> Any:
    """Make `client`'s HTTP clients refuse writes (its own attributes, or itself). Raises
    PreviewNotPossible when it holds none: then nothing proves its writes would be stopped."""
    found = [client] if isinstance(client, HttpClient) else []
    found += [value for value in vars(client).values() if isinstance(value, HttpClient)]
    if not found:
        raise PreviewNotPossible(f"{type(client).__name__} has no HttpClient the preview can make read-only")
    for http in found:
        http.read_only = True
    return client


# The ledger as this plan predicts it ------------------------------------------------------------


class PlanLedger:
    """The real ledger, read through the predictions of one plan. It has no way to write."""

    def __init__(self, ledger: Ledger) -> None:
        self.real = ledger
        self.store = ledger.store
        self._predicted: dict[tuple[str, str, str], LedgerEntry] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, flow: str, source_id: str) -> LedgerEntry | None:
        predicted = self._predicted.get((tenant, flow, source_id))
        return predicted if predicted is not None else self.real.get(tenant, flow, source_id)

    def find_by_target(self, tenant: str, flow: str, target_id: str) -> LedgerEntry | None:
        for (t, f, _), entry in list(self._predicted.items()):
            if (t, f) == (tenant, flow) and entry.target_id == target_id:
                return entry
        found = self.real.find_by_target(tenant, flow, target_id)
        if found is not None and (tenant, flow, found.source_id) in self._predicted:
            return None  # this plan moves that record to another target id
        return found

    def entries(self, tenant: str, flow: str, status: Status | None = None) -> list[LedgerEntry]:
        merged = {entry.source_id: entry for entry in self.real.entries(tenant, flow)}
        for (t, f, source_id), entry in list(self._predicted.items()):
            if (t, f) == (tenant, flow):
                merged[source_id] = entry
        return [e for e in merged.values() if status is None or e.status == status]

    def predict(
        self,
        tenant: str,
        flow: str,
        source_id: str,
        status: Status,
        *,
        target_id: str | None = None,
        content_hash: str | None = None,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        current = self.get(tenant, flow, source_id)
        entry = LedgerEntry(
            tenant=tenant,
            flow=flow,
            source_id=source_id,
            target_id=target_id if target_id is not None or current is None else current.target_id,
            content_hash=content_hash
            if content_hash is not None or current is None
            else current.content_hash,
            status=status,
            run_id=PLAN_RUN_ID,
            reason=reason,
            extra={**(current.extra if current else {}), **(extra or {})},
            version=(current.version if current else 0) + 1,
            updated_at=utcnow(),
        )
        with self._lock:
            self._predicted[(tenant, flow, source_id)] = entry

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        raise PreviewNotPossible("a pusher that claims ledger rows itself cannot be previewed")

    complete = flag = release = claim  # every write of `Ledger`


# The session ------------------------------------------------------------------------------------


class PreviewSession(SessionResults):
    """`SyncSession`'s interface; decides like it, writes nothing (module docstring)."""

    def __init__(
        self,
        ledger: PlanLedger,
        *,
        tenant: str,
        flow: str,
        partition: str | None,
        lease_seconds: int = 900,
        run_finished: Callable[[str], bool] | None = None,
    ) -> None:
        self.ledger = ledger
        # As the ledger's claim: a pending row of a run known to have finished is free to take.
        self.run_finished = run_finished
        self.tenant = tenant
        self.flow = flow
        self.run_id = PLAN_RUN_ID
        self.partition = partition
        self.lease_seconds = lease_seconds
        self.results: list[SyncResult] = []

    @contextmanager
    def batched(self) -> Iterator[PreviewSession]:
        """SyncSession's write batching; a preview writes nothing, so there is nothing to batch."""
        yield self

    def prefetch(
        self, source_ids: list[str], *, claim_ahead: int = 0, will_claim: Collection[str] = ()
    ) -> None:
        """SyncSession reads a page of ledger rows at once (and claims ahead); a preview reads each
        as it goes and claims nothing."""

    def skip_if_unchanged(self, source_id: str, content_hash: str) -> SyncResult | None:
        current = self.ledger.get(self.tenant, self.flow, source_id)
        if current is not None and current.status == "done" and current.content_hash == content_hash:
            return self._outcome(source_id, "skipped", current.target_id, "unchanged")
        return None

    def sync(
        self,
        source_id: str,
        content_hash: str,
        *,
        create: Callable[[], str],
        lookup: Callable[[], str | None] | None = None,
        update: Callable[[str], str] | None = None,
        recreate: Callable[[str], str] | None = None,
        extra: dict[str, Any] | None = None,
        match: Callable[[], str | None] | None = None,
    ) -> SyncResult:
        current = self.ledger.get(self.tenant, self.flow, source_id)
        if current is not None and current.status == "done" and current.content_hash == content_hash:
            return self._outcome(source_id, "skipped", current.target_id, "unchanged")
        if self._held_elsewhere(current):
            return self._in_progress(current)
        try:
            action, target_id, reason = self._predict(current, create, lookup, update, recreate, match)
        except (TargetRejected, ValidationFailed) as exc:
            return self._flag(source_id, target_message_for(exc, source_id), content_hash)
        except Exception as exc:  # the real run fails it too, and keeps it pending
            return self._outcome(source_id, "failed", current.target_id if current else None, _failure(exc))
        if action != "skipped":
            self.ledger.predict(
                self.tenant,
                self.flow,
                source_id,
                "done",
                target_id=target_id,
                content_hash=content_hash,
                extra=extra,
            )
        return self._outcome(source_id, action, target_id, reason)

    def flag(
        self, source_id: str, reason: str, *, field: str | None = None, content_hash: str | None = None
    ) -> SyncResult:
        current = self.ledger.get(self.tenant, self.flow, source_id)
        if self._held_elsewhere(current):
            return self._in_progress(current)
        return self._flag(source_id, f"{field}: {reason}" if field else reason, content_hash)

    def note(
        self,
        source_id: str,
        action: str,
        *,
        target_id: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> SyncResult:
        return self._outcome(source_id, action, target_id, reason)

    # -- internals: the mirror of SyncSession._push ------------------------------------------------

    def _predict(
        self,
        current: LedgerEntry | None,
        create: Callable[[], str],
        lookup: Callable[[], str | None] | None,
        update: Callable[[str], str] | None,
        recreate: Callable[[str], str] | None,
        match: Callable[[], str | None] | None,
    ) -> tuple[str, str | None, str | None]:
        old_id = current.target_id if current else None
        if current is not None and current.status == "pending" and lookup is not None:
            try:
                found = lookup()
            except WriteRefused:  # the lookup found a half-done record and would finish it
                found = NEW_TARGET_ID
            if found is not None and found != old_id:
                return ("created" if old_id is None else "recreated"), found, "recovered"
        if old_id is None:
            if match is not None:
                matched = match()
                if matched is not None:
                    return "linked", matched, "already in the target"
            return "created", _attempt(create), None
        if update is not None:
            return "updated", _attempt(lambda: update(old_id)), None
        if recreate is not None:
            return "recreated", _attempt(lambda: recreate(old_id)), None
        return "skipped", old_id, "changed, but this flow cannot change records in the target"

    def _held_elsewhere(self, entry: LedgerEntry | None) -> bool:
        """Another run holds the record within its lease: the real run would skip it too."""
        if entry is None or entry.status != "pending" or entry.run_id == PLAN_RUN_ID:
            return False
        if entry.claimed_at is None or (
            entry.run_id and self.run_finished and self.run_finished(entry.run_id)
        ):
            return False
        return entry.claimed_at >= utcnow() - timedelta(seconds=self.lease_seconds)

    def _in_progress(self, holder: LedgerEntry | None) -> SyncResult:
        source_id = holder.source_id if holder else "?"
        result = self._outcome(
            source_id, "skipped", None, f"in progress in run {holder.run_id if holder else '?'}"
        )
        result.in_progress = True
        return result

    def _flag(self, source_id: str, reason: str, content_hash: str | None) -> SyncResult:
        self.ledger.predict(
            self.tenant, self.flow, source_id, "flagged", content_hash=content_hash, reason=reason
        )
        entry = self.ledger.get(self.tenant, self.flow, source_id)
        return self._outcome(source_id, "flagged", entry.target_id if entry else None, reason)

    def _outcome(self, source_id: str, action: str, target_id: str | None, reason: str | None) -> SyncResult:
        result = SyncResult(source_id=source_id, action=action, target_id=target_id, reason=reason)
        self.results.append(result)
        return result


def _attempt(call: Callable[[], str]) -> str:
    """Run a create-like callable with writes refused: its reads happen, its first write stops it."""
    try:
        return call()
    except WriteRefused:
        return NEW_TARGET_ID


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


# Planning a tenant-day --------------------------------------------------------------------------


@dataclass
class FlowPlan:
    """What one flow would do to each record of the partition."""

    flow: str
    target: str
    results: list[SyncResult] = field(default_factory=list)
    note: str | None = None  # why nothing was planned (tenant does not use the target...)
    on_the_spot: dict[str, list[SyncResult]] = field(default_factory=dict)  # dependencies synced now
    requests: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.action for r in self.results))

    def rows(self) -> list[dict[str, str]]:
        """One row per record, the flow's own first, then the dependencies it would sync on the spot."""
        rows = [_row(self.flow, r) for r in self.results]
        for flow, results in self.on_the_spot.items():
            rows += [_row(f"{flow} (on the spot)", r) for r in results]
        return rows


def _row(flow: str, result: SyncResult) -> dict[str, str]:
    return {
        "flow": flow,
        "record": result.source_id,
        "action": VERBS.get(result.action, result.action),
        "target": result.target_id or "",
        "reason": result.reason or ("in progress" if result.in_progress else ""),
    }


def plan_order(flows: Iterable[str] | None = None) -> list[PushSpec[Any]]:
    """The push flows (all, or those named), dependencies first."""
    names = list(PUSH_SPECS) if not flows else list(flows)
    unknown = [name for name in names if name not in PUSH_SPECS]
    if unknown:
        raise ValueError(f"unknown push flow(s) {', '.join(unknown)}; known: {', '.join(sorted(PUSH_SPECS))}")
    by_key = {spec.key.to_user_string(): spec.name for spec in PUSH_SPECS.values()}
    ordered: list[str] = []

    def visit(name: str, seen: frozenset[str]) -> None:
        if name in ordered or name in seen:
            return
        for dep in PUSH_SPECS[name].deps:
            dep_name = by_key.get(dep if isinstance(dep, str) else dep.to_user_string())
            if dep_name in names:
                visit(dep_name, seen | {name})
        ordered.append(name)

    for name in names:
        visit(name, frozenset())
    return [PUSH_SPECS[name] for name in ordered]


def source_records(spec: PushSpec[Any], resources: Mapping[str, Any], tenant: str, day: date) -> list[Any]:
    """The flow's records for the partition, read now through the upstream extract's own code."""
    source = spec.records.asset
    name = source if isinstance(source, str) else source.path[-1]
    extract = EXTRACT_SPECS.get(name)
    if extract is None:
        raise PreviewNotPossible(f"{spec.name} reads {name}, which is not an extract the preview can read")
    client = read_only(resources[extract.system].open(tenant))
    try:
        frame = to_frame(extract.read_day(client, day), extract.model)
    finally:
        client.close()
    kept, _ = quarantine(extract, frame)
    records = from_frame(kept, spec.records.model)
    return [r for r in records if spec.where is None or spec.where(r)]


def plan_flow(
    spec: PushSpec[Any],
    resources: Mapping[str, Any],
    ledger: PlanLedger,
    tenant: str,
    day: date,
    run_finished: Callable[[str], bool] | None = None,
) -> FlowPlan:
    state = resources["state"]
    plan = FlowPlan(spec.name, spec.target)
    if not state.configured(tenant, spec.target):
        plan.note = f"tenant {tenant} does not use {spec.target}"
        return plan
    partition = f"{day.isoformat()}|{tenant}"

    def session(flow: str) -> PreviewSession:
        return PreviewSession(
            ledger, tenant=tenant, flow=flow, partition=partition, run_finished=run_finished
        )

    records = source_records(spec, resources, tenant, day)
    infor = resources.get("infor") if spec.reads_infor else None
    main = session(spec.name)
    with read_only(spec.open_client(resources[spec.target], tenant)) as client:
        config = state.tenant_config(tenant)
        pctx = PushContext(
            tenant=tenant,
            session=main,  # type: ignore[arg-type]  # the same interface, see PreviewSession
            target=client,
            config=config,
            dependencies=Dependencies(ledger, tenant),  # type: ignore[arg-type]
            open_infor=(lambda: read_only(infor.adapter(tenant))) if infor is not None else None,
            open_session=session,  # type: ignore[arg-type]
        )
        try:
            pusher = spec.pusher(pctx)
            workers = spec.max_workers or int(getattr(client, "max_concurrency", 1))
            push_all(
                pusher,
                main,  # type: ignore[arg-type]
                records,
                spec.records.record_id,
                workers=workers,
                time_budget=float(config.get("push_time_budget_seconds") or DEFAULT_TIME_BUDGET_SECONDS),
            )
        finally:
            pctx.close()
        plan.requests = pctx.requests_made
    plan.results = main.results
    plan.on_the_spot = {flow: other.results for flow, other in pctx.other_sessions.items()}
    return plan


def plan_partition(
    resources: Mapping[str, Any],
    tenant: str,
    day: date,
    flows: Sequence[str] | None = None,
    run_finished: Callable[[str], bool] | None = None,
) -> list[FlowPlan]:
    """Plan every push flow (or those named) of one tenant-day; see the module docstring.
    `resources` are the code location's (`build_resources()`), used outside Dagster;
    `run_finished` (`integrations.runs.run_finished_checker`) tells a dead run's claims, as in a run."""
    state = resources["state"]
    if state.state().tenants.get(tenant) is None:
        raise ValueError(f"unknown tenant {tenant!r}")
    ledger = PlanLedger(state.state().ledger)
    plans = []
    for spec in plan_order(flows):
        try:
            plans.append(plan_flow(spec, resources, ledger, tenant, day, run_finished))
        except PreviewNotPossible as exc:
            plans.append(replace(FlowPlan(spec.name, spec.target), note=f"not previewed: {exc}"))
    return plans


def plan_markdown(plan: FlowPlan) -> str:
    rows = plan.rows()
    if plan.note:
        return plan.note
    return pd.DataFrame(rows).to_markdown(index=False) if rows else "(nothing to do)"
