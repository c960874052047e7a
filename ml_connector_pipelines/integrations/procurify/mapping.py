"""Pure mappings for Procurify -> Infor: reference matching, and PO / bill -> Infor write models.

Reference data is matched first (DESIGN.md: "vendors, GL account codes, departments aligned"):

- Procurify vendors <-> Infor suppliers: by ``external_id`` equal to the supplier number, then by
  code (the external id typed loosely: case and surrounding blanks ignored), then by name (case and
  spacing ignored; only a unique name counts, two suppliers of that name are ``ambiguous``).
- Procurify account codes <-> Infor GL accounts (M3 dimension 1 / the SyteLine chart): by code.
- Procurify departments <-> Infor cost centres (M3 dimension ``procurify_cost_centre_dimension``,
  default 2): by ``external_id``, then code (loosely), then department name = cost centre description.
  SyteLine has no cost-centre dimension: with ``procurify_cost_centres: false`` (the SyteLine default)
  departments are listed as ``not_checked`` and never block a record.

Each pair gives one `ReferenceRow`: ``match``, ``differs`` (matched, but the name or description
differs: still usable), ``missing_in_infor``, ``missing_in_procurify``, ``ambiguous``, ``not_checked``.
A PO or bill naming a vendor, account code or department without a usable counterpart raises
`ValidationFailed` naming the record and the field, so nothing is sent for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from ...core.errors import ValidationFailed
from ...systems.infor.models import (
    GLAccount,
    NewAPInvoice,
    NewAPInvoiceLine,
    NewPurchaseOrder,
    PurchaseOrderLine,
    Supplier,
)
from ...systems.procurify.models import Account, AccountCode, Bill, Department, PurchaseOrder, Vendor

Outcome = Literal["match", "differs", "missing_in_infor", "missing_in_procurify", "ambiguous", "not_checked"]
Kind = Literal["vendor", "account_code", "department"]
USABLE: frozenset[str] = frozenset({"match", "differs"})
EXTERNAL_REF_PREFIX = "PFY-"  # an Infor PO's YRE1 "PFY-<procurify_PO>": found again after a lost answer
T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the Infor side of a pair


@dataclass(frozen=True)
class ReferenceRow:
    kind: Kind
    outcome: Outcome
    procurify_id: str | None = None
    procurify_name: str | None = None
    infor_id: str | None = None
    infor_name: str | None = None
    matched_by: str | None = None  # "external_id", "code" or "name"
    detail: str | None = None

    @property
    def source_id(self) -> str:
        """The audit trail's record id: the Procurify side, else the Infor side."""
        side = f"procurify:{self.procurify_id}" if self.procurify_id is not None else f"infor:{self.infor_id}"
        return f"{self.kind}/{side}"


@dataclass(frozen=True)
class ReferenceMap:
    rows: tuple[ReferenceRow, ...]
    _index: dict[tuple[str, str], ReferenceRow] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for row in self.rows:
            if row.procurify_id is not None:
                self._index[(row.kind, row.procurify_id)] = row

    def row(self, kind: Kind, procurify_id: str) -> ReferenceRow | None:
        return self._index.get((kind, procurify_id))

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = defaultdict(int)
        for row in self.rows:
            counted[f"{row.kind}:{row.outcome}"] += 1
        return dict(sorted(counted.items()))


def _loose(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()


def _match(
    kind: Kind,
    procurify: Sequence[T],
    infor: Sequence[I],
    *,
    procurify_id: Callable[[T], str],
    procurify_name: Callable[[T], str],
    procurify_code: Callable[[T], str | None],
    infor_id: Callable[[I], str],
    infor_name: Callable[[I], str],
    by_name: bool,
    expected_in_procurify: Callable[[I], bool] = lambda item: True,
) -> list[ReferenceRow]:
    """Match by exact code, then loose code, then (optionally) unique loose name; then both leftovers."""
    exact = {infor_id(item): item for item in infor}
    loose: dict[str, list[I]] = defaultdict(list)
    names: dict[str, list[I]] = defaultdict(list)
    for item in infor:
        loose[_loose(infor_id(item))].append(item)
        names[_loose(infor_name(item))].append(item)
    rows: list[ReferenceRow] = []
    matched: set[str] = set()
    for record in procurify:
        code, name = procurify_code(record), procurify_name(record)
        base = {"kind": kind, "procurify_id": procurify_id(record), "procurify_name": name}
        found: I | None = None
        how = None
        candidates: list[I] = []
        if code and code in exact:
            found, how = exact[code], "external_id" if kind != "account_code" else "code"
        elif code and len(loose.get(_loose(code), [])) == 1:
            found, how = loose[_loose(code)][0], "code"
        elif by_name:
            candidates = names.get(_loose(name), [])
            if len(candidates) == 1:
                found, how = candidates[0], "name"
        if found is None:
            if len(candidates) > 1:
                ids = ", ".join(sorted(infor_id(c) for c in candidates))
                rows.append(ReferenceRow(**base, outcome="ambiguous", detail=f"Infor has several: {ids}"))
            else:
                looked = f"code {code!r}" if code else "no code"
                rows.append(
                    ReferenceRow(
                        **base,
                        outcome="missing_in_infor",
                        detail=f"no Infor counterpart ({looked}{', name' if by_name else ''})",
                    )
                )
            continue
        matched.add(infor_id(found))
        differs = _loose(infor_name(found)) != _loose(name)
        rows.append(
            ReferenceRow(
                **base,
                outcome="differs" if differs else "match",
                infor_id=infor_id(found),
                infor_name=infor_name(found),
                matched_by=how,
                detail=f"name {name!r} in Procurify, {infor_name(found)!r} in Infor" if differs else None,
            )
        )
    for item in infor:
        if infor_id(item) not in matched and expected_in_procurify(item):
            rows.append(
                ReferenceRow(
                    kind=kind,
                    outcome="missing_in_procurify",
                    infor_id=infor_id(item),
                    infor_name=infor_name(item),
                    detail="in Infor, not in Procurify",
                )
            )
    return rows


def match_vendors(vendors: Sequence[Vendor], suppliers: Sequence[Supplier]) -> list[ReferenceRow]:
    return _match(
        "vendor",
        vendors,
        suppliers,
        procurify_id=lambda v: str(v.id),
        procurify_name=lambda v: v.name,
        procurify_code=lambda v: (v.external_id or "").strip() or None,
        infor_id=lambda s: s.supplier_id,
        infor_name=lambda s: s.name,
        by_name=True,
        expected_in_procurify=lambda s: s.status == "active",
    )


def match_account_codes(codes: Sequence[AccountCode], gl_accounts: Sequence[GLAccount]) -> list[ReferenceRow]:
    return _match(
        "account_code",
        codes,
        [a for a in gl_accounts if a.dimension == 1],
        procurify_id=lambda c: c.code,
        procurify_name=lambda c: c.description,
        procurify_code=lambda c: c.code,
        infor_id=lambda a: a.account_id,
        infor_name=lambda a: a.description,
        by_name=False,
    )


def match_departments(
    departments: Sequence[Department], gl_accounts: Sequence[GLAccount], *, dimension: int | None
) -> list[ReferenceRow]:
    """``dimension=None``: Infor has no cost centres here (SyteLine); departments are not checked."""
    if dimension is None:
        return [
            ReferenceRow(
                kind="department",
                outcome="not_checked",
                procurify_id=str(d.id),
                procurify_name=d.name,
                detail="this Infor product has no cost-centre dimension",
            )
            for d in departments
        ]
    return _match(
        "department",
        departments,
        [a for a in gl_accounts if a.dimension == dimension],
        procurify_id=lambda d: str(d.id),
        procurify_name=lambda d: d.name,
        procurify_code=lambda d: d.external_id,
        infor_id=lambda a: a.account_id,
        infor_name=lambda a: a.description,
        by_name=True,
    )


def align(
    vendors: Sequence[Vendor],
    codes: Sequence[AccountCode],
    departments: Sequence[Department],
    suppliers: Sequence[Supplier],
    gl_accounts: Sequence[GLAccount],
    *,
    cost_centre_dimension: int | None = 2,
) -> ReferenceMap:
    return ReferenceMap(
        tuple(
            match_vendors(vendors, suppliers)
            + match_account_codes(codes, gl_accounts)
            + match_departments(departments, gl_accounts, dimension=cost_centre_dimension)
        )
    )


# Records ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coding:
    """One line's Infor accounting: GL account and (when checked) cost centre."""

    gl_account: str
    cost_centre: str | None


def _usable(
    refs: ReferenceMap, kind: Kind, procurify_id: str, record_id: str, field_name: str
) -> ReferenceRow:
    row = refs.row(kind, procurify_id)
    if row is None:
        raise ValidationFailed(
            record_id, field_name, f"{kind.replace('_', ' ')} {procurify_id} is not in Procurify's list"
        )
    if row.outcome == "not_checked":
        return row
    if row.outcome not in USABLE or row.infor_id is None:
        raise ValidationFailed(
            record_id,
            field_name,
            f"{kind.replace('_', ' ')} {row.procurify_name or procurify_id}: {row.outcome} ({row.detail})",
        )
    return row


def supplier_for(refs: ReferenceMap, vendor_id: int, record_id: str) -> str:
    row = _usable(refs, "vendor", str(vendor_id), record_id, "vendor")
    assert row.infor_id is not None
    return row.infor_id


def coding_for(refs: ReferenceMap, account: Account, record_id: str, field_name: str) -> Coding:
    code = _usable(refs, "account_code", account.account_code.code, record_id, f"{field_name}.account_code")
    department = _usable(
        refs, "department", str(account.department.id), record_id, f"{field_name}.department"
    )
    assert code.infor_id is not None
    return Coding(code.infor_id, department.infor_id if department.outcome != "not_checked" else None)


def _local_date(moment: datetime | None, zone: ZoneInfo) -> date | None:
    return moment.astimezone(zone).date() if moment is not None else None


def po_external_ref(order: PurchaseOrder) -> str:
    return f"{EXTERNAL_REF_PREFIX}{order.procurify_po}"


def purchase_order(
    order: PurchaseOrder,
    refs: ReferenceMap,
    *,
    facility: str | None,
    warehouse: str | None,
    default_item: str,
    zone: ZoneInfo,
) -> tuple[NewPurchaseOrder, tuple[Coding, ...]]:
    """A Procurify PO as an Infor PO, and each line's GL coding (validated: Infor has it).

    The item is the line's SKU, else ``default_item`` (a non-stock purchase item [I]). The order
    date is the PO date in the tenant's time zone. The codings go into the ledger: PPS370MI's lines
    take no accounting dimensions, so M3 codes the PO lines by its own rules.
    """
    record_id = order.display_number
    if not order.lines:
        raise ValidationFailed(record_id, "order_items", "the PO has no lines")
    supplier = supplier_for(refs, order.vendor.id, record_id)
    codings = tuple(
        coding_for(refs, line.account, record_id, f"order_items[{i}]") for i, line in enumerate(order.lines)
    )
    lines = []
    for index, line in enumerate(order.lines):
        if line.quantity <= 0:
            raise ValidationFailed(
                record_id, f"order_items[{index}].quantity", f"{line.quantity} is not positive"
            )
        if line.price < 0:
            raise ValidationFailed(record_id, f"order_items[{index}].price", f"{line.price} is negative")
        lines.append(
            PurchaseOrderLine(
                line_number=line.line_number or index + 1,
                item_number=line.sku.strip() or default_item,
                description=line.name,
                quantity=line.quantity,
                unit_price=line.price,
            )
        )
    order_date = _local_date(order.date or order.last_modified, zone)
    assert order_date is not None
    new = NewPurchaseOrder(
        supplier_id=supplier,
        order_date=order_date,
        currency=order.currency.name.upper(),
        facility=facility,
        warehouse=warehouse,
        external_ref=po_external_ref(order),
        lines=tuple(lines),
    )
    return new, codings


def bill_record_id(bill: Bill) -> str:
    return f"bill/{bill.id}"


def ap_invoice(bill: Bill, refs: ReferenceMap, *, division: str | None, zone: ZoneInfo) -> NewAPInvoice:
    """A Procurify bill as an Infor AP invoice: one cost line per cost allocation (GL + cost centre).

    The amount is the sum of the allocations (decimal strings), not the bill's float total.
    """
    record_id = bill_record_id(bill)
    if not division:
        raise ValidationFailed(
            record_id, "division", "tenant config procurify_ap_division (or divi) is not set"
        )
    if not bill.invoice_number.strip():
        raise ValidationFailed(record_id, "invoice_number", "the bill has no invoice number")
    invoice_date = _local_date(bill.invoice_date, zone)
    if invoice_date is None:
        raise ValidationFailed(record_id, "invoice_date", "the bill has no invoice date")
    supplier = supplier_for(refs, bill.vendor.id, record_id)
    lines: list[NewAPInvoiceLine] = []
    for index, item in enumerate(bill.items):
        if not item.cost_allocations:
            raise ValidationFailed(record_id, f"items[{index}].cost_allocations", "the line has no GL coding")
        for k, allocation in enumerate(item.cost_allocations):
            coding = coding_for(refs, allocation.budget, record_id, f"items[{index}].cost_allocations[{k}]")
            lines.append(
                NewAPInvoiceLine(
                    amount=allocation.amount,
                    gl_account=coding.gl_account,
                    cost_centre=coding.cost_centre,
                    description=item.description,
                )
            )
    if not lines:
        raise ValidationFailed(record_id, "items", "the bill has no lines")
    total = sum((line.amount for line in lines), Decimal(0))
    if total <= 0:
        raise ValidationFailed(record_id, "items", f"the lines total {total}, not a positive amount")
    return NewAPInvoice(
        division=division,
        supplier_id=supplier,
        invoice_number=bill.invoice_number.strip(),
        invoice_date=invoice_date,
        due_date=_local_date(bill.due_date, zone),
        currency=bill.currency.name.upper(),
        amount=total,
        lines=tuple(lines),
    )
