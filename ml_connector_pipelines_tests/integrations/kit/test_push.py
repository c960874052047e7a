"""The push factory in real Dagster runs against the sandbox: the one error policy and the checks."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import httpx
import pytest

from ml_connector_pipelines.core.errors import ValidationFailed
from ml_connector_pipelines.core.ledger import Ledger
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.sync import SyncResult, SyncSession
from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.integrations.kit.dependencies import Dependencies
from ml_connector_pipelines.integrations.kit.pushers import push_all
from ml_connector_pipelines.integrations.stripe.assets import (
    CUSTOMERS_FLOW,
    INVOICES_FLOW,
    CustomerSync,
    stripe_invoices,
)
from ml_connector_pipelines.integrations.tenancy import stripe_gateway
from ml_connector_pipelines.systems.infor.models import Customer
from ml_connector_pipelines_tests.conftest import TenantEnv
from ml_connector_pipelines_tests.integrations.wise.wise_env import PIPELINE, infor_records, patch_infor

EXTRACTS = {asset.key.to_user_string(): asset for asset in infor_extracts}
OTHER_RUN = "another-live-run"


def _checks(result: Any) -> dict[str, Any]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def _materialized(result: Any, flow: str) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == flow]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def _busiest_day(tenant: TenantEnv) -> tuple[date, list[dict[str, Any]]]:
    httpx.put(f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/seed", json={}, timeout=30)
    invoices = [i for i in tenant.infor_state()["ar_invoices"] if i["status"] == "open"]
    day = Counter(i["modified_date"] for i in invoices).most_common(1)[0][0]
    return date.fromisoformat(day), [i for i in invoices if i["modified_date"] == day]


def _stripe_invoice_keys(tenant: TenantEnv) -> Counter[str]:
    account = tenant.sandbox.get_state("stripe")["accounts"].get(tenant.stripe_key) or {"invoices": []}
    return Counter(i["metadata"]["infor_invoice_key"] for i in account["invoices"])


def _key(record: dict[str, Any]) -> str:
    return f"{record['division']}/{record['customer_id']}/{record['invoice_number']}/{record['invoice_year']}"


def test_a_transient_failure_fails_that_record_only_and_the_blocking_check(tenant: TenantEnv) -> None:
    day, opened = _busiest_day(tenant)
    assert len({i["customer_id"] for i in opened}) >= 2
    held = opened[0]["customer_id"]
    # Another live run holds the customer: its invoices must wait, not be flagged as bad data.
    assert tenant.connector.state.ledger.claim(tenant.name, CUSTOMERS_FLOW, held, OTHER_RUN)
    assets = [EXTRACTS["infor_ar_invoices"], stripe_invoices]

    result = tenant.materialize(assets, day)

    assert not result.success  # the blocking ERROR check fails the run: a backfill of failures retries it
    metadata = _materialized(result, INVOICES_FLOW)  # ... yet the materialization is recorded
    waiting = {_key(i) for i in opened if i["customer_id"] == held}
    assert metadata["failed"] == len(waiting) and metadata["flagged"] == 0
    failed = _checks(result)["stripe_invoices_no_failed_records"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    listed = failed.metadata["records"].value
    assert {r["id"] for r in listed} == waiting
    assert all("in progress in run another-live-run" in r["reason"] for r in listed)
    assert _checks(result)["stripe_invoices_no_flagged_records"].passed
    # The other invoices were billed; the waiting ones are neither flagged nor alerted.
    assert _stripe_invoice_keys(tenant) == Counter({_key(i): 1 for i in opened if _key(i) not in waiting})
    history = tenant.connector.state.audit.history(tenant.name, INVOICES_FLOW)
    assert not [e for e in history if e.source_id in waiting and e.action in ("flagged", "alert")]

    tenant.connector.state.ledger.release(tenant.name, CUSTOMERS_FLOW, held, OTHER_RUN)
    rerun = tenant.materialize(assets, day)

    assert rerun.success
    assert _stripe_invoice_keys(tenant) == Counter({_key(i): 1 for i in opened})


def test_a_flagged_record_warns_and_names_the_record(tenant: TenantEnv) -> None:
    broken = next(
        s for s in infor_records(tenant, "suppliers") if (s["bank_account"] or {}).get("kind") == "iban"
    )
    # Patched in Infor, so stamped modified today: today's partition carries it, with a bad checksum.
    patch_infor(
        tenant, "suppliers", broken["supplier_id"], {"bank_account": {"iban": "DE00000000000000000000"}}
    )
    day = datetime.now(UTC).date()

    result = tenant.materialize(PIPELINE, day)

    assert result.success  # flagged records need a person, they do not fail the run
    flagged = _checks(result)["wise_recipients_no_flagged_records"]
    assert not flagged.passed and flagged.severity == dg.AssetCheckSeverity.WARN
    [record] = [r for r in flagged.metadata["records"].value if r["id"] == broken["supplier_id"]]
    assert record["reason"]
    assert _checks(result)["wise_recipients_no_failed_records"].passed


def test_workers_needing_one_dependency_create_it_once(tenant: TenantEnv) -> None:
    record = infor_records(tenant, "customers")[0]
    customer = Customer.model_validate(record)
    state = tenant.connector.state
    session = state.sync_session(tenant=tenant.name, flow=CUSTOMERS_FLOW, run_id="r1", partition=None)
    gateway = stripe_gateway(tenant.connector.credentials.get(tenant.name, "stripe"))
    dependencies = Dependencies(state.ledger, tenant.name)
    customers = CustomerSync(session, gateway)
    found: list[str] = []

    def need_it(n: int) -> None:
        entry = dependencies.resolve(
            f"invoice-{n}",
            "customer_id",
            CUSTOMERS_FLOW,
            customer.customer_id,
            lambda _entry: customers.sync(customer),
            "the customer",
        )
        found.append(entry.target_id or "")

    threads = [threading.Thread(target=need_it, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gateway.close()

    account = tenant.sandbox.get_state("stripe")["accounts"][tenant.stripe_key]
    ours = [c for c in account["customers"] if c["metadata"].get("infor_customer_id") == customer.customer_id]
    assert len(ours) == 1 and found == [ours[0]["id"]] * 8
    assert [r.action for r in session.results] == ["created"]


def test_a_spent_time_budget_fails_the_records_left_and_the_next_run_does_them(tenant: TenantEnv) -> None:
    tenants = tenant.connector.state.tenants
    tenants.update(tenant.name, config_patch={"push_time_budget_seconds": 1e-9})
    day = datetime.now(UTC).date()

    result = tenant.materialize(PIPELINE, day)

    assert not result.success
    metadata = _materialized(result, "wise_recipients")
    assert metadata["failed"] > 0 and metadata["created"] == 0
    failed = _checks(result)["wise_recipients_no_failed_records"]
    assert all("time budget" in r["reason"] for r in failed.metadata["records"].value)

    tenants.update(tenant.name, config_patch={"push_time_budget_seconds": 600})
    rerun = tenant.materialize(PIPELINE, day)

    assert rerun.success
    again = _materialized(rerun, "wise_recipients")
    assert again["failed"] == 0 and again["created"] > 0


def test_a_dependency_that_cannot_exist_flags_every_record_needing_it_with_one_lookup(tmp_path) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    dependencies = Dependencies(Ledger(store), "ACME")
    lookups: list[str] = []

    def not_in_infor(entry: Any) -> None:
        lookups.append("C1")
        raise ValidationFailed("inv-1", "customer_id", "customer C1 not found in Infor")

    for invoice in ("inv-1", "inv-2"):
        with pytest.raises(ValidationFailed) as raised:
            dependencies.resolve(invoice, "customer_id", CUSTOMERS_FLOW, "C1", not_in_infor, "the customer")
        assert (raised.value.record_id, raised.value.reason) == (invoice, "customer C1 not found in Infor")
    assert lookups == ["C1"]
    store.dispose()


def test_workers_claim_ahead_only_the_records_the_pusher_will_claim(tmp_path) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    ledger = Ledger(store)
    session = SyncSession(store, tenant="ACME", flow="things", run_id="run-1", partition=None)
    created: Counter[str] = Counter()
    claim_writes: list[list[str]] = []
    original = session.ledger.claim_many

    def claim_many(*args: Any, **kwargs: Any) -> Any:
        claim_writes.append(list(args[2]))
        return original(*args, **kwargs)

    session.ledger.claim_many = claim_many  # type: ignore[method-assign]

    class Pusher:
        def will_claim(self, record: str) -> bool:
            return not record.startswith("skip")

        def sync(self, record: str) -> SyncResult:
            if record.startswith("skip"):  # skipped before `sync`, as will_claim says
                return session.note(record, "skipped", reason="nothing to push")

            def create() -> str:
                # Its claim is committed (another connection sees it) before the call.
                assert ledger.get("ACME", "things", record).status == "pending"
                created[record] += 1
                return f"T-{record}"

            return session.sync(record, "h", create=create)

    records = [f"skip{n}" if n % 5 == 0 else f"r{n}" for n in range(40)]
    results = push_all(Pusher(), session, records, lambda r: r, workers=4)
    assert [r.action for r in results] == ["skipped" if r.startswith("skip") else "created" for r in records]
    assert created == Counter(r for r in records if not r.startswith("skip"))
    claimed = [source_id for write in claim_writes for source_id in write]
    assert not any(source_id.startswith("skip") for source_id in claimed)  # never claimed, not even ahead
    assert len(claim_writes) <= len(records) // 2  # workers found their claims taken ahead
    assert all(ledger.get("ACME", "things", r).status == "done" for r in records if not r.startswith("skip"))
    assert all(ledger.get("ACME", "things", r) is None for r in records if r.startswith("skip"))
    store.dispose()


def test_push_all_runs_workers_at_once_keeps_record_order_and_one_id_on_one_worker(tmp_path) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    session = SyncSession(store, tenant="ACME", flow="things", run_id="run-1", partition=None)
    lock = threading.Lock()
    in_flight, most, seen = [0], [0], []
    all_busy = threading.Barrier(4, timeout=10)  # passes only once 4 records are in flight together

    class Pusher:
        def sync(self, record: tuple[str, int]) -> SyncResult:
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
                seen.append(record)
            if record[1] < 4:
                all_busy.wait()
            with lock:
                in_flight[0] -= 1
            return session.note(record[0], "created", target_id=f"T{record[1]}")

    # 1,203 records: three pages of 500 and more; "dup" twice, in its order, on one worker.
    records = [(f"r{n}", n) for n in range(1200)] + [("dup", 1200), ("r5", 1201), ("dup", 1202)]
    results = push_all(Pusher(), session, records, lambda r: r[0], workers=4)
    assert [r.target_id for r in results] == [
        f"T{n}" for n in [*range(5), 5, 1201, *range(6, 1200), 1200, 1202]
    ]  # grouped by id (r5's second record right after its first), else in record order
    assert most[0] == 4 and len(seen) == len(records)
    assert [n for source_id, n in seen if source_id == "dup"] == [1200, 1202]
    store.dispose()
