"""Infor -> Cin7 Core pushers, one record at a time on ``core.sync.SyncSession`` (no Dagster).

- ``SupplierSync``: matched by vendor id (the configured AdditionalAttribute), else by name, and
  linked on first sight (a name match gets the vendor id written into it); created when missing.
  Every match result is in the audit trail: linked (matched), created (no match) or flagged
  (ambiguous, with the reason); the ledger's extra says ``matched_by`` (vendor_id, name, none).
- ``PurchaseSync``: Infor PO -> purchase header + order lines. A create whose answer was lost is
  found with ``purchaseList?Search=<supplier name>`` and the PO marker in the candidate's Note before
  any second create; a header left without its order gets the order posted then.
- ``InvoiceSync``: Infor AP invoice -> the invoice of the purchase it belongs to
  (``mapping.pick_purchase``); a second POST is prevented by reading the purchase's invoice status.
- ``ChartAlignment``: Infor GL accounts vs Cin7's chart; missing accounts created or flagged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from ...core.errors import ValidationFailed
from ...core.ledger import LedgerEntry
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.cin7.client import Cin7Client
from ...systems.cin7.models import Product, Supplier, SupplierPayload
from ...systems.infor.models import APInvoice, GLAccount, PurchaseOrder
from ...systems.infor.models import Supplier as InforSupplier
from ..kit.dependencies import Dependencies
from ..kit.pushers import PushContext
from .mapping import (
    AlignmentRow,
    Cin7Settings,
    PurchaseCandidate,
    account_payload,
    align_chart,
    invoice_payload,
    match_supplier,
    order_lines,
    order_total,
    pick_purchase,
    po_marker,
    purchase_header,
    purchase_order,
    supplier_changes,
    supplier_payload,
)

SUPPLIERS = "cin7_suppliers"
PURCHASES = "cin7_purchases"
INVOICES = "cin7_invoices"
CHART = "cin7_chart_alignment"


# Suppliers ------------------------------------------------------------------------------------------


class SupplierSync:
    def __init__(self, session: SyncSession, client: Cin7Client, settings: Cin7Settings) -> None:
        self.session = session
        self.client = client
        self.settings = settings
        self._directory: list[Supplier] | None = None
        self._lock = threading.Lock()  # pushers are shared by the push factory's worker threads

    @classmethod
    def of(cls, ctx: PushContext) -> SupplierSync:
        """The pusher of `cin7_suppliers`, from the push factory's context."""
        return cls(ctx.session, ctx.target, Cin7Settings.from_config(ctx.config))

    def directory(self) -> list[Supplier]:
        """All Cin7 suppliers, read once per run (1000 a call) for matching."""
        with self._lock:
            if self._directory is None:
                self._directory = list(self.client.suppliers())
            return self._directory

    def sync(self, supplier: InforSupplier) -> SyncResult:
        source_id = supplier.supplier_id
        try:
            payload = supplier_payload(supplier, self.settings)
        except ValidationFailed as exc:
            return self.session.flag(source_id, exc.reason, field=exc.field)
        digest = content_hash(payload.to_wire())
        entry = self.session.ledger.get(self.session.tenant, SUPPLIERS, source_id)
        if entry is not None and entry.status == "done" and entry.content_hash == digest:
            return self.session.note(source_id, "skipped", target_id=entry.target_id, reason="unchanged")
        link: Callable[[], str] | None = None
        matched_by = entry.extra.get("matched_by") if entry is not None else None
        if entry is None or entry.target_id is None:
            found = match_supplier(supplier, self.directory(), self.settings.vendor_id_attribute)
            if found.how == "ambiguous":
                return self.session.flag(source_id, found.reason, content_hash=digest)
            matched_by = found.how
            if found.target_id is not None:
                target_id, how = found.target_id, found.how
                link = lambda: self._link(target_id, payload, how)  # noqa: E731
        return self.session.sync(
            source_id,
            digest,
            lookup=lambda: self._find(payload),
            update=lambda old_id: self.client.update_supplier(supplier_changes(payload, old_id)).id,
            create=lambda: self._create(payload),
            match=link,  # linked on first sight (audit action "linked"), never created twice
            extra={"name": payload.name, "currency": payload.currency, "matched_by": matched_by},
        )

    def _create(self, payload: SupplierPayload) -> str:
        created = self.client.create_supplier(payload)
        with self._lock:
            if self._directory is not None:
                self._directory.append(created)
        return created.id

    def _link(self, target_id: str, payload: SupplierPayload, how: str) -> str:
        if how == "name":  # store the vendor id, so the next match is by id
            self.client.update_supplier(supplier_changes(payload, target_id))
        return target_id

    def _find(self, payload: SupplierPayload) -> str | None:
        """After a lost answer: the supplier with our exact Name (unique in Cin7) and vendor id."""
        attribute = self.settings.vendor_id_attribute
        for found in self.client.suppliers(name=payload.name):
            same_name = found.name.casefold() == (payload.name or "").casefold()
            if same_name and found.attributes.get(attribute) == payload.attributes[attribute]:
                return found.id
        return None


# Purchases ------------------------------------------------------------------------------------------


class ProductCatalogue:
    """Cin7 products by SKU, kept for the run. The first lookup reads a page of the catalogue (one
    call for up to 1,000 products): when that is the whole catalogue, every SKU is answered from it,
    a missing one included; else a SKU not on it costs a lookup of its own, as before. At 60 calls
    a minute, a run's SKUs one by one were most of a purchase push's time."""

    def __init__(self, client: Cin7Client) -> None:
        self.client = client
        self._by_sku: dict[str, Product | None] = {}
        self._page: dict[str, Product] | None = None  # SKU (Cin7 matches any case) -> product
        self._complete = False
        self._lock = threading.Lock()

    def resolve(self, skus: Iterable[str]) -> dict[str, Product | None]:
        for sku in dict.fromkeys(skus):
            with self._lock:
                if sku in self._by_sku:
                    continue
                if self._page is None:
                    products, self._complete = self.client.product_page()
                    self._page = {product.sku.lower(): product for product in products}
                listed = self._page.get(sku.lower())
                if listed is not None or self._complete:
                    self._by_sku[sku] = listed
                    continue
            product = self.client.product_by_sku(sku)
            with self._lock:
                self._by_sku[sku] = product
        with self._lock:
            return dict(self._by_sku)


class PurchaseSync:
    def __init__(
        self,
        session: SyncSession,
        client: Cin7Client,
        settings: Cin7Settings,
        suppliers: SupplierSync,
        infor_supplier: Callable[[str], InforSupplier | None],
        dependencies: Dependencies,
        products: ProductCatalogue | None = None,
    ) -> None:
        self.session = session
        self.dependencies = dependencies
        self.client = client
        self.settings = settings
        self.suppliers = suppliers
        self.infor_supplier = infor_supplier
        self.products = products or ProductCatalogue(client)

    @classmethod
    def of(cls, ctx: PushContext) -> PurchaseSync:
        settings = Cin7Settings.from_config(ctx.config)
        suppliers = SupplierSync(ctx.session_for(SUPPLIERS), ctx.target, settings)
        return cls(
            ctx.session,
            ctx.target,
            settings,
            suppliers,
            lambda vendor_id: ctx.infor().supplier(vendor_id),
            ctx.dependencies,
        )

    def sync(self, order: PurchaseOrder) -> SyncResult:
        key = order.po_number
        current = self.session.ledger.get(self.session.tenant, PURCHASES, key)
        if order.status != "open" and current is None:
            return self.session.note(key, "skipped", reason=f"purchase order is {order.status} in Infor")
        supplier = self._supplier(key, order.supplier_id)
        if isinstance(supplier, SyncResult):
            return supplier
        cin7_supplier_id, supplier_name = supplier
        try:
            lines = order_lines(
                order, self.products.resolve(line.item_number for line in order.lines), self.settings
            )
        except ValidationFailed as exc:
            return self.session.flag(key, exc.reason, field=exc.field)
        header = purchase_header(order, cin7_supplier_id, self.settings)
        digest = content_hash({"header": header.to_wire(), "lines": [line.to_wire() for line in lines]})

        def create() -> str:
            task_id = self.client.create_purchase(header).id
            self.client.post_order(purchase_order(task_id, order, lines, self.settings))
            return task_id

        def update(task_id: str) -> str:
            # Cin7 takes a new order only while it is DRAFT; an authorised one is flagged (400).
            self.client.post_order(purchase_order(task_id, order, lines, self.settings))
            return task_id

        def lookup() -> str | None:
            task_id = self._find(key, cin7_supplier_id, supplier_name)
            if task_id is not None:
                purchase = self.client.purchase(task_id)
                if purchase is not None and purchase.order and purchase.order.status == "NOT AVAILABLE":
                    # The header committed, its order did not: finish the task instead of a new one.
                    self.client.post_order(purchase_order(task_id, order, lines, self.settings))
            return task_id

        return self.session.sync(
            key,
            digest,
            create=create,
            lookup=lookup,
            update=update,
            extra={
                "supplier_id": order.supplier_id,
                "currency": order.currency,
                "total": str(order_total(lines)),
                "lines": [line.to_wire() for line in lines],
            },
        )

    def _supplier(self, key: str, vendor_id: str) -> tuple[str, str]:
        """The Cin7 supplier (id, name) of the PO's vendor; one not in Cin7 yet (changed on another
        day than its PO) is synced on the spot. Flagged supplier: the PO is flagged too."""

        def sync_now(entry: LedgerEntry | None) -> None:
            supplier = self.infor_supplier(vendor_id)
            if supplier is None:
                raise ValidationFailed(key, "supplier_id", f"supplier {vendor_id} not found in Infor")
            self.suppliers.sync(supplier)

        entry = self.dependencies.resolve(
            key, "supplier_id", SUPPLIERS, vendor_id, sync_now, "its Cin7 supplier"
        )
        return entry.target_id or "", str(entry.extra.get("name") or "")

    def _find(self, po_number: str, cin7_supplier_id: str, supplier_name: str) -> str | None:
        marker = po_marker(po_number)
        ledger, tenant = self.session.ledger, self.session.tenant
        for item in self.client.search_purchases(supplier_name):
            if item.supplier_id != cin7_supplier_id:
                continue
            owner = ledger.find_by_target(tenant, PURCHASES, item.id)
            if owner is not None and owner.source_id != po_number:
                continue
            purchase = self.client.purchase(item.id)
            if purchase is not None and purchase.note == marker:
                return item.id
        return None


# AP invoices ----------------------------------------------------------------------------------------


class InvoiceSync:
    def __init__(
        self,
        session: SyncSession,
        client: Cin7Client,
        settings: Cin7Settings,
        products: ProductCatalogue | None = None,
    ) -> None:
        self.session = session
        self.client = client
        self.settings = settings
        self.products = products or ProductCatalogue(client)
        self._lock = threading.Lock()
        self._reserved: dict[str, str] = {}  # task id -> invoice key, picked in this run

    @classmethod
    def of(cls, ctx: PushContext) -> InvoiceSync:
        return cls(ctx.session, ctx.target, Cin7Settings.from_config(ctx.config))

    def candidates(self, own_key: str) -> list[PurchaseCandidate]:
        """Our purchases with no invoice yet (another invoice's purchase is never taken)."""
        ledger, tenant = self.session.ledger, self.session.tenant
        taken = {
            e.extra.get("task_id")
            for e in ledger.entries(tenant, INVOICES)
            if e.source_id != own_key and e.status in ("done", "pending")
        } | {task for task, key in self._reserved.items() if key != own_key}
        return [
            PurchaseCandidate(
                po_number=e.source_id,
                task_id=e.target_id,
                supplier_id=str(e.extra["supplier_id"]),
                currency=str(e.extra["currency"]),
                total=Decimal(str(e.extra["total"])),
                lines=tuple(e.extra["lines"]),
            )
            for e in ledger.entries(tenant, PURCHASES, "done")
            if e.target_id and e.target_id not in taken and "lines" in e.extra
        ]

    def sync(self, invoice: APInvoice) -> SyncResult:
        key = invoice.invoice_key
        current = self.session.ledger.get(self.session.tenant, INVOICES, key)
        if invoice.status == "cancelled":
            target = current.target_id if current else None
            return self.session.note(key, "skipped", target_id=target, reason="invoice is cancelled in Infor")
        try:
            with self._lock:  # two invoices pushed at once never pick the same purchase
                purchase = pick_purchase(invoice, self.candidates(key), self.settings)
                if purchase is not None:
                    self._reserved[purchase.task_id] = key
            if purchase is None:
                supplier = invoice.supplier_id
                reason = f"supplier {supplier} has no Cin7 purchase awaiting an invoice (not a PO invoice)"
                return self.session.note(key, "skipped", reason=reason)
            accounts = self._inventory_accounts(purchase)
            payload = invoice_payload(invoice, purchase, accounts, self.settings)
        except ValidationFailed as exc:
            return self.session.flag(key, exc.reason, field=exc.field)
        if self.settings.approach == "STOCK":
            task = self.client.purchase(purchase.task_id)
            if task is None or task.stock_received is None or task.stock_received.status != "AUTHORISED":
                return self.session.note(
                    key, "skipped", reason=f"purchase {purchase.po_number}: stock not received in Cin7 yet"
                )

        def lookup() -> str | None:
            task = self.client.purchase(purchase.task_id)
            done = (
                task is not None
                and task.invoice is not None
                and task.invoice.status in ("AUTHORISED", "PAID")
            )
            return purchase.task_id if done else None

        return self.session.sync(
            key,
            content_hash(payload.to_wire()),
            create=lambda: self.client.post_invoice(payload).task_id,
            lookup=lookup,
            update=lambda task_id: self.client.post_invoice(payload).task_id,
            extra={"task_id": purchase.task_id, "po_number": purchase.po_number},
        )

    def _inventory_accounts(self, purchase: PurchaseCandidate) -> dict[str, str]:
        if self.settings.invoice_account:
            return {}
        products = self.products.resolve(line["SKU"] for line in purchase.lines)
        return {p.id: p.inventory_account for p in products.values() if p is not None and p.inventory_account}


# Chart of accounts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartRow:
    """One row of the alignment report: the mapping's row plus what this run did about it."""

    code: str
    infor_name: str
    cin7_name: str | None
    outcome: str  # matching | differing | created | flagged | failed
    reason: str


class ChartAlignment:
    def __init__(self, session: SyncSession, client: Cin7Client, settings: Cin7Settings) -> None:
        self.session = session
        self.client = client
        self.settings = settings

    def run(self, gl_accounts: Iterable[GLAccount]) -> list[ChartRow]:
        chart = {account.code: account.name for account in self.client.accounts()}
        return [self._apply(row, chart) for row in align_chart(gl_accounts, chart, self.settings)]

    def _apply(self, row: AlignmentRow, chart: dict[str, str]) -> ChartRow:
        session = self.session
        if row.status in ("matching", "differing"):
            # The audit has no "matching" action: a skip whose reason and details say which.
            session.note(
                row.code,
                "skipped",
                target_id=row.code,
                reason=f"{row.status}: {row.reason}",
                details={"alignment": row.status},
            )
            return ChartRow(row.code, row.infor_name, row.cin7_name, row.status, row.reason)
        if row.status == "invalid" or self.settings.chart_policy == "flag":
            reason = row.reason if row.status == "invalid" else "missing in Cin7's chart (policy: flag)"
            result = session.flag(row.code, reason)
            return ChartRow(row.code, row.infor_name, None, "flagged", result.reason or reason)
        payload = account_payload(row, self.settings)

        def lookup() -> str | None:
            return row.code if any(a.code == row.code for a in self.client.accounts()) else None

        result = session.sync(
            row.code,
            content_hash(payload.to_wire()),
            create=lambda: self.client.create_account(payload).code,
            lookup=lookup,
        )
        name = row.infor_name if result.action in ("created", "skipped") else None
        outcome = "created" if result.action in ("created", "skipped") else result.action
        return ChartRow(row.code, row.infor_name, name, outcome, result.reason or "created in Cin7")
