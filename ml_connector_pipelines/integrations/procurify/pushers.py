"""Procurify -> Infor pushers, Dagster-free: one `sync(record) -> SyncResult` per record on the shared
`SyncSession` (ledger + audit + alerts), writing to Infor through the adapter only. Nothing is ever
written back to Procurify.

- `load_references` reads Procurify's vendors, account codes and departments and Infor's suppliers
  and GL accounts, and matches them (`mapping.align`); `record_references` puts every match and
  difference in the audit trail (flow ``procurify_references``).
- `PurchaseOrderPush`: an approved PO -> an Infor PO (M3 PPS370MI batch entry / SyteLine SLPos),
  carrying ``PFY-<procurify_PO>`` as its external reference; ``lookup=find_purchase_order`` finds it
  again after a lost answer or a killed run, so it is never created twice.
- `BillPush`: an approved bill -> an Infor AP invoice (M3 APS450MI + APS455MI / SyteLine SLAptrxs),
  looked up by supplier + invoice number before any second attempt.
- A record naming a vendor, account code or department with no Infor counterpart is flagged (and
  alerted) with the field named, and nothing is sent. Once Infor has the counterpart, replaying the
  record (rematerialising its partition) sends it once.

Infor's supplier and GL-account reads are by modified date, so the Infor side of the match is what
changed within ``procurify_reference_lookback_days`` (default 30 [I]) plus an exact lookup of every
supplier number a vendor names. A full chart read is the adapter's to add.

Tenant config keys (defaults): procurify_po_facility ("A01" [I]), procurify_po_warehouse ("100" [I]),
procurify_default_item ("NONSTOCK" [I]: the item of a PO line without SKU), procurify_ap_division
(falls back to ``divi``; no default: bills are flagged until it is set), procurify_cost_centres
(true on M3, false on SyteLine), procurify_cost_centre_dimension (2), procurify_timezone ("UTC"),
procurify_reference_lookback_days (30). On M3 set ``m3_ap_line_accounting`` as the Infor adapter
documents: APS450MI lines take no accounting inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ...core.errors import ValidationFailed
from ...core.ledger import Ledger
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.infor.adapter import InforAdapter
from ...systems.infor.models import GLAccount, Supplier
from ...systems.procurify.client import DEFAULT_TIMEZONE, ProcurifyClient
from ...systems.procurify.models import Bill, PurchaseOrder
from . import mapping
from .mapping import ReferenceMap, ReferenceRow

PURCHASE_ORDERS = "procurify_infor_purchase_orders"
AP_INVOICES = "procurify_infor_ap_invoices"
REFERENCES = "procurify_references"


@dataclass(frozen=True)
class PushSettings:
    facility: str
    warehouse: str
    default_item: str
    division: str | None
    cost_centre_dimension: int | None
    zone: ZoneInfo
    lookback_days: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any], product: str) -> PushSettings:
        cost_centres = config.get("procurify_cost_centres")
        if cost_centres is None:
            cost_centres = product == "m3"  # SyteLine's chart has no cost-centre dimension
        return cls(
            facility=str(config.get("procurify_po_facility") or "A01"),
            warehouse=str(config.get("procurify_po_warehouse") or "100"),
            default_item=str(config.get("procurify_default_item") or "NONSTOCK"),
            division=str(config.get("procurify_ap_division") or config.get("divi") or "") or None,
            cost_centre_dimension=int(config.get("procurify_cost_centre_dimension") or 2)
            if cost_centres
            else None,
            zone=ZoneInfo(str(config.get("procurify_timezone") or DEFAULT_TIMEZONE)),
            lookback_days=int(config.get("procurify_reference_lookback_days") or 30),
        )


def infor_master_data(
    adapter: InforAdapter, today: date, lookback_days: int, supplier_numbers: set[str]
) -> tuple[list[Supplier], list[GLAccount]]:
    """Infor suppliers and GL accounts changed in the lookback window, plus the named suppliers.
    The window is read at once: a read per day repeated the suppliers' bank, e-mail and address
    reads for each day, against the tenant's Infor request budget."""
    suppliers: dict[str, Supplier] = {}
    accounts: dict[tuple[int, str], GLAccount] = {}
    if lookback_days > 0:
        first = today - timedelta(days=lookback_days - 1)
        for supplier in adapter.suppliers_changed(first, today):
            suppliers.setdefault(supplier.supplier_id, supplier)
        for account in adapter.gl_accounts_changed(first, today):
            accounts.setdefault((account.dimension, account.account_id), account)
    for number in sorted(supplier_numbers - set(suppliers)):
        found = adapter.supplier(number)
        if found is not None:
            suppliers[found.supplier_id] = found
    return list(suppliers.values()), list(accounts.values())


def load_references(
    procurify: ProcurifyClient, adapter: InforAdapter, settings: PushSettings, today: date | None = None
) -> ReferenceMap:
    vendors = procurify.vendors()
    named = {v.external_id.strip() for v in vendors if v.external_id and v.external_id.strip()}
    suppliers, accounts = infor_master_data(
        adapter, today or datetime.now(UTC).date(), settings.lookback_days, named
    )
    return mapping.align(
        vendors,
        procurify.account_codes(),
        procurify.departments(),
        suppliers,
        accounts,
        cost_centre_dimension=settings.cost_centre_dimension,
    )


def record_references(session: SyncSession, refs: ReferenceMap) -> list[SyncResult]:
    """Keep every pair in the ledger (flow ``procurify_references``) and the audit trail.

    Ledger: one entry per Procurify vendor / account code / department, and per Infor record no one
    in Procurify points at; done with the Infor id when usable, flagged with the outcome otherwise,
    so the push assets read the same alignment (`stored_references`) and a fix in Infor shows as
    soon as alignment runs again. Audit: a pair seen for the first time, or whose outcome changed,
    gets one row (a match ``status``, a difference ``flagged``; no alert: the records that depend on
    it are flagged and alerted themselves). An unchanged pair writes nothing, so daily runs stay quiet.
    """
    results = []
    ledger, tenant, run_id = session.ledger, session.tenant, session.run_id
    for row in refs.rows:
        digest = content_hash({**_details(row), "detail": row.detail})
        current = ledger.get(tenant, REFERENCES, row.source_id)
        if current is not None and current.status != "pending" and current.content_hash == digest:
            continue
        if ledger.claim(tenant, REFERENCES, row.source_id, run_id) is None:
            continue  # another run is aligning this tenant right now
        if row.outcome in mapping.USABLE or row.outcome == "not_checked":
            ledger.complete(
                tenant, REFERENCES, row.source_id, run_id, row.infor_id or "", digest, extra=_details(row)
            )
            action = "status"
        else:
            ledger.flag(tenant, REFERENCES, row.source_id, run_id, _ledger_reason(row), content_hash=digest)
            action = "flagged"
        results.append(
            session.note(
                row.source_id, action, target_id=row.infor_id, reason=_reason(row), details=_details(row)
            )
        )
    return results


def _ledger_reason(row: ReferenceRow) -> str:
    """``<outcome> (<procurify name>): <detail>``, read back by `stored_references`."""
    return f"{row.outcome} ({row.procurify_name or row.infor_name or ''}): {row.detail or ''}"


def stored_references(ledger: Ledger, tenant: str) -> ReferenceMap:
    """The Procurify side of the alignment `record_references` kept in the ledger."""
    rows = []
    for entry in ledger.entries(tenant, REFERENCES):
        kind, marker, procurify_id = entry.source_id.partition("/procurify:")
        if not marker:
            continue  # an Infor record without Procurify counterpart: nothing refers to it
        if entry.status == "done":
            extra = entry.extra
            rows.append(
                ReferenceRow(
                    kind=extra["kind"],
                    outcome=extra["outcome"],
                    procurify_id=procurify_id,
                    procurify_name=extra.get("procurify_name"),
                    infor_id=entry.target_id or None,
                    infor_name=extra.get("infor_name"),
                    matched_by=extra.get("matched_by"),
                )
            )
        elif entry.status == "flagged":
            head, _, detail = (entry.reason or "missing_in_infor (): ").partition(": ")
            outcome, _, name = head.partition(" (")
            rows.append(
                ReferenceRow(
                    kind=kind,  # type: ignore[arg-type]
                    outcome=outcome,  # type: ignore[arg-type]
                    procurify_id=procurify_id,
                    procurify_name=name.removesuffix(")") or None,
                    detail=detail or None,
                )
            )
    return ReferenceMap(tuple(rows))


def _reason(row: ReferenceRow) -> str:
    how = f" by {row.matched_by}" if row.matched_by else ""
    return f"{row.outcome}{how}" + (f": {row.detail}" if row.detail else "")


def _details(row: ReferenceRow) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "outcome": row.outcome,
        "procurify_id": row.procurify_id,
        "procurify_name": row.procurify_name,
        "infor_id": row.infor_id,
        "infor_name": row.infor_name,
        "matched_by": row.matched_by,
    }


def _source_hash(record: PurchaseOrder | Bill) -> str:
    return content_hash(record.model_dump(mode="json"))


class PurchaseOrderPush:
    """Approved Procurify PO -> Infor PO, exactly once."""

    def __init__(
        self, session: SyncSession, adapter: InforAdapter, refs: ReferenceMap, settings: PushSettings
    ) -> None:
        self.session = session
        self.adapter = adapter
        self.refs = refs
        self.settings = settings

    def sync(self, order: PurchaseOrder) -> SyncResult:
        source_id = mapping.po_external_ref(order)
        if not order.approved:
            return self.session.note(source_id, "skipped", reason=f"PO state {order.state}: not approved")
        try:
            new, codings = mapping.purchase_order(
                order,
                self.refs,
                facility=self.settings.facility,
                warehouse=self.settings.warehouse,
                default_item=self.settings.default_item,
                zone=self.settings.zone,
            )
        except ValidationFailed as exc:
            return self.session.flag(source_id, exc.reason, field=exc.field, content_hash=_source_hash(order))
        return self.session.sync(
            source_id,
            content_hash(new.model_dump(mode="json")),
            create=lambda: self.adapter.create_purchase_order(new),
            lookup=lambda: self.adapter.find_purchase_order(new.external_ref),
            extra={
                "procurify_uuid": order.uuid,
                "procurify_number": order.display_number,
                "gl_accounts": [c.gl_account for c in codings],
                "cost_centres": [c.cost_centre for c in codings],
            },
        )


class BillPush:
    """Approved Procurify bill -> Infor AP invoice, exactly once."""

    def __init__(
        self, session: SyncSession, adapter: InforAdapter, refs: ReferenceMap, settings: PushSettings
    ) -> None:
        self.session = session
        self.adapter = adapter
        self.refs = refs
        self.settings = settings

    def sync(self, bill: Bill) -> SyncResult:
        source_id = mapping.bill_record_id(bill)
        try:
            invoice = mapping.ap_invoice(
                bill, self.refs, division=self.settings.division, zone=self.settings.zone
            )
        except ValidationFailed as exc:
            return self.session.flag(source_id, exc.reason, field=exc.field, content_hash=_source_hash(bill))
        return self.session.sync(
            source_id,
            content_hash(invoice.model_dump(mode="json")),
            create=lambda: self.adapter.create_ap_invoice(invoice),
            lookup=lambda: self.adapter.find_ap_invoice(invoice),
            extra={"procurify_uuid": bill.uuid, "invoice_number": invoice.invoice_number},
        )
