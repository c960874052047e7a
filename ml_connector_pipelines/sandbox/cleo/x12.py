"""The sandbox's own small X12 reader and writer (contracts/x12.md), independent of the client's.

It reads what a trading partner's translator would check before acknowledging (envelope counts and
control numbers, the mandatory header segment of 850 / 810), writes the 997 that answers it, and
writes supplier 810s, well-formed or deliberately broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

HEADER_SEGMENT = {"850": "BEG", "810": "BIG"}
FUNCTIONAL_ID = {"850": "PO", "810": "IN", "997": "FA"}


@dataclass
class SetCheck:
    set_id: str
    control: str
    segment_errors: list[tuple[str, int, str, list[tuple[int, str, str]]]] = field(default_factory=list)
    set_errors: list[str] = field(default_factory=list)  # AK502.. codes

    @property
    def accepted(self) -> bool:
        return not self.segment_errors and not self.set_errors


@dataclass
class GroupCheck:
    functional_id: str
    control: str
    sets: list[SetCheck] = field(default_factory=list)
    group_errors: list[str] = field(default_factory=list)  # AK905.. codes


@dataclass
class InterchangeCheck:
    sender: tuple[str, str]
    receiver: tuple[str, str]
    control: str
    element: str
    component: str
    terminator: str
    groups: list[GroupCheck] = field(default_factory=list)


class Unreadable(ValueError):
    """Not an interchange whose sender can be answered (no usable ISA)."""


def check_interchange(text: str) -> InterchangeCheck:
    """Read an interchange the way the receiving translator would, noting every error found."""
    text = text.lstrip("\ufeff\r\n\t ")
    if not text.startswith("ISA") or len(text) < 106:
        raise Unreadable("no ISA segment")
    element, component, terminator = text[3], text[104], text[105]
    segments = [raw.strip("\r\n") for raw in text.split(terminator)]
    rows = [segment.split(element) for segment in segments if segment.strip()]
    isa = rows[0]
    if len(isa) != 17:
        raise Unreadable("the ISA does not have 16 elements")
    check = InterchangeCheck(
        (isa[5].strip(), isa[6].strip()),
        (isa[7].strip(), isa[8].strip()),
        isa[13],
        element,
        component,
        terminator,
    )
    group: GroupCheck | None = None
    current: SetCheck | None = None
    set_rows: list[list[str]] = []
    for row in rows[1:]:
        tag = row[0]
        if tag == "GS":
            group = GroupCheck(row[1] if len(row) > 1 else "", row[6] if len(row) > 6 else "")
            check.groups.append(group)
        elif tag == "ST" and group is not None:
            current = SetCheck(row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
            set_rows = [row]
        elif tag == "SE" and group is not None and current is not None:
            set_rows.append(row)
            _check_set(current, set_rows)
            group.sets.append(current)
            current = None
        elif tag == "GE" and group is not None:
            if len(row) < 3 or row[1] != str(len(group.sets)):
                group.group_errors.append("5")  # number of included sets does not match
            if len(row) < 3 or row[2] != group.control:
                group.group_errors.append("4")  # group control numbers do not agree
            group = None
        elif current is not None:
            set_rows.append(row)
    if group is not None:
        group.group_errors.append("3")  # group trailer missing
    return check


def _check_set(check: SetCheck, rows: list[list[str]]) -> None:
    se = rows[-1]
    if len(se) < 3 or se[1] != str(len(rows)):
        check.set_errors.append("4")  # number of included segments does not match
    if len(se) < 3 or se[2] != check.control:
        check.set_errors.append("3")  # ST/SE control numbers do not match
    header = HEADER_SEGMENT.get(check.set_id)
    if header is None:
        return
    if len(rows) < 3 or rows[1][0] != header:
        check.segment_errors.append((header, 2, "3", []))  # mandatory segment missing
        return
    values = rows[1]
    if header == "BEG":
        for position in (1, 2, 3, 5):
            if len(values) <= position or not values[position]:
                check.segment_errors.append(("BEG", 2, "8", [(position, "1", "")]))
                return
    if header == "BIG":
        for position in (1, 2):
            if len(values) <= position or not values[position]:
                check.segment_errors.append(("BIG", 2, "8", [(position, "1", "")]))
                return


def _isa(
    sender: tuple[str, str], receiver: tuple[str, str], control: int, at: datetime, sep: str, comp: str
) -> str:
    parts = [
        "ISA", "00", " " * 10, "00", " " * 10,
        sender[0].ljust(2), sender[1][:15].ljust(15), receiver[0].ljust(2), receiver[1][:15].ljust(15),
        at.strftime("%y%m%d"), at.strftime("%H%M"), "U", "00401", f"{control:09d}", "0", "P", comp,
    ]  # fmt: skip
    return sep.join(parts)


def _interchange(
    set_id: str,
    body: list[list[str]],
    sender: tuple[str, str],
    receiver: tuple[str, str],
    control: int,
    at: datetime,
    sep: str = "*",
    comp: str = ">",
    term: str = "~",
) -> str:
    st_control = f"{control:04d}"
    rows = [
        _isa(sender, receiver, control, at, sep, comp),
        sep.join(["GS", FUNCTIONAL_ID[set_id], sender[1], receiver[1], at.strftime("%Y%m%d"),
                  at.strftime("%H%M"), str(control), "X", "004010"]),
        sep.join(["ST", set_id, st_control]),
        *[sep.join(row).rstrip(sep) for row in body],
        sep.join(["SE", str(len(body) + 2), st_control]),
        sep.join(["GE", "1", str(control)]),
        sep.join(["IEA", "1", f"{control:09d}"]),
    ]  # fmt: skip
    return "".join(row + term + "\n" for row in rows)


def write_997(check: InterchangeCheck, control: int, at: datetime) -> str:
    """The 997 answering every group of `check`, addressed back to its sender."""
    body: list[list[str]] = []
    for group in check.groups:
        body.append(["AK1", group.functional_id, group.control])
        for item in group.sets:
            body.append(["AK2", item.set_id, item.control])
            for segment_id, position, code, elements in item.segment_errors:
                body.append(["AK3", segment_id, str(position), "", code])
                body += [["AK4", str(pos), "", err, value] for pos, err, value in elements]
            if item.accepted:
                body.append(["AK5", "A"])
            else:
                body.append(["AK5", "R", *(item.set_errors or ["5"])])
        accepted = sum(1 for item in group.sets if item.accepted)
        if group.group_errors or accepted == 0:
            code = "R"
        else:
            code = "A" if accepted == len(group.sets) else "P"
        body.append(
            ["AK9", code, str(len(group.sets)), str(len(group.sets)), str(accepted), *group.group_errors]
        )
    return _interchange(
        "997",
        body,
        check.receiver,
        check.sender,
        control,
        at,
        check.element,
        check.component,
        check.terminator,
    )


# Supplier 810s -------------------------------------------------------------------------------------

MALFORMED_KINDS = ("bad_quantity", "bad_date", "bad_total", "missing_big", "bad_segment_count", "not_x12")


def _n2(amount: Decimal) -> str:
    return str(int((amount * 100).to_integral_value()))


def _r(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def write_810(spec: dict[str, Any], control: int, at: datetime) -> str:
    """A supplier invoice from a control-route body; `malformed` breaks it in one documented way."""
    sender = (spec.get("sender_qualifier", "ZZ"), spec["sender_id"])
    receiver = (spec.get("receiver_qualifier", "ZZ"), spec["receiver_id"])
    malformed = spec.get("malformed")
    if malformed == "not_x12":
        return "INVOICE " + spec["invoice_number"] + "\nthis is not an X12 interchange\n"
    invoice_date = spec.get("invoice_date") or at.strftime("%Y%m%d")
    big = ["BIG", invoice_date.replace("-", ""), spec["invoice_number"], "", spec.get("po_number", "")]
    if malformed == "bad_date":
        big[1] = "20251345"
    body: list[list[str]] = [] if malformed == "missing_big" else [big]
    if spec.get("currency"):
        body.append(["CUR", "SE", spec["currency"]])
    if spec.get("vendor_number"):
        body.append(["REF", "IA", spec["vendor_number"]])
    if spec.get("net_days") is not None:
        body.append(["ITD", "05", "3", "", "", "", "", str(spec["net_days"])])
    total = Decimal(0)
    for number, line in enumerate(spec.get("lines", []), start=1):
        quantity, price = Decimal(str(line["quantity"])), Decimal(str(line["unit_price"]))
        total += quantity * price
        row = ["IT1", str(line.get("line_id", number)), _r(quantity), line.get("unit", "EA"), _r(price), ""]
        if line.get("buyer_part"):
            row += ["BP", line["buyer_part"]]
        if line.get("vendor_part"):
            row += ["VP", line["vendor_part"]]
        if malformed == "bad_quantity" and number == 1:
            row[2] = "1O"  # a letter O for a zero: the classic keying error
        body.append(row)
        if line.get("description"):
            body.append(["PID", "F", "", "", "", line["description"]])
    charges = spec.get("charges", [])
    total += sum((Decimal(str(charge["amount"])) for charge in charges), Decimal(0))
    body.append(["TDS", _n2(total + (Decimal("1") if malformed == "bad_total" else Decimal(0)))])
    for charge in charges:
        sac = ["SAC", "C", charge.get("code", "D240"), "", "", _n2(Decimal(str(charge["amount"])))]
        body.append(sac + [""] * 9 + [charge.get("description", "")])
    body.append(["CTT", str(len(spec.get("lines", [])))])
    text = _interchange("810", body, sender, receiver, control, at)
    if malformed == "bad_segment_count":
        text = text.replace(f"SE*{len(body) + 2}*", f"SE*{len(body) + 5}*")
    return text
