"""X12 syntax: delimiters read from the ISA segment, tokenizing, element formats (contracts/x12.md §1).

Nothing here knows a transaction set. Every error is an `X12Error` that names the segment (id and
position) and, for element errors, the element position, with the AK3/AK4 codes a 997 reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

ISA_LENGTH = 106  # 3 + 86 data characters + 16 separators + terminator (x12.md §2)
SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{1,2}$")
_DIGITS = re.compile(r"^-?\d+$")
_DECIMAL = re.compile(r"^-?(\d+\.?\d*|\.\d+)$")

# AK3 segment error codes and AK4 element error codes (997, 004010).
SEGMENT_UNRECOGNIZED = "1"
SEGMENT_UNEXPECTED = "2"
SEGMENT_MISSING = "3"
SEGMENT_HAS_ELEMENT_ERRORS = "8"
ELEMENT_MISSING = "1"
ELEMENT_TOO_SHORT = "4"
ELEMENT_TOO_LONG = "5"
ELEMENT_INVALID_CHARACTER = "6"
ELEMENT_INVALID_CODE = "7"
ELEMENT_INVALID_DATE = "8"


class X12Error(ValueError):
    """A syntax or content error at one place in an interchange.

    `segment_position` counts segments from 1 at ISA; `set_position` from 1 at ST (the AK302 value),
    None outside a transaction set. `element_position` is 1-based (AK401), None for segment errors.
    """

    def __init__(
        self,
        reason: str,
        segment_id: str,
        segment_position: int,
        element_position: int | None = None,
        *,
        set_position: int | None = None,
        segment_code: str = SEGMENT_HAS_ELEMENT_ERRORS,
        element_code: str | None = None,
        bad_value: str | None = None,
    ) -> None:
        self.reason = reason
        self.segment_id = segment_id
        self.segment_position = segment_position
        self.element_position = element_position
        self.set_position = set_position
        self.segment_code = segment_code
        self.element_code = element_code
        self.bad_value = bad_value
        where = f"segment {segment_id or '?'} (segment {segment_position})"
        if element_position is not None:
            where += f", element {segment_id}{element_position:02d}"
        super().__init__(f"{where}: {reason}")

    @property
    def location(self) -> str:
        """Segment and element, e.g. ``IT1 segment 9 element 02``, for audit rows and alerts."""
        text = f"{self.segment_id} segment {self.segment_position}"
        return text if self.element_position is None else f"{text} element {self.element_position:02d}"


@dataclass(frozen=True)
class Delimiters:
    element: str = "*"
    component: str = ">"
    segment: str = "~"

    def all(self) -> str:
        return self.element + self.component + self.segment


@dataclass(frozen=True)
class Segment:
    id: str
    elements: tuple[str, ...]  # elements[0] is element 01
    position: int  # 1-based position in the interchange

    def get(self, number: int) -> str:
        """Element `number` (1-based), "" when absent: trailing empty elements are dropped."""
        return self.elements[number - 1] if 0 < number <= len(self.elements) else ""

    def error(self, number: int | None, reason: str, code: str | None = None, **kw: object) -> X12Error:
        value = self.get(number) if number else None
        return X12Error(
            reason, self.id, self.position, number, element_code=code, bad_value=value or None, **kw
        )


def read_delimiters(text: str) -> Delimiters:
    """The separators an interchange declares in its ISA: offsets 3, 104 and 105 (x12.md §1)."""
    if not text.startswith("ISA"):
        found = text[:3] or "nothing"
        raise X12Error(f"an interchange starts with ISA, found {found!r}", "ISA", 1, segment_code="3")
    if len(text) < ISA_LENGTH:
        raise X12Error(f"ISA is {ISA_LENGTH} characters, the file has {len(text)}", "ISA", 1)
    element, component, segment = text[3], text[104], text[105]
    for name, char in (("element separator", element), ("ISA16", component), ("terminator", segment)):
        if char.isalnum() or char == " ":
            raise X12Error(
                f"{name} {char!r} cannot be a delimiter", "ISA", 1, 16 if name == "ISA16" else None
            )
    if len({element, component, segment}) != 3:
        raise X12Error("element, component and segment delimiters must differ", "ISA", 1, 16)
    if text[:105].count(element) != 16:
        raise X12Error(
            f"ISA must have 16 fixed-width elements before its terminator at offset 105 "
            f"(found {text[:105].count(element)} separators)",
            "ISA",
            1,
            segment_code="8",
        )
    return Delimiters(element, component, segment)


def tokenize(text: str) -> tuple[Delimiters, list[Segment]]:
    """Split an interchange into segments; CR/LF around terminators is ignored (x12.md §1)."""
    text = text.lstrip("\ufeff\r\n\t ")
    delimiters = read_delimiters(text)
    segments: list[Segment] = []
    for raw in text.split(delimiters.segment):
        raw = raw.strip("\r\n")
        if not raw.strip():
            continue
        position = len(segments) + 1
        parts = raw.split(delimiters.element)
        segment_id = parts[0]
        if not SEGMENT_ID.match(segment_id):
            shown = re.sub(r"[^A-Z0-9]", "", segment_id.upper())[:3] or "UNK"  # AK301 is 2-3 characters
            raise X12Error(
                f"{segment_id[:10]!r} is not a segment id",
                shown,
                position,
                segment_code=SEGMENT_UNRECOGNIZED,
            )
        segments.append(Segment(segment_id, tuple(parts[1:]), position))
    return delimiters, segments


def format_segment(segment_id: str, elements: Sequence[str | None], delimiters: Delimiters) -> str:
    """One segment with its terminator; trailing empty elements are dropped (x12.md §1)."""
    values = ["" if value is None else str(value) for value in elements]
    for number, value in enumerate(values, start=1):
        bad = set(value) & set(delimiters.all())
        if bad:
            raise ValueError(
                f"{segment_id}{number:02d} {value!r} contains the delimiter {''.join(sorted(bad))!r}"
            )
    while values and values[-1] == "":
        values.pop()
    return delimiters.element.join([segment_id, *values]) + delimiters.segment


def clean_text(value: str | None, max_length: int, delimiters: Delimiters = Delimiters()) -> str:
    """Free text made safe for an AN element: delimiters become spaces, cut to `max_length`."""
    if not value:
        return ""
    table = {ord(char): " " for char in delimiters.all()}
    return " ".join(value.translate(table).split())[:max_length].strip()


# Element formats --------------------------------------------------------------------------------


def format_decimal(value: Decimal) -> str:
    """Type R: a decimal point only when needed, no exponent (``12.5``, ``10``)."""
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_implied2(value: Decimal) -> str:
    """Type N2: two implied decimals (165.00 -> ``16500``); more precision than cents is an error."""
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{value} has more than 2 decimals, an N2 element cannot carry it")
    return str(int(cents))


def format_date8(value: date) -> str:
    return value.strftime("%Y%m%d")


def element_decimal(segment: Segment, number: int, *, required: bool = True) -> Decimal | None:
    text = segment.get(number)
    if not text:
        if required:
            raise segment.error(number, "is required", ELEMENT_MISSING)
        return None
    if not _DECIMAL.match(text):
        raise segment.error(number, f"{text!r} is not a decimal number", ELEMENT_INVALID_CHARACTER)
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern above already excludes these
        raise segment.error(number, f"{text!r} is not a decimal number", ELEMENT_INVALID_CHARACTER) from exc


def element_implied2(segment: Segment, number: int, *, required: bool = True) -> Decimal | None:
    text = segment.get(number)
    if not text:
        if required:
            raise segment.error(number, "is required", ELEMENT_MISSING)
        return None
    if not _DIGITS.match(text):
        raise segment.error(number, f"{text!r} is not an N2 amount (digits, 2 implied decimals)", "6")
    return Decimal(int(text)) / 100


def element_integer(segment: Segment, number: int) -> int:
    text = segment.get(number)
    if not text:
        raise segment.error(number, "is required", ELEMENT_MISSING)
    if not text.isdigit():
        raise segment.error(number, f"{text!r} is not a number", ELEMENT_INVALID_CHARACTER)
    return int(text)


def element_date8(segment: Segment, number: int, *, required: bool = True) -> date | None:
    text = segment.get(number)
    if not text:
        if required:
            raise segment.error(number, "is required", ELEMENT_MISSING)
        return None
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError(text)
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise segment.error(number, f"{text!r} is not a date CCYYMMDD", ELEMENT_INVALID_DATE) from exc


def element_text(segment: Segment, number: int, max_length: int, *, required: bool = True) -> str:
    text = segment.get(number)
    if not text.strip():
        if required:
            raise segment.error(number, "is required", ELEMENT_MISSING)
        return ""
    if len(text) > max_length:
        raise segment.error(number, f"is {len(text)} characters, at most {max_length}", ELEMENT_TOO_LONG)
    return text.strip()


def element_code(segment: Segment, number: int, allowed: Iterable[str], *, required: bool = True) -> str:
    text = segment.get(number)
    if not text and not required:
        return ""
    allowed = tuple(allowed)
    if text not in allowed:
        raise segment.error(number, f"{text!r} is not one of {', '.join(allowed)}", ELEMENT_INVALID_CODE)
    return text
