"""With faults on (5xx, commit-then-timeout, Cin7's own 503 throttling) no supplier or purchase is
created twice, no purchase is invoiced twice, and every record ends done, linked or flagged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.integrations.cin7.mapping import Cin7Settings, po_marker
from ml_connector_pipelines.integrations.cin7.pushers import INVOICES, PURCHASES, SUPPLIERS
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.seed import ITEMS
from ml_connector_pipelines_tests.systems.cin7.cin7_env import Cin7Company, set_rate_limit

from .test_pushers import TENANT, Run, infor

FAULTS = {
    "profile": "chaos",
    "seed": 11,
    "systems": ["cin7"],
    # 5xx (nothing committed) and commit-then-504; 429s are covered by core's tests.
    "overrides": {
        "rate_limit": 0,
        "rate_limit_http_date": 0,
        "rate_limit_no_header": 0,
        "server_error": 0.12,
        "commit_then_timeout": 0.12,
    },
}


@pytest.fixture
def state(state_db_url: str) -> Iterator[StateStore]:
    store = StateStore(state_db_url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def faults(cin7_sandbox: SandboxServer) -> Iterator[None]:
    httpx.put(f"{cin7_sandbox.url}/_sandbox/faults", json=FAULTS, timeout=30).raise_for_status()
    set_rate_limit(cin7_sandbox, per_minute=8, window_seconds=1.0)  # real 503 throttling too
    yield
    cin7_sandbox.set_faults("none")


def test_faults_leave_no_duplicates_and_every_record_settled(
    state: StateStore, company: Cin7Company, faults: None
) -> None:
    data = infor("faults", suppliers=10, orders=6)
    company.add_products(*(sku for sku, _ in ITEMS))
    invoices = data.invoices_for(data.orders[:4])
    ledger = Ledger(state)
    throttled_before = company.sandbox.get_state("cin7")["throttled"]
    for attempt in range(1, 7):  # a failed record is picked up by the next run, as in production
        Run(state, company, f"run-{attempt}", Cin7Settings()).push(data, invoices)
        entries = [e for flow in (SUPPLIERS, PURCHASES, INVOICES) for e in ledger.entries(TENANT, flow)]
        if len(entries) == 20 and all(e.status in ("done", "flagged") for e in entries):
            break
    assert len(entries) == 20
    unsettled = [
        (e.flow, e.source_id, e.status, e.reason) for e in entries if e.status not in ("done", "flagged")
    ]
    assert unsettled == []
    assert all(e.reason for e in entries if e.status == "flagged")

    held = company.state()
    vendor_ids = Counter(s["AdditionalAttribute1"] for s in held["suppliers"])
    assert vendor_ids == Counter({s.supplier_id: 1 for s in data.suppliers})
    notes = Counter(p["Note"] for p in held["purchases"])
    assert notes == Counter({po_marker(o.po_number): 1 for o in data.orders})
    done_purchases = {e.source_id for e in ledger.entries(TENANT, PURCHASES, "done")}
    assert done_purchases == {o.po_number for o in data.orders}
    invoiced = [p for p in held["purchases"] if p["Invoice"]["Status"] == "AUTHORISED"]
    assert sorted(p["Invoice"]["InvoiceNumber"] for p in invoiced) == ["AP0", "AP1", "AP2", "AP3"]
    injected = httpx.get(f"{company.sandbox.url}/_sandbox/faults", timeout=30).json()["injected"]
    assert injected.get("commit_then_timeout", 0) > 0 and injected.get("server_error", 0) > 0
    assert company.sandbox.get_state("cin7")["throttled"] > throttled_before
