"""850 Purchase Order, 810 Invoice and 997 Functional Acknowledgment (004010, contracts/x12.md §3-5).

Writers take a document and return the whole interchange text; parsers take interchange text and
return documents with the envelope data a 997 needs. A parser never raises anything but `X12Error`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from .envelope import Envelope, Interchange, TransactionSet, read_interchange, write_interchange
from .syntax import (
    ELEMENT_INVALID_CODE,
    SEGMENT_MISSING,
    SEGMENT_UNEXPECTED,
    Segment,
    X12Error,
    clean_text,
    element_code,
    element_date8,
    element_decimal,
    element_implied2,
    element_integer,
    element_text,
    format_date8,
    format_decimal,
    format_implied2,
    tokenize,
)

Body = list[tuple[str, list[str | None]]]


@dataclass(frozen=True)
class PartyName:
    """An N1 loop: entity (ST, BT, BY, SE, VN, RI), name, id qualifier + id, address (N3/N4)."""

    entity: str
    name: str = ""
    id_qualifier: str = ""
    id: str = ""
    address: tuple[str, ...] = ()
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True)
class Line:
    """A PO1 or IT1 line: line id, quantity, unit, unit price, buyer/vendor part, description."""

    line_id: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    buyer_part: str = ""
    vendor_part: str = ""
    description: str = ""

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class PurchaseOrder850:
    po_number: str
    po_date: date
    lines: tuple[Line, ...]
    purpose: str = "00"  # BEG01: 00 original, 05 replace
    order_type: str = "SA"  # BEG02: stand-alone
    currency: str = ""
    vendor_number: str = ""  # REF*IA: our id of the supplier
    requested_delivery: date | None = None  # DTM*002
    parties: tuple[PartyName, ...] = ()


@dataclass(frozen=True)
class Charge:
    """A summary SAC: C charge (adds) or A allowance (subtracts)."""

    indicator: str
    code: str
    amount: Decimal
    description: str = ""

    @property
    def signed_amount(self) -> Decimal:
        return -self.amount if self.indicator == "A" else self.amount


@dataclass(frozen=True)
class Invoice810:
    invoice_number: str
    invoice_date: date
    lines: tuple[Line, ...]
    total: Decimal  # TDS01
    po_number: str = ""
    po_date: date | None = None
    currency: str = ""
    vendor_number: str = ""  # REF*IA
    net_due_date: date | None = None  # ITD06
    net_days: int | None = None  # ITD07
    parties: tuple[PartyName, ...] = ()
    charges: tuple[Charge, ...] = ()

    def party(self, entity: str) -> PartyName | None:
        return next((party for party in self.parties if party.entity == entity), None)


@dataclass(frozen=True)
class ElementError:
    position: int  # AK401
    code: str  # AK403
    bad_value: str = ""  # AK404


@dataclass(frozen=True)
class SegmentError:
    segment_id: str  # AK301
    position: int  # AK302, ST = 1
    code: str  # AK304
    elements: tuple[ElementError, ...] = ()


@dataclass(frozen=True)
class SetAck:
    transaction_set_id: str  # AK201
    control_number: str  # AK202
    code: str  # AK501: A, E, R
    errors: tuple[str, ...] = ()  # AK502..
    segment_errors: tuple[SegmentError, ...] = ()


@dataclass(frozen=True)
class Ack997:
    functional_id: str  # AK101
    group_control_number: str  # AK102
    code: str  # AK901: A, E, P, R
    sets_included: int
    sets_received: int
    sets_accepted: int
    sets: tuple[SetAck, ...] = ()
    errors: tuple[str, ...] = ()  # AK905..

    @property
    def accepted(self) -> bool:
        return self.code in ("A", "E")

    def reason(self) -> str:
        """The AK codes in words an operator can act on."""
        parts = [f"AK9 {self.code}"] + [f"AK9 error {code}" for code in self.errors]
        for ack in self.sets:
            parts.append(f"AK2 {ack.transaction_set_id} {ack.control_number}: AK5 {ack.code}")
            parts += [f"AK5 error {code}" for code in ack.errors]
            for seg in ack.segment_errors:
                parts.append(f"AK3 {seg.segment_id} at {seg.position} code {seg.code}")
                parts += [
                    f"AK4 element {el.position:02d} code {el.code} {el.bad_value!r}" for el in seg.elements
                ]
        return "; ".join(parts)


@dataclass
class Received:
    """One transaction set read from an interchange, with where it came from."""

    interchange: Interchange
    functional_id: str
    group_control_number: str
    set_control_number: str
    document: object = None
    error: X12Error | None = None


# Writing ------------------------------------------------------------------------------------------


def _party_segments(party: PartyName, text: int = 60) -> Body:
    body: Body = [("N1", [party.entity, clean_text(party.name, text), party.id_qualifier, party.id])]
    if party.address:
        body.append(("N3", [clean_text(line, 55) for line in party.address[:2]]))
    if party.city or party.state or party.postal_code or party.country:
        body.append(("N4", [clean_text(party.city, 30), party.state, party.postal_code, party.country]))
    return body


def _line_elements(line: Line) -> list[str | None]:
    ids: list[str | None] = []
    for qualifier, value in (("BP", line.buyer_part), ("VP", line.vendor_part)):
        if value:
            ids += [qualifier, clean_text(value, 48)]
    return [line.line_id, format_decimal(line.quantity), line.unit, format_decimal(line.unit_price), "", *ids]


def _line_segments(segment_id: str, line: Line) -> Body:
    body: Body = [(segment_id, _line_elements(line))]
    if line.description:
        body.append(("PID", ["F", "", "", "", clean_text(line.description, 80)]))
    return body


def write_850(order: PurchaseOrder850, envelope: Envelope, control_number: int, at: datetime) -> str:
    if not order.lines:
        raise ValueError(f"purchase order {order.po_number} has no lines; an 850 needs at least one PO1")
    body: Body = [
        ("BEG", [order.purpose, order.order_type, order.po_number, "", format_date8(order.po_date)])
    ]
    if order.currency:
        body.append(("CUR", ["BY", order.currency]))
    if order.vendor_number:
        body.append(("REF", ["IA", order.vendor_number]))
    if order.requested_delivery:
        body.append(("DTM", ["002", format_date8(order.requested_delivery)]))
    for party in order.parties:
        body += _party_segments(party)
    for line in order.lines:
        body += _line_segments("PO1", line)
    quantity = sum((line.quantity for line in order.lines), Decimal(0))
    body.append(("CTT", [str(len(order.lines)), format_decimal(quantity)]))
    return write_interchange(envelope, "850", control_number, body, at)


def write_810(invoice: Invoice810, envelope: Envelope, control_number: int, at: datetime) -> str:
    if not invoice.lines:
        raise ValueError(f"invoice {invoice.invoice_number} has no lines; an 810 needs at least one IT1")
    big: list[str | None] = [
        format_date8(invoice.invoice_date),
        invoice.invoice_number,
        format_date8(invoice.po_date) if invoice.po_date else "",
        invoice.po_number,
    ]
    body: Body = [("BIG", big)]
    if invoice.currency:
        body.append(("CUR", ["SE", invoice.currency]))
    if invoice.vendor_number:
        body.append(("REF", ["IA", invoice.vendor_number]))
    for party in invoice.parties:
        body += _party_segments(party)
    if invoice.net_due_date or invoice.net_days is not None:
        due = format_date8(invoice.net_due_date) if invoice.net_due_date else ""
        days = "" if invoice.net_days is None else str(invoice.net_days)
        body.append(("ITD", ["05", "3", "", "", "", due, days]))
    for line in invoice.lines:
        body += _line_segments("IT1", line)
    body.append(("TDS", [format_implied2(invoice.total)]))
    for charge in invoice.charges:
        sac = [charge.indicator, charge.code, "", "", format_implied2(charge.amount)]
        body.append(("SAC", sac + [""] * 9 + [clean_text(charge.description, 80)]))
    quantity = sum((line.quantity for line in invoice.lines), Decimal(0))
    body.append(("CTT", [str(len(invoice.lines)), format_decimal(quantity)]))
    return write_interchange(envelope, "810", control_number, body, at)


def write_997(ack: Ack997, envelope: Envelope, control_number: int, at: datetime) -> str:
    body: Body = [("AK1", [ack.functional_id, ack.group_control_number])]
    for set_ack in ack.sets:
        body.append(("AK2", [set_ack.transaction_set_id, set_ack.control_number]))
        for seg in set_ack.segment_errors:
            body.append(("AK3", [seg.segment_id, str(seg.position), "", seg.code]))
            for element in seg.elements:
                body.append(("AK4", [str(element.position), "", element.code, element.bad_value[:99]]))
        body.append(("AK5", [set_ack.code, *set_ack.errors[:5]]))
    counts = [str(ack.sets_included), str(ack.sets_received), str(ack.sets_accepted)]
    body.append(("AK9", [ack.code, *counts, *ack.errors[:5]]))
    return write_interchange(envelope, "997", control_number, body, at)


def acknowledge(received: list[Received]) -> list[Ack997]:
    """The 997s for what was read from one interchange: one per group, each set accepted or rejected
    with the AK3/AK4 codes of its error."""
    acks: list[Ack997] = []
    groups: dict[tuple[str, str], list[Received]] = {}
    for item in received:
        groups.setdefault((item.functional_id, item.group_control_number), []).append(item)
    for (functional_id, group_number), items in groups.items():
        sets = tuple(_set_ack(item) for item in items)
        accepted = sum(1 for ack in sets if ack.code == "A")
        code = "A" if accepted == len(sets) else ("R" if accepted == 0 else "P")
        acks.append(Ack997(functional_id, group_number, code, len(sets), len(sets), accepted, sets))
    return acks


def _set_ack(item: Received) -> SetAck:
    transaction_set_id = {"IN": "810", "PO": "850"}.get(item.functional_id, "")
    if item.error is None:
        return SetAck(transaction_set_id, item.set_control_number, "A")
    error = item.error
    elements: tuple[ElementError, ...] = ()
    if error.element_position is not None:
        elements = (ElementError(error.element_position, error.element_code or "7", error.bad_value or ""),)
    segment = SegmentError(error.segment_id, error.set_position or 0, error.segment_code, elements)
    return SetAck(transaction_set_id, item.set_control_number, "R", ("5",), (segment,))


# Reading ------------------------------------------------------------------------------------------


class _Cursor:
    """Walks a transaction set's segments (without ST/SE) in order."""

    def __init__(self, transaction: TransactionSet) -> None:
        self.transaction = transaction
        self.segments = transaction.segments[1:-1]
        self.index = 0

    def peek(self) -> Segment | None:
        return self.segments[self.index] if self.index < len(self.segments) else None

    def take(self, segment_id: str) -> Segment | None:
        segment = self.peek()
        if segment is not None and segment.id == segment_id:
            self.index += 1
            return segment
        return None

    def skip(self, *segment_ids: str) -> None:
        while (segment := self.peek()) is not None and segment.id in segment_ids:
            self.index += 1

    def missing(self, segment_id: str, before: Segment | None) -> X12Error:
        position = before.position if before else self.transaction.segments[-1].position
        return X12Error("is required here", segment_id, position, segment_code=SEGMENT_MISSING)


def _read_sets(
    text: str, functional_id: str, transaction_set_id: str
) -> Iterator[tuple[Received, TransactionSet]]:
    interchange = read_interchange(text)
    for group in interchange.groups:
        if group.functional_id != functional_id:
            raise X12Error(
                f"group {group.functional_id!r} is not {functional_id!r}", "GS", 2, 1, element_code="7"
            )
        for transaction in group.sets:
            if transaction.id != transaction_set_id:
                first = transaction.segments[0]
                raise first.error(1, f"transaction set {transaction.id!r} is not {transaction_set_id}", "7")
            received = Received(interchange, functional_id, group.control_number, transaction.control_number)
            yield received, transaction


def _with_set_position(error: X12Error, transaction: TransactionSet) -> X12Error:
    error.set_position = error.segment_position - transaction.segments[0].position + 1
    return error


def _parties(cursor: _Cursor) -> tuple[PartyName, ...]:
    parties: list[PartyName] = []
    while (n1 := cursor.take("N1")) is not None:
        entity = element_text(n1, 1, 3)
        address: tuple[str, ...] = ()
        city = state = postal = country = ""
        cursor.skip("N2")
        if (n3 := cursor.take("N3")) is not None:
            address = tuple(value for value in n3.elements[:2] if value)
        if (n4 := cursor.take("N4")) is not None:
            city, state, postal, country = n4.get(1), n4.get(2), n4.get(3), n4.get(4)
        cursor.skip("REF", "PER", "DMG")
        parties.append(
            PartyName(entity, n1.get(2), n1.get(3), n1.get(4), address, city, state, postal, country)
        )
    return tuple(parties)


def _line(segment: Segment) -> Line:
    line_id = element_text(segment, 1, 20, required=False)
    quantity = element_decimal(segment, 2)
    unit = element_text(segment, 3, 2)
    price = element_decimal(segment, 4)
    ids: dict[str, str] = {}
    for number in range(6, len(segment.elements) + 1, 2):
        qualifier, value = segment.get(number), segment.get(number + 1)
        if qualifier and not value:
            raise segment.error(number + 1, f"product id for qualifier {qualifier!r} is missing", "1")
        ids.setdefault(qualifier, value)
    assert quantity is not None and price is not None
    return Line(line_id, quantity, unit, price, ids.get("BP", ""), ids.get("VP", ""))


def _parse_810_set(transaction: TransactionSet) -> Invoice810:
    cursor = _Cursor(transaction)
    big = cursor.take("BIG")
    if big is None:
        raise cursor.missing("BIG", cursor.peek())
    invoice_date = element_date8(big, 1)
    number = element_text(big, 2, 22)
    po_date = element_date8(big, 3, required=False)
    po_number = element_text(big, 4, 22, required=False)
    cursor.skip("NTE")
    currency = ""
    if (cur := cursor.take("CUR")) is not None:
        currency = element_text(cur, 2, 3)
    vendor_number = ""
    while (ref := cursor.take("REF")) is not None:
        if ref.get(1) == "IA":
            vendor_number = element_text(ref, 2, 30)
    cursor.skip("YNQ", "PER")
    parties = _parties(cursor)
    net_due: date | None = None
    net_days: int | None = None
    while (itd := cursor.take("ITD")) is not None:
        net_due = element_date8(itd, 6, required=False) or net_due
        if itd.get(7):
            net_days = element_integer(itd, 7)
    cursor.skip("DTM", "FOB", "PID", "MEA", "PWK", "PKG", "L7", "BAL", "INC", "PAM")
    lines: list[Line] = []
    while (it1 := cursor.take("IT1")) is not None:
        line = _line(it1)
        description = ""
        while (segment := cursor.peek()) is not None and segment.id not in ("IT1", "TDS"):
            cursor.index += 1
            if segment.id == "PID" and not description:
                description = element_text(segment, 5, 80, required=False)
        lines.append(Line(**{**line.__dict__, "description": description}))
    tds = cursor.take("TDS")
    if tds is None:
        raise cursor.missing("TDS", cursor.peek())
    total = element_implied2(tds, 1)
    assert total is not None
    cursor.skip("TXI", "CAD", "AMT")
    charges: list[Charge] = []
    while (sac := cursor.take("SAC")) is not None:
        indicator = element_code(sac, 1, ("A", "C", "N"))
        amount = element_implied2(sac, 5, required=False) or Decimal(0)
        if indicator != "N":
            charges.append(Charge(indicator, sac.get(2), amount, sac.get(15)))
        cursor.skip("TXI")
    cursor.skip("ISS")
    ctt = cursor.take("CTT")
    if ctt is not None and element_integer(ctt, 1) != len(lines):
        raise ctt.error(
            1, f"CTT01 says {ctt.get(1)} lines, the invoice has {len(lines)}", ELEMENT_INVALID_CODE
        )
    if (extra := cursor.peek()) is not None:
        raise X12Error("is not expected here", extra.id, extra.position, segment_code=SEGMENT_UNEXPECTED)
    if not lines:
        raise cursor.missing("IT1", tds)
    expected = sum((line.amount for line in lines), Decimal(0)) + sum(
        (charge.signed_amount for charge in charges), Decimal(0)
    )
    if expected.quantize(Decimal("0.01")) != total:
        raise tds.error(1, f"total {total} differs from lines plus charges {expected:.2f}", "7")
    return Invoice810(
        number,
        invoice_date or date.min,
        tuple(lines),
        total,
        po_number,
        po_date,
        currency,
        vendor_number,
        net_due,
        net_days,
        parties,
        tuple(charges),
    )


def parse_810(text: str) -> list[Received]:
    """Every 810 in an interchange. An envelope error raises; an error inside one set is kept on its
    `Received` (the others still parse), so each set can be accepted or rejected on its own."""
    found: list[Received] = []
    for received, transaction in _read_sets(text, "IN", "810"):
        try:
            received.document = _parse_810_set(transaction)
        except X12Error as error:
            received.error = _with_set_position(error, transaction)
        found.append(received)
    return found


def _parse_997_set(transaction: TransactionSet, component: str) -> Ack997:
    cursor = _Cursor(transaction)
    ak1 = cursor.take("AK1")
    if ak1 is None:
        raise cursor.missing("AK1", cursor.peek())
    functional_id = element_text(ak1, 1, 2)
    group_number = element_text(ak1, 2, 9)
    sets: list[SetAck] = []
    while (ak2 := cursor.take("AK2")) is not None:
        segment_errors: list[SegmentError] = []
        while (ak3 := cursor.take("AK3")) is not None:
            elements: list[ElementError] = []
            while (ak4 := cursor.take("AK4")) is not None:
                position = ak4.get(1).split(component)[0]
                elements.append(
                    ElementError(int(position) if position.isdigit() else 0, ak4.get(3), ak4.get(4))
                )
            position = ak3.get(2)
            segment_errors.append(
                SegmentError(
                    ak3.get(1), int(position) if position.isdigit() else 0, ak3.get(4), tuple(elements)
                )
            )
        ak5 = cursor.take("AK5")
        if ak5 is None:
            raise cursor.missing("AK5", cursor.peek())
        code = element_code(ak5, 1, ("A", "E", "M", "R", "W", "X"))
        errors = tuple(value for value in ak5.elements[1:] if value)
        sets.append(SetAck(ak2.get(1), ak2.get(2), code, errors, tuple(segment_errors)))
    ak9 = cursor.take("AK9")
    if ak9 is None:
        raise cursor.missing("AK9", cursor.peek())
    code = element_code(ak9, 1, ("A", "E", "M", "P", "R", "W", "X"))
    counts = [element_integer(ak9, number) for number in (2, 3, 4)]
    if (extra := cursor.peek()) is not None:
        raise X12Error("is not expected here", extra.id, extra.position, segment_code=SEGMENT_UNEXPECTED)
    errors = tuple(value for value in ak9.elements[4:] if value)
    return Ack997(functional_id, group_number, code, *counts, tuple(sets), errors)


def parse_997(text: str) -> list[Received]:
    """Every 997 in an interchange; errors as in `parse_810`."""
    found: list[Received] = []
    for received, transaction in _read_sets(text, "FA", "997"):
        try:
            received.document = _parse_997_set(transaction, received.interchange.delimiters.component)
        except X12Error as error:
            received.error = _with_set_position(error, transaction)
        found.append(received)
    return found


def transaction_set_of(text: str) -> str:
    """ST01 of the first set ("810", "997"...), read as leniently as possible so a malformed file
    still goes to the right flow (which then reports what is wrong with it); "" for non-X12."""
    try:
        _, segments = tokenize(text)
    except X12Error:
        match = re.search(r"ST[^A-Za-z0-9 ](\d{3})", text)
        return match.group(1) if match else ""
    return next((segment.get(1) for segment in segments if segment.id == "ST"), "")


def acknowledge_broken(text: str, error: X12Error) -> list[Ack997]:
    """Rejecting 997s for an interchange whose envelope is broken, as far as its GS and ST segments
    can still be read; [] when not even those can (nothing to address a 997 to)."""
    try:
        _, segments = tokenize(text)
    except X12Error:
        return []
    groups: list[tuple[str, str, list[Segment]]] = []
    for segment in segments:
        if segment.id == "GS" and segment.get(1) and segment.get(6).isdigit():
            groups.append((segment.get(1), segment.get(6), []))
        elif segment.id == "ST" and groups:
            groups[-1][2].append(segment)
    acks: list[Ack997] = []
    for functional_id, number, starts in groups:
        sets: list[SetAck] = []
        for index, start in enumerate(starts):
            end = starts[index + 1].position if index + 1 < len(starts) else len(segments) + 1
            errors: tuple[SegmentError, ...] = ()
            if start.position <= error.segment_position < end:
                elements = ()
                if error.element_position is not None:
                    elements = (
                        ElementError(
                            error.element_position, error.element_code or "7", error.bad_value or ""
                        ),
                    )
                position = error.segment_position - start.position + 1
                errors = (SegmentError(error.segment_id, position, error.segment_code, elements),)
            sets.append(SetAck(start.get(1), start.get(2), "R", ("5",), errors))
        acks.append(Ack997(functional_id, number, "R", len(sets), len(sets), 0, tuple(sets), ("5",)))
    return acks
