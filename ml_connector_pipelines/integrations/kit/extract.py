"""Extract assets for any source system, from one spec each, partitioned tenant x modified date.

A spec names the source system (its registry name, also its resource key), how to read one day from
that system's client, the canonical model, the key and the fields the checks look at. The builder
owns the rest: open the client, read, quarantine bad records, type the frame, alert, checks, metadata.

    ExtractSpec(
        asset_name="procurify_vendors", system="procurify", read="vendors", model=Vendor,
        key=["vendor_id"], required=["vendor_id", "name"], currencies=["currency"],
        description="Procurify vendors changed on the partition date.",
    )

`read` is the client's method (called with the partition date) or a function (client, date) ->
records. A client may list the source rows it could not map in `client.rejected` (RejectedRecord-like:
record_id, field, reason).

One bad record never stops a tenant-day: a source row the client could not map, or a record missing a
required field, is quarantined: left out of the frame, named (record + field) in the metadata and the
`parseable_records` / `required_fields` checks (WARN), and alerted; the rest flows on. Only a broken
extract is blocking: duplicate keys (`unique_keys`) or a source schema change (`source_schema`).
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import BaseModel

from ..frames import to_frame
from ..partitions import TENANT_DAY, tenant_day
from . import checks

BLOCKING = {"unique_keys", "source_schema"}


@dataclass(frozen=True)
class Quarantined:
    record_id: str
    field: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ExtractSpec:
    asset_name: str
    system: str  # registry name of the source system, and its resource key
    read: str | Callable[[Any, date], Iterable[BaseModel]]
    model: type[BaseModel]
    key: list[str]
    required: list[str] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    amounts: list[str] = field(default_factory=list)
    description: str = ""
    group: str = ""  # default: the system's name
    # Columns left out of the sample table in the event log (e.g. bank details).
    sample_hides: Callable[[str], bool] = lambda column: False

    @property
    def entity(self) -> str:
        return self.read if isinstance(self.read, str) else self.asset_name

    def read_day(self, client: Any, day: date) -> list[BaseModel]:
        if isinstance(self.read, str):
            return list(getattr(client, self.read)(day))
        return list(self.read(client, day))


# Every extract built by `build_extract`, by asset name: the write preview reads a partition with it.
EXTRACT_SPECS: dict[str, ExtractSpec] = {}


def check_names(spec: ExtractSpec) -> list[str]:
    names = ["required_fields", "unique_keys", "parseable_records", "source_schema"]
    names += ["valid_currencies"] if spec.currencies else []
    names += ["non_negative_amounts"] if spec.amounts else []
    return names


def _sample(spec: ExtractSpec, frame: pd.DataFrame) -> str:
    shown = [c for c in frame.columns if not spec.sample_hides(c)]
    return frame[shown].head(10).to_markdown(index=False) if len(frame) else "(empty)"


def quarantine(spec: ExtractSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Quarantined]]:
    """The frame without records missing a required field, and those records, named."""
    missing = checks.missing_required(frame, spec.key, spec.required)
    bad = [Quarantined(record, col, "required field is empty") for _, record, col in missing]
    kept = frame.drop(index=frame.index[[position for position, _, _ in missing]]).reset_index(drop=True)
    return kept, bad


def _parseable(rejected: list[Quarantined]) -> checks.CheckOutcome:
    return checks.CheckOutcome(
        "parseable_records",
        not rejected,
        False,
        "every source row maps to a canonical record"
        + "".join(f"; {r.record_id}: {r.field} {r.reason}" for r in rejected[:10]),
        [r.record_id for r in rejected][:50],
    )


def run_checks(
    spec: ExtractSpec, read: pd.DataFrame, kept: pd.DataFrame, rejected: list[Quarantined]
) -> list[checks.CheckOutcome]:
    """`required_fields` names what was quarantined (on the frame as read); the others see what flows."""
    outcomes = [
        checks.required_fields(read, spec.key, spec.required),
        checks.unique_keys(kept, spec.key),
        _parseable(rejected),
        checks.source_schema([r.field for r in rejected], len(read) + len(rejected)),
    ]
    if spec.currencies:
        outcomes.append(checks.valid_currencies(kept, spec.key, spec.currencies))
    if spec.amounts:
        outcomes.append(checks.non_negative(kept, spec.key, spec.amounts))
    return outcomes


def build_extract(spec: ExtractSpec) -> dg.AssetsDefinition:
    EXTRACT_SPECS[spec.asset_name] = spec

    @dg.asset(
        name=spec.asset_name,
        group_name=spec.group or spec.system,
        partitions_def=TENANT_DAY,
        pool=spec.system,
        kinds={"python", "pandas"},
        description=spec.description,
        check_specs=[
            dg.AssetCheckSpec(name, asset=spec.asset_name, blocking=name in BLOCKING)
            for name in check_names(spec)
        ],
        required_resource_keys={"state", spec.system},
    )
    def _extract(context: dg.AssetExecutionContext) -> Iterator:
        tenant, day = tenant_day(context)
        if not context.resources.state.configured(tenant, spec.system):
            # A source only some tenants use (Procurify): nothing to read, said once, nothing fails.
            reason = f"tenant {tenant} does not use {spec.system}: nothing to extract"
            context.log.info(reason)
            metadata = {"configured": False, "reason": reason, "row_count": 0}
            yield dg.Output(to_frame([], spec.model), metadata=metadata)
            for name in check_names(spec):
                yield dg.AssetCheckResult(check_name=name, passed=True, description=reason)
            return
        client = getattr(context.resources, spec.system).open(tenant)
        try:
            records = spec.read_day(client, day)
            requests = getattr(client, "requests_made", 0)
            rejected = [Quarantined(r.record_id, r.field, r.reason) for r in getattr(client, "rejected", [])]
        finally:
            client.close()
        frame = to_frame(records, spec.model)
        kept, missing = quarantine(spec, frame)
        alerts = context.resources.state.state().alerts
        for bad in [*rejected, *missing]:
            reason = f"{spec.entity} record {bad.record_id}: field {bad.field}: {bad.reason}"
            context.log.warning(f"{spec.asset_name}: quarantined {reason}")
            alerts.alert(tenant, spec.asset_name, bad.record_id, reason, run_id=context.run.run_id)
        context.log.info(
            f"{spec.asset_name}: {len(kept)} records for {tenant} on {day} in {requests} requests"
            + (f", {len(missing)} quarantined" if missing else "")
        )
        yield dg.Output(
            kept,
            metadata={
                "row_count": dg.MetadataValue.int(len(kept)),
                "requests_used": dg.MetadataValue.int(requests),
                "sample": dg.MetadataValue.md(_sample(spec, kept)),
                "rejected_records": dg.MetadataValue.json(
                    [{"record": r.record_id, "field": r.field, "reason": r.reason} for r in rejected]
                ),
                "quarantined_records": dg.MetadataValue.json(
                    [
                        {"record": r.record_id, "field": r.field, "reason": r.reason}
                        for r in [*rejected, *missing]
                    ]
                ),
            },
        )
        for outcome in run_checks(spec, frame, kept, rejected):
            yield dg.AssetCheckResult(
                check_name=outcome.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
                description=outcome.description,
                metadata={"failing_records": dg.MetadataValue.json(outcome.failing_records)},
            )

    return _extract
