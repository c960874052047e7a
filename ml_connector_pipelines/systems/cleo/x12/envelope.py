"""ISA/GS/ST envelopes (contracts/x12.md §2): writing one with fresh control numbers, and reading one.

Control numbers come from an injected `ControlNumbers` callable, keyed per sender/receiver pair, which
must never hand out a number twice (the state store's atomic sequence in production). One number
serves as ISA13, GS06 and ST02 of an interchange: unique per pair for all three at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .syntax import (
    SEGMENT_MISSING,
    SEGMENT_UNEXPECTED,
    Delimiters,
    Segment,
    X12Error,
    element_integer,
    format_segment,
    tokenize,
)

ControlNumbers = Callable[[str], int]
MAX_CONTROL_NUMBER = 999_999_999
VERSION_4010 = "00401"
GS_VERSION_4010 = "004010"
FUNCTIONAL_IDS = {"850": "PO", "810": "IN", "997": "FA"}


@dataclass(frozen=True)
class Party:
    """An interchange party: ISA05/ISA06 (qualifier + id) and its GS02/GS03 application code."""

    qualifier: str
    id: str
    application_code: str | None = None

    @property
    def code(self) -> str:
        return self.application_code or self.id

    def key(self) -> str:
        return f"{self.qualifier}:{self.id}"


@dataclass(frozen=True)
class Envelope:
    sender: Party
    receiver: Party
    usage: str = "P"  # ISA15: P production, T test
    delimiters: Delimiters = Delimiters()

    def reply(self) -> Envelope:
        """The envelope for an answer: sender and receiver swapped, same delimiters and usage."""
        return Envelope(self.receiver, self.sender, self.usage, self.delimiters)


def control_key(sender: Party, receiver: Party) -> str:
    return f"x12:{sender.key()}>{receiver.key()}"


def next_control_number(counter: ControlNumbers, envelope: Envelope) -> int:
    number = counter(control_key(envelope.sender, envelope.receiver))
    if not 0 < number <= MAX_CONTROL_NUMBER:
        raise ValueError(f"control number {number} is outside 1..{MAX_CONTROL_NUMBER}")
    return number


def write_interchange(
    envelope: Envelope,
    transaction_set_id: str,
    control_number: int,
    body: Sequence[tuple[str, Sequence[str | None]]],
    at: datetime,
) -> str:
    """ISA, GS, ST, `body` (segments after ST), SE, GE, IEA; one segment per line for readability."""
    d = envelope.delimiters
    sender, receiver = envelope.sender, envelope.receiver
    for party in (sender, receiver):
        if not 1 <= len(party.id) <= 15 or not 1 <= len(party.code) <= 15:
            raise ValueError(f"interchange id {party.id!r} must be 1 to 15 characters")
    isa = [
        "00",
        " " * 10,
        "00",
        " " * 10,
        sender.qualifier.ljust(2),
        sender.id.ljust(15),
        receiver.qualifier.ljust(2),
        receiver.id.ljust(15),
        at.strftime("%y%m%d"),
        at.strftime("%H%M"),
        "U",
        VERSION_4010,
        f"{control_number:09d}",
        "0",
        envelope.usage,
        d.component,
    ]
    # ISA16 is the component separator itself, so format_segment's delimiter check cannot apply.
    lines = [d.element.join(["ISA", *isa]) + d.segment]
    functional_id = FUNCTIONAL_IDS[transaction_set_id]
    set_control = f"{control_number:04d}"
    lines.append(
        format_segment(
            "GS",
            [
                functional_id,
                sender.code,
                receiver.code,
                at.strftime("%Y%m%d"),
                at.strftime("%H%M"),
                str(control_number),
                "X",
                GS_VERSION_4010,
            ],
            d,
        )
    )
    lines.append(format_segment("ST", [transaction_set_id, set_control], d))
    lines.extend(format_segment(segment_id, elements, d) for segment_id, elements in body)
    lines.append(format_segment("SE", [str(len(body) + 2), set_control], d))
    lines.append(format_segment("GE", ["1", str(control_number)], d))
    lines.append(format_segment("IEA", ["1", f"{control_number:09d}"], d))
    return "\n".join(lines) + "\n"


# Reading ------------------------------------------------------------------------------------------


@dataclass
class TransactionSet:
    id: str  # ST01
    control_number: str  # ST02
    segments: list[Segment]  # ST .. SE inclusive

    def set_position(self, segment: Segment) -> int:
        """Position of `segment` in the set, ST = 1 (AK302)."""
        return segment.position - self.segments[0].position + 1


@dataclass
class FunctionalGroup:
    functional_id: str  # GS01
    sender_code: str
    receiver_code: str
    control_number: str  # GS06
    sets: list[TransactionSet] = field(default_factory=list)


@dataclass
class Interchange:
    delimiters: Delimiters
    sender: Party
    receiver: Party
    control_number: str  # ISA13
    usage: str
    groups: list[FunctionalGroup] = field(default_factory=list)

    @property
    def envelope(self) -> Envelope:
        return Envelope(self.sender, self.receiver, self.usage, self.delimiters)


def read_interchange(text: str) -> Interchange:
    """Tokenize and check the envelope: nesting, counts and control numbers of SE, GE and IEA."""
    delimiters, segments = tokenize(text)
    isa = segments[0]
    if len(isa.elements) != 16:
        raise isa.error(None, f"ISA has {len(isa.elements)} elements, expected 16")
    if isa.get(12) != VERSION_4010:
        raise isa.error(12, f"version {isa.get(12)!r} is not {VERSION_4010}", "7")
    if not isa.get(13).isdigit() or len(isa.get(13)) != 9:
        raise isa.error(13, "the interchange control number is 9 digits", "6")
    interchange = Interchange(
        delimiters=delimiters,
        sender=Party(isa.get(5).strip(), isa.get(6).strip()),
        receiver=Party(isa.get(7).strip(), isa.get(8).strip()),
        control_number=isa.get(13),
        usage=isa.get(15),
    )
    group: FunctionalGroup | None = None
    current: TransactionSet | None = None
    closed = False
    for segment in segments[1:]:
        if closed:
            raise X12Error("segment after IEA", segment.id, segment.position, segment_code=SEGMENT_UNEXPECTED)
        if segment.id == "GS":
            if group is not None:
                raise X12Error("GS before the previous group's GE", "GS", segment.position, segment_code="2")
            group = FunctionalGroup(segment.get(1), segment.get(2), segment.get(3), segment.get(6))
            if not group.control_number.isdigit():
                raise segment.error(6, "the group control number is digits", "6")
            interchange.groups.append(group)
        elif segment.id == "ST":
            if group is None or current is not None:
                raise X12Error(
                    "ST outside a group or inside another set", "ST", segment.position, segment_code="2"
                )
            if not 4 <= len(segment.get(2)) <= 9:
                raise segment.error(2, "the set control number is 4 to 9 characters", "4")
            current = TransactionSet(segment.get(1), segment.get(2), [segment])
        elif segment.id == "SE":
            if current is None or group is None:
                raise X12Error("SE without ST", "SE", segment.position, segment_code=SEGMENT_UNEXPECTED)
            current.segments.append(segment)
            count = element_integer(segment, 1)
            if count != len(current.segments):
                raise segment.error(
                    1, f"SE01 says {count} segments, the set has {len(current.segments)}", "7"
                )
            if segment.get(2) != current.control_number:
                raise segment.error(2, f"SE02 differs from ST02 {current.control_number!r}", "7")
            group.sets.append(current)
            current = None
        elif segment.id == "GE":
            if group is None or current is not None:
                raise X12Error("GE without GS, or inside a set", "GE", segment.position, segment_code="2")
            if element_integer(segment, 1) != len(group.sets):
                raise segment.error(1, f"GE01 differs from the {len(group.sets)} sets in the group", "7")
            if segment.get(2) != group.control_number:
                raise segment.error(2, f"GE02 differs from GS06 {group.control_number!r}", "7")
            group = None
        elif segment.id == "IEA":
            if group is not None:
                raise X12Error("IEA before GE", "IEA", segment.position, segment_code=SEGMENT_MISSING)
            if element_integer(segment, 1) != len(interchange.groups):
                raise segment.error(1, f"IEA01 differs from the {len(interchange.groups)} groups", "7")
            if segment.get(2) != interchange.control_number:
                raise segment.error(2, f"IEA02 differs from ISA13 {interchange.control_number!r}", "7")
            closed = True
        elif current is not None:
            current.segments.append(segment)
        else:
            raise X12Error(
                "segment outside a transaction set", segment.id, segment.position, segment_code="2"
            )
    if not closed:
        last = segments[-1]
        raise X12Error("the interchange has no IEA", "IEA", last.position + 1, segment_code=SEGMENT_MISSING)
    return interchange
