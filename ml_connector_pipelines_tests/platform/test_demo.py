"""`make demo` runs `ml-connector demo`: it must keep working after every change."""

import re

from ..conftest import DemoRun


def test_demo_runs_every_flow_and_exits_zero(demo_run: DemoRun) -> None:
    out = demo_run.out
    assert demo_run.code == 0, out
    # The demo starts its own sandbox: its record of M3 calls the MI metadata refuses stays empty.
    assert demo_run.m3_violations == []
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^(\w+)\s+(\d+(?:\s+\d+)+)\s*$", out, re.M)}
    for flow in [
        "wise_recipients",
        "wise_quotes",
        "wise_payout_status",
        "stripe_customers",
        "stripe_invoices",
        "procurify_infor_purchase_orders",
    ]:
        assert flow in rows, out
    header = next(line.split() for line in out.splitlines() if line.startswith("flow "))
    counts = {
        flow: dict(zip(header[1:], map(int, values.split()), strict=True)) for flow, values in rows.items()
    }
    assert counts["wise_recipients"]["created"] > 0
    assert counts["procurify_infor_purchase_orders"]["created"] > 0 and "added in Infor" in out
    assert all(c["failed"] == 0 for c in counts.values())
    # The outside world happened and came back to Infor: a payout status written, two payments and a
    # refund posted to AR.
    assert "moved to outgoing_payment_sent" in out and "partially refunded" in out
    assert counts["wise_payout_status"]["status_written"] > 0
    # Every column is explained, a count from other sources says so, amounts are major units.
    assert "status_written: Wise transfer states written to the Infor invoice" in out
    assert re.search(r"wise_recipients created \d+: \d+ from the \d+ suppliers changed today", out), out
    assert re.search(r"Stripe invoice \w+ paid \([\d,]+\.\d\d [A-Z]{3}\)", out), out
    assert re.search(r"partially refunded \([\d,]+\.\d\d [A-Z]{3}\)", out), out
    assert counts["infor_ar_payments"]["created"] == 3
    # Cleo: 850s out, one supplier 810 booked in Infor AP, the malformed one flagged, 997s back.
    assert counts["cleo_purchase_orders_850"]["created"] > 0
    inbound = counts["cleo_ap_invoices_810_in"]
    assert (inbound["created"], inbound["flagged"]) == (1, 1)
    assert counts["cleo_acks_997_out"]["created"] == 2
    assert re.search(r"extracted from Infor: \d+ ap_invoices, \d+ ar_invoices, .*\d+ suppliers", out)
    # run history persisted in the demo's DAGSTER_HOME (SQLite), so it survives restarts
    assert (demo_run.root / "dagster_home" / "dagster.yaml").exists()
    assert any((demo_run.root / "dagster_home").rglob("*.db"))
