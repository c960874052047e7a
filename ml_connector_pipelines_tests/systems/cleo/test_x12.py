"""The X12 layer: every interchange written is read back cleanly by pyx12 (an independent oracle),
delimiters come from the ISA, and the 810 parser names the segment and element of any error."""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyx12.x12file import X12Reader

from ml_connector_pipelines.systems.cleo.x12 import (
    Ack997,
    Charge,
    Delimiters,
    Envelope,
    Invoice810,
    Line,
    Party,
    PartyName,
    PurchaseOrder850,
    X12Error,
    acknowledge,
    acknowledge_broken,
    parse_810,
    parse_997,
    read_interchange,
    transaction_set_of,
    write_810,
    write_850,
    write_997,
)
from ml_connector_pipelines.systems.cleo.x12.syntax import tokenize

AT = datetime(2025, 1, 20, 9, 30)
BUYER, SUPPLIER = Party("ZZ", "BUYERID"), Party("ZZ", "SUPPLIERID")
LINES = (
    Line("1", Decimal("10"), "EA", Decimal("12.50"), "1000001", "SKU-001", "WIDGET, BLUE"),
    Line("2", Decimal("5"), "EA", Decimal("3.00"), vendor_part="SKU-002", description="GADGET"),
)
ORDER = PurchaseOrder850(
    "PO12345",
    date(2025, 1, 1),
    LINES,
    currency="USD",
    vendor_number="V12345",
    requested_delivery=date(2025, 1, 15),
    parties=(
        PartyName("ST", "ACME WAREHOUSE", "92", "0001", ("100 MAIN ST",), "SPRINGFIELD", "IL", "62701", "US"),
    ),
)
INVOICE = Invoice810(
    "INV-9001",
    date(2025, 1, 20),
    LINES,
    Decimal("165.00"),
    po_number="PO12345",
    po_date=date(2025, 1, 1),
    currency="USD",
    vendor_number="V12345",
    net_days=30,
    parties=(
        PartyName("RI", "SUPPLIER INC", "92", "S01", ("1 SUPPLIER WAY",), "AUSTIN", "TX", "73301", "US"),
    ),
    charges=(Charge("C", "D240", Decimal("25.00"), "FREIGHT"),),
)


def pyx12_errors(text: str) -> list[tuple]:
    reader = X12Reader(io.StringIO(text))
    segments = list(reader)
    assert segments, "pyx12 read no segments"
    return reader.pop_errors()


def test_850_is_read_cleanly_by_pyx12_and_carries_the_lines() -> None:
    text = write_850(ORDER, Envelope(BUYER, SUPPLIER), 1, AT)
    assert pyx12_errors(text) == []
    _, segments = tokenize(text)
    po1 = [s.elements for s in segments if s.id == "PO1"]
    assert po1 == [
        ("1", "10", "EA", "12.5", "", "BP", "1000001", "VP", "SKU-001"),
        ("2", "5", "EA", "3", "", "VP", "SKU-002"),
    ]
    assert [s.elements for s in segments if s.id == "CTT"] == [("2", "15")]
    assert text.splitlines()[0] == (
        "ISA*00*          *00*          *ZZ*BUYERID        *ZZ*SUPPLIERID     "
        "*250120*0930*U*00401*000000001*0*P*>~"
    )


def test_810_round_trips_and_pyx12_reads_it() -> None:
    text = write_810(INVOICE, Envelope(SUPPLIER, BUYER), 42, AT)
    assert pyx12_errors(text) == []
    [received] = parse_810(text)
    assert received.error is None
    assert received.document.total == Decimal("165.00")
    assert received.document.lines[0].buyer_part == "1000001"
    assert received.document.charges[0].amount == Decimal("25.00")
    assert received.group_control_number == "42" and received.set_control_number == "0042"
    assert received.interchange.sender == SUPPLIER


def test_contract_sample_810_body_parses() -> None:
    body = (
        "ST*810*0001~BIG*20250120*INV-9001*20250101*PO12345~REF*IA*V12345~N1*RI*SUPPLIER INC*92*S01~"
        "N3*1 SUPPLIER WAY~N4*AUSTIN*TX*73301*US~N1*BT*ACME CORP*92*0001~ITD*01*3*2**10**30~"
        "DTM*011*20250119~"
        "IT1*1*10*EA*12.50**VP*SKU-001*BP*1000001~PID*F****WIDGET, BLUE~IT1*2*5*EA*3.00**VP*SKU-002~"
        "PID*F****GADGET~TDS*16500~CAD*M***UPSN*UPS GROUND~SAC*C*D240***2500**********FREIGHT~"
        "CTT*2*15~SE*18*0001~"
    )
    isa = (
        "ISA*00*          *00*          *ZZ*SUPPLIERID     *ZZ*BUYERID        "
        "*250101*1200*U*00401*000000001*0*T*>~"
    )
    text = isa + "GS*IN*SUPPLIERID*BUYERID*20250101*1200*1*X*004010~" + body + "GE*1*1~IEA*1*000000001~"
    assert pyx12_errors(text) == []
    [received] = parse_810(text)
    assert received.error is None
    invoice = received.document
    assert (invoice.invoice_number, invoice.po_number, invoice.net_days) == ("INV-9001", "PO12345", 30)
    assert [p.entity for p in invoice.parties] == ["RI", "BT"]
    assert [line.description for line in invoice.lines] == ["WIDGET, BLUE", "GADGET"]


def test_delimiters_are_read_from_the_isa_never_assumed() -> None:
    odd = Envelope(BUYER, SUPPLIER, delimiters=Delimiters(element="|", component="^", segment="\\"))
    text = write_810(INVOICE, odd, 7, AT)
    assert "*" not in text.replace("WIDGET, BLUE", "")
    assert pyx12_errors(text) == []
    [received] = parse_810(text)
    assert received.error is None and received.document.total == Decimal("165.00")
    assert received.interchange.delimiters == Delimiters("|", "^", "\\")


def test_997_written_for_received_810s_round_trips() -> None:
    text = write_810(INVOICE, Envelope(SUPPLIER, BUYER), 5, AT)
    acks = acknowledge(parse_810(text))
    ack_text = write_997(acks[0], Envelope(BUYER, SUPPLIER), 9, AT)
    assert pyx12_errors(ack_text) == []
    [received] = parse_997(ack_text)
    ack = received.document
    assert isinstance(ack, Ack997)
    assert (ack.functional_id, ack.group_control_number, ack.code, ack.accepted) == ("IN", "5", "A", True)


def test_a_rejected_set_gets_ak3_ak4_with_the_position() -> None:
    text = write_810(INVOICE, Envelope(SUPPLIER, BUYER), 5, AT).replace("IT1*2*5*EA", "IT1*2*5X*EA")
    [received] = parse_810(text)
    assert received.error is not None
    assert (received.error.segment_id, received.error.element_position) == ("IT1", 2)
    ack_text = write_997(acknowledge([received])[0], Envelope(BUYER, SUPPLIER), 10, AT)
    assert pyx12_errors(ack_text) == []
    assert "AK3*IT1*" in ack_text and "AK4*2**6*5X~" in ack_text and "AK5*R*5~" in ack_text
    ack = parse_997(ack_text)[0].document
    assert not ack.accepted
    assert "AK4 element 02 code 6 '5X'" in ack.reason()


def test_pyx12_oracle_does_catch_a_wrong_segment_count() -> None:
    # The oracle must be able to fail: a wrong SE01 is reported by pyx12 and by our reader.
    text = write_850(ORDER, Envelope(BUYER, SUPPLIER), 3, AT)
    broken = re.sub(r"\nSE\*(\d+)\*", lambda m: f"\nSE*{int(m.group(1)) + 1}*", text)
    assert broken != text
    assert pyx12_errors(broken)
    with pytest.raises(X12Error) as info:
        read_interchange(broken)
    assert info.value.segment_id == "SE" and info.value.element_position == 1


def test_a_broken_envelope_still_gets_a_rejecting_997() -> None:
    text = write_810(INVOICE, Envelope(SUPPLIER, BUYER), 5, AT)
    text = re.sub(r"\nSE\*\d+\*", "\nSE*99*", text)
    with pytest.raises(X12Error) as info:
        parse_810(text)
    [ack] = acknowledge_broken(text, info.value)
    assert ack.code == "R" and ack.sets[0].segment_errors[0].segment_id == "SE"
    assert pyx12_errors(write_997(ack, Envelope(BUYER, SUPPLIER), 11, AT)) == []


def test_writers_refuse_delimiters_in_data() -> None:
    bad = Line("1", Decimal(1), "EA", Decimal(1), buyer_part="A*B")
    order = PurchaseOrder850("PO~1", date(2025, 1, 1), (bad,))
    with pytest.raises(ValueError, match="delimiter"):
        write_850(order, Envelope(BUYER, SUPPLIER), 1, AT)


def test_transaction_set_of_reads_even_broken_files() -> None:
    assert transaction_set_of(write_850(ORDER, Envelope(BUYER, SUPPLIER), 1, AT)) == "850"
    assert transaction_set_of("garbage\nST*810*0001~") == "810"
    assert transaction_set_of("hello") == ""


# Property-based: the 810 parser ------------------------------------------------------------------

VALID_810 = write_810(INVOICE, Envelope(SUPPLIER, BUYER), 77, AT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_no_text_crashes_the_810_parser(text: str) -> None:
    try:
        for received in parse_810(text):
            assert received.document is not None or received.error is not None
    except X12Error as error:
        assert error.segment_id is not None and str(error)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID_810) - 1), st.characters(codec="ascii"))
def test_no_one_character_change_crashes_the_810_parser(offset: int, char: str) -> None:
    text = VALID_810[:offset] + char + VALID_810[offset + 1 :]
    try:
        parse_810(text)
    except X12Error as error:
        assert error.segment_id and error.segment_position >= 1


# Elements of the valid 810 whose content the parser checks: (segment id, element position).
CHECKED = [("BIG", 1), ("IT1", 2), ("IT1", 4), ("TDS", 1), ("SAC", 5), ("CTT", 1), ("ITD", 7)]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CHECKED),
    st.text(alphabet="ABCXYZ!?#%&/;", min_size=1, max_size=8),
)
def test_a_bad_element_is_reported_at_its_segment_and_position(target: tuple[str, int], junk: str) -> None:
    segment_id, position = target
    lines = VALID_810.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(segment_id + "*"))
    elements = lines[index].rstrip("~").split("*")
    elements[position] = junk
    lines[index] = "*".join(elements) + "~"
    [received] = parse_810("\n".join(lines))
    error = received.error
    assert error is not None
    assert (error.segment_id, error.element_position) == (segment_id, position)
    assert error.segment_position == index + 1
    assert f"{segment_id}{position:02d}" in str(error)
