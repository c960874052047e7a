"""Cleo pushers, Dagster-free: one class per flow, each syncing one record through `SyncSession`.

Outbound documents (850 per PO, 810 per AR invoice, 997 per 810 received) are uploaded to the
partner's upload folder as files named by document number and ISA control number; that name and
number are the ledger's target id. Cleo has no idempotency, so a lost answer is resolved by listing
the folder for the document's name prefix before uploading again (`lookup`).

Inbound files are first stored in the inbox (file id + checksum; `MailboxPoller`), and only then
deleted from Cleo; `InboundProcessor` turns each stored file into its effect: an 810 becomes an
Infor AP invoice (ledger-tracked by supplier + invoice number, `lookup` in Infor) and a 997 back; a
997 completes or flags the 850 / 810 it acknowledges. Malformed files are flagged with the segment
and element position; their raw text stays in the inbox row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...core.errors import ValidationFailed
from ...core.inbox import Inbox, InboxEvent
from ...core.ledger import LedgerEntry
from ...core.state import State
from ...core.sync import SyncResult, SyncSession, content_hash
from ...systems.cleo.client import CleoClient, MailboxTransport
from ...systems.cleo.models import MailboxFile, TradingPartner
from ...systems.cleo.x12 import (
    Ack997,
    ControlNumbers,
    Envelope,
    Invoice810,
    Party,
    Received,
    X12Error,
    acknowledge,
    acknowledge_broken,
    next_control_number,
    parse_810,
    parse_997,
    transaction_set_of,
    write_810,
    write_850,
    write_997,
)
from ...systems.infor.adapter import InforAdapter
from ...systems.infor.models import ARInvoice, NewAPInvoice, PurchaseOrder, Supplier
from ..kit.inbox import consume, inbox_batch
from .mapping import (
    OrderedPO,
    ap_invoice_from_810,
    ar_invoice_810,
    connection_differences,
    connection_for,
    control_number_of,
    envelope_to,
    file_name,
    file_prefix,
    local_party,
    partner_for_customer,
    partner_for_sender,
    partner_for_supplier,
    purchase_order_850,
    target_id,
    trading_partners,
)

PURCHASE_ORDERS_850 = "cleo_purchase_orders_850"
INVOICES_810 = "cleo_invoices_810"
AP_INVOICES_810_IN = "cleo_ap_invoices_810_in"
ACKS_997_OUT = "cleo_acks_997_out"
ACKS_997_IN = "cleo_acks_997_in"
INBOX_SOURCE = "cleo"
# AK1 functional id of an acknowledged group -> the flow that sent it.
ACKED_FLOWS = {"PO": PURCHASE_ORDERS_850, "IN": INVOICES_810}


@dataclass
class EdiSetup:
    """One tenant's EDI side: its Cleo client, trading partners, interchange id and control numbers."""

    client: CleoClient
    partners: list[TradingPartner]
    local: Party
    control_numbers: ControlNumbers
    usage: str = "P"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def from_config(
        cls, client: CleoClient, config: dict[str, Any], tenant: str, control_numbers: ControlNumbers
    ) -> EdiSetup:
        usage = str(config.get("cleo_usage") or "P")
        return cls(client, trading_partners(config), local_party(config, tenant), control_numbers, usage)

    def transport(self, partner: TradingPartner) -> MailboxTransport:
        return self.client.transport(partner.transport)

    def envelope(self, partner: TradingPartner) -> Envelope:
        return envelope_to(partner, self.local, self.usage)

    def partner(self, alias: str) -> TradingPartner | None:
        return next((p for p in self.partners if p.alias == alias), None)


Render = Callable[[Envelope, int, datetime], str]


def upload_document(
    session: SyncSession,
    edi: EdiSetup,
    partner: TradingPartner,
    *,
    source_id: str,
    transaction_set: str,
    number: str,
    digest: str,
    render: Render,
    rerender: Render | None = None,
    extra: dict[str, Any] | None = None,
) -> SyncResult:
    """Upload one X12 document once: fresh control numbers per attempt, lost answers found again by
    listing the upload folder for ``<set>_<number>_`` (the newest control number wins)."""
    transport = edi.transport(partner)

    def upload(render_with: Render) -> str:
        envelope = edi.envelope(partner)
        control = next_control_number(edi.control_numbers, envelope)
        name = file_name(transaction_set, number, control)
        text = render_with(envelope, control, edi.clock())
        transport.upload(partner.alias, partner.upload_folder, name, text.encode())
        return target_id(name, control)

    def lookup() -> str | None:
        prefix = file_prefix(transaction_set, number)
        found = [
            (control, f.name)
            for f in transport.list(partner.alias, partner.upload_folder)
            if f.name.startswith(prefix) and (control := control_number_of(f.name)) is not None
        ]
        if not found:
            return None
        control, name = max(found)
        return target_id(name, control)

    return session.sync(
        source_id,
        digest,
        create=lambda: upload(render),
        lookup=lookup,
        recreate=(lambda old_id: upload(rerender)) if rerender else None,
        extra={"partner": partner.alias, **(extra or {})},
    )


# Outbound ------------------------------------------------------------------------------------------


class PurchaseOrderPusher:
    """Infor PO -> one 850 in its supplier's upload folder. A changed PO is sent again as a
    replacement (BEG01 05) with new control numbers."""

    def __init__(self, session: SyncSession, edi: EdiSetup) -> None:
        self.session = session
        self.edi = edi

    def sync(self, order: PurchaseOrder) -> SyncResult:
        partner = partner_for_supplier(self.edi.partners, order.supplier_id)
        if partner is None:
            return self.session.note(
                order.po_number, "skipped", reason="supplier is not an EDI trading partner"
            )
        if order.status != "open":
            return self.session.note(order.po_number, "skipped", reason=f"purchase order is {order.status}")
        try:
            document = purchase_order_850(order, partner)
            replacement = purchase_order_850(order, partner, purpose="05")
        except ValidationFailed as exc:
            return self.session.flag(order.po_number, exc.reason, field=exc.field)
        return upload_document(
            self.session,
            self.edi,
            partner,
            source_id=order.po_number,
            transaction_set="850",
            number=order.po_number,
            digest=content_hash({"partner": partner.alias, "document": document}),
            render=lambda env, ctl, at: write_850(document, env, ctl, at),
            rerender=lambda env, ctl, at: write_850(replacement, env, ctl, at),
            extra=OrderedPO.of(order).ledger_extra(),
        )


class InvoicePusher:
    """Infor AR invoice of a customer set up as an EDI partner -> one 810 in its upload folder."""

    def __init__(self, session: SyncSession, edi: EdiSetup, customer_name: Callable[[str], str]) -> None:
        self.session = session
        self.edi = edi
        self.customer_name = customer_name

    def sync(self, invoice: ARInvoice) -> SyncResult:
        key = invoice.invoice_key
        partner = partner_for_customer(self.edi.partners, invoice.customer_id)
        if partner is None:
            return self.session.note(key, "skipped", reason="customer is not an EDI trading partner")
        if invoice.status == "cancelled":
            return self.session.note(key, "skipped", reason="invoice is cancelled")
        try:
            document = ar_invoice_810(invoice, partner, self.customer_name(invoice.customer_id))
        except ValidationFailed as exc:
            return self.session.flag(key, exc.reason, field=exc.field)
        # An 810 sent cannot be changed; a changed invoice is reported, not sent twice.
        return upload_document(
            self.session,
            self.edi,
            partner,
            source_id=key,
            transaction_set="810",
            number=invoice.invoice_number,
            digest=content_hash({"partner": partner.alias, "document": document}),
            render=lambda env, ctl, at: write_810(document, env, ctl, at),
        )


class TradingPartnerSync:
    """Infor supplier marked as EDI partner -> its Cleo connection: created when missing, its partner
    attributes updated when they differ (the differences are in the outcome's reason)."""

    def __init__(self, session: SyncSession, client: CleoClient, local_name: str) -> None:
        self.session = session
        self.client = client
        self.local_name = local_name

    def sync(self, partner: TradingPartner, supplier: Supplier | None) -> SyncResult:
        if partner.supplier_id and supplier is None:
            reason = f"supplier {partner.supplier_id} of trading partner {partner.alias} is not in Infor"
            return self.session.flag(partner.alias, reason, field="supplier_id")
        wanted = connection_for(partner, supplier, self.local_name)
        current = self.client.connection(partner.alias)
        differences = connection_differences(current, wanted) if current else {}

        def create() -> str:
            return self.client.create_connection(wanted).id or partner.alias

        def update(old_id: str) -> str:
            found = self.client.connection(partner.alias)
            if found is None:  # deleted in Cleo since: create it again
                return create()
            if connection_differences(found, wanted):
                self.client.update_connection(found, wanted)
            return found.id or old_id

        result = self.session.sync(
            partner.alias,
            content_hash({"connection": wanted.body(), "differs": sorted(differences)}),
            # A connection set up in Cleo by hand is taken over (and corrected), never duplicated.
            create=lambda: update(current.id or partner.alias) if current else create(),
            lookup=lambda: current.id if current else None,
            update=update,
        )
        if differences:
            shown = "; ".join(
                f"{name}: Cleo {old!r}, Infor {new!r}" for name, (old, new) in differences.items()
            )
            result.reason = f"differed: {shown}"
        return result


# Inbound -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedFile:
    """A file from a partner's download folder, as stored in the inbox."""

    partner: str
    mailbox: str
    folder: str
    name: str
    sha256: str
    content: str

    @property
    def source_id(self) -> str:
        return f"{self.partner}/{self.name}"

    def payload(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_event(cls, event: InboxEvent) -> ReceivedFile:
        return cls(**json.loads(event.payload))


def inbox_event_id(partner: str, name: str, sha256: str) -> str:
    """File id + checksum: a re-listed file is stored once, a new version of a name again."""
    return f"{hashlib.sha256(f'{partner}/{name}'.encode()).hexdigest()[:32]}:{sha256}"


@dataclass
class PollResult:
    stored: list[str] = field(default_factory=list)
    already_stored: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


class MailboxPoller:
    """Moves every file of a partner's download folder into the inbox, deleting each from Cleo only
    once the inbox holds it (a crash in between re-lists a file the inbox already has: no-op)."""

    def __init__(self, inbox: Inbox, tenant: str, edi: EdiSetup) -> None:
        self.inbox = inbox
        self.tenant = tenant
        self.edi = edi

    def poll(self, partner: TradingPartner) -> PollResult:
        result = PollResult()
        transport = self.edi.transport(partner)
        for file in transport.list(partner.alias, partner.download_folder):
            self._take(partner, transport, file, result)
        return result

    def _take(
        self, partner: TradingPartner, transport: MailboxTransport, file: MailboxFile, result: PollResult
    ) -> None:
        content = transport.download(file)
        digest = hashlib.sha256(content).hexdigest()
        received = ReceivedFile(
            partner.alias, file.mailbox, file.folder, file.name, digest, content.decode("utf-8", "replace")
        )
        new = self.inbox.put(
            INBOX_SOURCE, self.tenant, inbox_event_id(partner.alias, file.name, digest), received.payload()
        )
        (result.stored if new else result.already_stored).append(file.name)
        transport.delete(file)
        result.deleted.append(file.name)


class InboundProcessor:
    """One stored file -> its effect; `sessions(flow)` gives this run's SyncSession of a flow."""

    def __init__(
        self,
        sessions: Callable[[str], SyncSession],
        edi: EdiSetup,
        infor: Callable[[], InforAdapter],
        default_division: str,
    ) -> None:
        self.sessions = sessions
        self.edi = edi
        self.infor = infor
        self.default_division = default_division

    def process(self, file: ReceivedFile) -> list[SyncResult]:
        partner = self.edi.partner(file.partner)
        kind = transaction_set_of(file.content)
        if partner is None:
            session = self.sessions(AP_INVOICES_810_IN if kind != "997" else ACKS_997_IN)
            return [session.flag(file.source_id, f"{file.partner} is not a configured trading partner")]
        if kind == "997":
            return self._acks(partner, file)
        if kind == "810":
            return self._invoices(partner, file)
        session = self.sessions(AP_INVOICES_810_IN)
        what = f"an X12 {kind}" if kind else "not X12"
        return [session.flag(file.source_id, f"file is {what}; expected an 810 or a 997")]

    # 810 -> Infor AP invoice, and a 997 back ---------------------------------------------------------

    def _invoices(self, partner: TradingPartner, file: ReceivedFile) -> list[SyncResult]:
        session = self.sessions(AP_INVOICES_810_IN)
        try:
            received = parse_810(file.content)
        except X12Error as error:
            results = [session.flag(file.source_id, f"malformed X12 at {error.location}: {error.reason}")]
            return results + self._send_acks(partner, file, acknowledge_broken(file.content, error))
        results: list[SyncResult] = []
        for item in received:
            results.append(self._invoice(session, partner, file, item))
        return results + self._send_acks(partner, file, acknowledge(received))

    def _invoice(
        self, session: SyncSession, partner: TradingPartner, file: ReceivedFile, item: Received
    ) -> SyncResult:
        if item.error is not None:
            record = f"{file.source_id}/{item.set_control_number}"
            return session.flag(record, f"malformed 810 at {item.error.location}: {item.error.reason}")
        invoice = item.document
        assert isinstance(invoice, Invoice810)
        record = f"{partner.supplier_id or partner.alias}/{invoice.invoice_number}"
        sender = item.interchange.sender
        if partner_for_sender([partner], sender) is None:
            reason = f"sender {sender.qualifier}/{sender.id} is not partner {partner.alias}'s interchange id"
            return session.flag(record, reason)
        if partner.supplier_id is None or self.infor().supplier(partner.supplier_id) is None:
            return session.flag(
                record, f"unknown vendor: partner {partner.alias} is no Infor supplier", field="supplier_id"
            )
        order = self._ordered(invoice.po_number, partner)
        if order is None:
            reason = f"unknown PO {invoice.po_number!r}: no 850 was sent to {partner.alias} for it"
            return session.flag(record, reason, field="BIG04")
        try:
            new = ap_invoice_from_810(invoice, partner, partner.division or self.default_division, order)
        except ValidationFailed as exc:
            return session.flag(record, exc.reason, field=exc.field)
        return session.sync(
            record,
            content_hash(new.model_dump(mode="json")),
            create=lambda: self.infor().create_ap_invoice(new),
            lookup=lambda: self._find(new),
            extra={"partner": partner.alias, "file": file.name, "po_number": order.po_number},
        )

    def _ordered(self, po_number: str, partner: TradingPartner) -> OrderedPO | None:
        if not po_number:
            return None
        session = self.sessions(PURCHASE_ORDERS_850)
        entry = session.ledger.get(session.tenant, PURCHASE_ORDERS_850, po_number)
        if entry is None or entry.target_id is None or entry.extra.get("partner") != partner.alias:
            return None
        return OrderedPO.from_ledger(po_number, entry.extra)

    def _find(self, invoice: NewAPInvoice) -> str | None:
        # The Infor adapter's own lookup (supplier + invoice number); adapters without one cannot tell.
        find = getattr(self.infor(), "find_ap_invoice", None)
        return find(invoice) if find is not None else None

    def _send_acks(self, partner: TradingPartner, file: ReceivedFile, acks: list[Ack997]) -> list[SyncResult]:
        session = self.sessions(ACKS_997_OUT)
        results = []
        for ack in acks:
            number = f"{partner.alias}-{ack.functional_id}{ack.group_control_number}"
            results.append(
                upload_document(
                    session,
                    self.edi,
                    partner,
                    source_id=f"{partner.alias}/{ack.functional_id}/{ack.group_control_number}/{file.sha256[:12]}",
                    transaction_set="997",
                    number=number,
                    digest=content_hash({"ack": ack}),
                    render=lambda env, ctl, at, ack=ack: write_997(ack, env, ctl, at),
                    extra={"acknowledges": file.name, "code": ack.code},
                )
            )
        return results

    # 997 received -> the acknowledged 850 / 810 is completed or flagged ------------------------------

    def _acks(self, partner: TradingPartner, file: ReceivedFile) -> list[SyncResult]:
        session = self.sessions(ACKS_997_IN)
        try:
            received = parse_997(file.content)
        except X12Error as error:
            return [session.flag(file.source_id, f"malformed 997 at {error.location}: {error.reason}")]
        results = []
        for item in received:
            if item.error is not None or not isinstance(item.document, Ack997):
                reason = (
                    f"malformed 997 at {item.error.location}: {item.error.reason}" if item.error else "empty"
                )
                results.append(session.flag(f"{file.source_id}/{item.set_control_number}", reason))
                continue
            results.append(self._ack(session, partner, file, item.document))
        return results

    def _ack(
        self, session: SyncSession, partner: TradingPartner, file: ReceivedFile, ack: Ack997
    ) -> SyncResult:
        source = f"{file.source_id}/{ack.functional_id}{ack.group_control_number}"
        flow = ACKED_FLOWS.get(ack.functional_id)
        entry = self._acknowledged(flow, partner, ack.group_control_number) if flow else None
        if flow is None or entry is None:
            reason = f"997 for group {ack.functional_id} {ack.group_control_number}, which we did not send"
            return session.note(source, "skipped", reason=reason)
        target = self.sessions(flow)
        if ack.accepted:
            _complete_with(target, entry, {"ack": ack.code, "ack_file": file.name})
            target.note(
                entry.source_id, "status", target_id=entry.target_id, reason=f"acknowledged: 997 {ack.code}"
            )
            return session.note(source, "status", target_id=entry.source_id, reason=f"{flow} accepted")
        target.flag(entry.source_id, f"rejected by {partner.alias} (997 {file.name}): {ack.reason()}")
        return session.note(
            source, "status", target_id=entry.source_id, reason=f"{flow} rejected: {ack.reason()}"
        )

    def _acknowledged(self, flow: str, partner: TradingPartner, group_number: str) -> LedgerEntry | None:
        if not group_number.isdigit():
            return None
        suffix = f"#{int(group_number):09d}"
        session = self.sessions(flow)
        for entry in session.ledger.entries(session.tenant, flow):
            if entry.extra.get("partner") == partner.alias and (entry.target_id or "").endswith(suffix):
                return entry
        return None


def _complete_with(session: SyncSession, entry: LedgerEntry, extra: dict[str, Any]) -> None:
    """Add `extra` to a done ledger row (claim + complete: the row's optimistic lock keeps it safe)."""
    claimed = session.ledger.claim(session.tenant, session.flow, entry.source_id, session.run_id)
    if claimed is None:
        return
    if claimed.target_id is None:
        session.ledger.release(session.tenant, session.flow, entry.source_id, session.run_id)
        return
    session.ledger.complete(
        session.tenant,
        session.flow,
        entry.source_id,
        session.run_id,
        claimed.target_id,
        claimed.content_hash,
        extra,
    )


def settle_outcome(results: list[SyncResult]) -> SyncResult | None:
    """One file's outcome for the inbox (`kit.inbox.InboxBatch.settle`): failed or in progress if any
    of its effects was (handed back, retried: every effect is ledger-tracked), else flagged if any was
    (a dead letter for `ml-connector replay`), else done."""
    for wanted in ("failed", "in_progress", "flagged"):
        for result in results:
            if result.action == wanted or (wanted == "in_progress" and result.in_progress):
                return result
    return results[0] if results else None


def consume_inbox(
    inbox_state: State, tenant: str, processor: InboundProcessor, run_id: str
) -> list[SyncResult]:
    """Process the tenant's stored Cleo files outside Dagster (scripts, tests), as the asset does."""
    results: list[SyncResult] = []

    def handle(event: InboxEvent) -> SyncResult | None:
        outcome = processor.process(ReceivedFile.from_event(event))
        results.extend(outcome)
        return settle_outcome(outcome)

    with inbox_batch(inbox_state, INBOX_SOURCE, processor.sessions(AP_INVOICES_810_IN)) as batch:
        consume(batch, handle)
    return results
