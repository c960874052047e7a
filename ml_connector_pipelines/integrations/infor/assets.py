"""Infor extract assets (group `infor`): one per entity, partitioned tenant x modified date.

Every extract has the same shape, so they are built from one table of specs. Each returns a typed
DataFrame of canonical records modified on the partition's date, with its data-quality checks.
A source row the adapter could not map is left out, named in the metadata, alerted, and fails the
non-blocking `parseable_records` check: the good records of the day still flow on.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from pydantic import BaseModel

from ...systems.infor.adapter import RejectedRecord
from ...systems.infor.models import APInvoice, ARInvoice, Customer, GLAccount, PurchaseOrder, Supplier
from ..frames import to_frame
from ..partitions import TENANT_DAY, tenant_day
from ..resources import InforResource, StateResource
from . import checks


@dataclass(frozen=True)
class ExtractSpec:
    asset_name: str
    read: str  # the InforAdapter method
    model: type[BaseModel]
    key: list[str]
    required: list[str]
    currencies: list[str]
    amounts: list[str]
    description: str


EXTRACTS = [
    ExtractSpec(
        "infor_suppliers",
        "suppliers",
        Supplier,
        ["supplier_id"],
        ["supplier_id", "name", "currency"],
        ["currency", "bank_account.currency"],
        [],
        "Suppliers (with their bank account) changed on the partition date.",
    ),
    ExtractSpec(
        "infor_customers",
        "customers",
        Customer,
        ["customer_id"],
        ["customer_id", "name", "currency"],
        ["currency"],
        [],
        "Customers changed on the partition date.",
    ),
    ExtractSpec(
        "infor_ap_invoices",
        "ap_invoices",
        APInvoice,
        ["division", "supplier_id", "invoice_number", "invoice_year"],
        ["division", "supplier_id", "invoice_number", "invoice_year", "currency", "amount", "status"],
        ["currency"],
        ["amount"],
        "Supplier (AP) invoices changed on the partition date, open and closed.",
    ),
    ExtractSpec(
        "infor_ar_invoices",
        "ar_invoices",
        ARInvoice,
        ["division", "customer_id", "invoice_number", "invoice_year"],
        ["division", "customer_id", "invoice_number", "invoice_year", "currency", "amount", "status"],
        ["currency"],
        ["amount", "open_amount"],
        "Customer (AR) invoices changed on the partition date, open and closed.",
    ),
    ExtractSpec(
        "infor_purchase_orders",
        "purchase_orders",
        PurchaseOrder,
        ["po_number"],
        ["po_number", "supplier_id", "currency"],
        ["currency"],
        [],
        "Purchase orders (with lines) changed on the partition date.",
    ),
    ExtractSpec(
        "infor_gl_accounts",
        "gl_accounts",
        GLAccount,
        ["dimension", "account_id"],
        ["dimension", "account_id"],
        [],
        [],
        "GL accounts / accounting identities changed on the partition date.",
    ),
]

BLOCKING = {"required_fields", "unique_keys"}
# Bank details stay out of the event log: of a supplier's account, the sample shows only these.
SAMPLE_BANK_COLUMNS = {"bank_account.kind", "bank_account.currency", "bank_account.country"}


def _sample(frame: pd.DataFrame) -> str:
    shown = [c for c in frame.columns if not c.startswith("bank_account.") or c in SAMPLE_BANK_COLUMNS]
    return frame[shown].head(10).to_markdown(index=False) if len(frame) else "(empty)"


def _parseable(rejected: list[RejectedRecord]) -> checks.CheckOutcome:
    return checks.CheckOutcome(
        "parseable_records",
        not rejected,
        False,
        "every source row maps to a canonical record"
        + "".join(f"; {r.record_id}: {r.field} {r.reason}" for r in rejected[:10]),
        [r.record_id for r in rejected][:50],
    )


def _run_checks(spec: ExtractSpec, frame: pd.DataFrame) -> list[checks.CheckOutcome]:
    outcomes = [checks.required_fields(frame, spec.key, spec.required), checks.unique_keys(frame, spec.key)]
    if spec.currencies:
        outcomes.append(checks.valid_currencies(frame, spec.key, spec.currencies))
    if spec.amounts:
        outcomes.append(checks.non_negative(frame, spec.key, spec.amounts))
    return outcomes


def _check_specs(spec: ExtractSpec) -> list[dg.AssetCheckSpec]:
    names = ["required_fields", "unique_keys", "parseable_records"]
    names += ["valid_currencies"] if spec.currencies else []
    names += ["non_negative_amounts"] if spec.amounts else []
    return [dg.AssetCheckSpec(name, asset=spec.asset_name, blocking=name in BLOCKING) for name in names]


def build_extract(spec: ExtractSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.asset_name,
        group_name="infor",
        partitions_def=TENANT_DAY,
        pool="infor",
        kinds={"python", "pandas"},
        description=spec.description,
        check_specs=_check_specs(spec),
    )
    def _extract(context: dg.AssetExecutionContext, infor: InforResource, state: StateResource) -> Iterator:
        tenant, day = tenant_day(context)
        adapter = infor.adapter(tenant)
        try:
            records = list(getattr(adapter, spec.read)(day))
            requests = adapter.requests_made
            rejected = list(adapter.rejected)
        finally:
            adapter.close()
        alerts = state.state().alerts
        for bad in rejected:
            reason = f"{spec.read} record {bad.record_id}: field {bad.field}: {bad.reason}"
            context.log.warning(f"{spec.asset_name}: skipped {reason}")
            alerts.alert(tenant, spec.asset_name, bad.record_id, reason, run_id=context.run.run_id)
        frame = to_frame(records, spec.model)
        context.log.info(
            f"{spec.asset_name}: {len(frame)} records for {tenant} on {day} in {requests} requests"
        )
        yield dg.Output(
            frame,
            metadata={
                "row_count": dg.MetadataValue.int(len(frame)),
                "requests_used": dg.MetadataValue.int(requests),
                "sample": dg.MetadataValue.md(_sample(frame)),
                "rejected_records": dg.MetadataValue.json(
                    [{"record": r.record_id, "field": r.field, "reason": r.reason} for r in rejected]
                ),
            },
        )
        for outcome in [*_run_checks(spec, frame), _parseable(rejected)]:
            yield dg.AssetCheckResult(
                check_name=outcome.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
                description=outcome.description,
                metadata={"failing_records": dg.MetadataValue.json(outcome.failing_records)},
            )

    return _extract


infor_extracts = [build_extract(spec) for spec in EXTRACTS]
