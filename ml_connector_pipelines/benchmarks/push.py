"""Benchmark: 1,000 Wise recipients and 1,000 Stripe customers pushed at 150 ms simulated latency.

Each push runs the way the push factory runs it: the pair's pusher (`RecipientSync`,
`CustomerSync`) over a real SyncSession (SQLite state store), fed by `push_all` with the client's
declared concurrency, the client's rate limit as the shared token bucket, against a sandbox served
by a child process. For comparison a sample is pushed one record at a time.

Per system it prints: records, requests, seconds, achieved request rate / configured limit (goal
>= 0.9), records per second concurrent vs one at a time and the speed-up (goal >= 10x where the limit
allows it: at 150 ms one at a time is ~6 requests/s, so Stripe's 25/s test-mode limit caps its
speed-up near 4x), failed records and duplicates in the target (goal 0), both read from the simulator.

    python -m ml_connector_pipelines.benchmarks.push [--records 1000] [--sample 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from schwifty import IBAN

from ..core.store import StateStore
from ..core.sync import SyncSession
from ..integrations.kit.pushers import Pusher, push_all
from ..integrations.stripe.assets import CustomerSync
from ..integrations.wise.assets import RecipientSync
from ..sandbox.stripe.simulator import StripeSimulator
from ..sandbox.wise.simulator import WiseSimulator
from ..systems.infor.models import BankAccount, Customer, Supplier
from ..systems.stripe.client import TEST_MODE_RATE, StripeGateway
from ..systems.wise.client import DEFAULT_RATE_LIMIT, WiseClient
from .infor_extract import private_sandbox

LATENCY_MS = 150


@dataclass(frozen=True)
class Run:
    records: int
    requests: int
    seconds: float
    failed: int

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds


def suppliers(count: int, prefix: str) -> list[Supplier]:
    today = datetime.now(UTC).date()
    return [
        Supplier(
            supplier_id=f"{prefix}{n:05d}",
            name=f"Supplier {prefix}{n}",
            currency="EUR",
            status="active",
            country="DE",
            bank_account=BankAccount(
                kind="iban",
                currency="EUR",
                account_holder=f"Supplier {prefix}{n} GmbH",
                country="DE",
                iban=IBAN.generate("DE", bank_code="37040044", account_code=f"{n:010d}").compact,
            ),
            modified_date=today,
        )
        for n in range(count)
    ]


def customers(count: int, prefix: str) -> list[Customer]:
    today = datetime.now(UTC).date()
    return [
        Customer(
            customer_id=f"{prefix}{n:05d}",
            name=f"Customer {n}",
            currency="EUR",
            email=f"billing{n}@example.com",
            country="DE",
            modified_date=today,
        )
        for n in range(count)
    ]


def push(
    store: StateStore,
    flow: str,
    records: Sequence[Any],
    record_id: Callable[[Any], str],
    client: Any,
    pusher_for: Callable[[SyncSession, Any], Pusher[Any]],
    workers: int,
) -> Run:
    session = SyncSession(store, tenant="BENCH", flow=flow, run_id=uuid.uuid4().hex, partition=None)
    started = time.perf_counter()
    results = push_all(pusher_for(session, client), session, records, record_id, workers=workers)
    seconds = time.perf_counter() - started
    return Run(len(records), client.requests_made, seconds, sum(r.action == "failed" for r in results))


def report(system: str, limit: float, concurrent: Run, single: Run, duplicates: int, workers: int) -> None:
    speedup = concurrent.records_per_second / single.records_per_second
    print(
        f"{system:<7} {concurrent.records:>6} records  {concurrent.requests:>6} requests  "
        f"{concurrent.seconds:6.1f} s  {workers:>2} workers  rate {concurrent.requests_per_second:6.1f}/s "
        f"of {limit:g}/s = {concurrent.requests_per_second / limit:.2f}  "
        f"records/s {concurrent.records_per_second:6.1f} vs {single.records_per_second:4.1f} one at a time "
        f"= {speedup:4.1f}x  failed {concurrent.failed + single.failed}  duplicates {duplicates}",
        flush=True,
    )


def bench_wise(sandbox: str, store: StateStore, records: int, sample: int) -> None:
    token = f"wise-sandbox-bench-{uuid.uuid4().hex[:8]}"

    def run(batch: list[Supplier], workers: int) -> Run:
        with WiseClient(f"{sandbox}/wise", token=token) as client:
            client.business_profile_id()  # the one profile lookup, not part of the measured push
            return push(
                store, "wise_recipients", batch, lambda s: s.supplier_id, client, RecipientSync, workers
            )

    workers = WiseClient(f"{sandbox}/wise", token=token).max_concurrency
    concurrent = run(suppliers(records, "C"), workers)
    single = run(suppliers(sample, "S"), 1)
    state = httpx.get(f"{sandbox}/_sandbox/wise/state", timeout=60).json()
    held = [r for user in state["users"].values() for r in user["recipients"] if r["active"]]
    per_holder = Counter(r["accountHolderName"] for r in held)
    duplicates = sum(n - 1 for n in per_holder.values())
    report("wise", DEFAULT_RATE_LIMIT.per_second, concurrent, single, duplicates, workers)


def bench_stripe(sandbox: str, store: StateStore, records: int, sample: int) -> None:
    key = f"sk_test_bench{uuid.uuid4().hex[:8]}"

    def run(batch: list[Customer], workers: int) -> Run:
        with StripeGateway(key, f"{sandbox}/stripe") as gateway:
            return push(
                store, "stripe_customers", batch, lambda c: c.customer_id, gateway, CustomerSync, workers
            )

    workers = StripeGateway(key, f"{sandbox}/stripe").max_concurrency
    concurrent = run(customers(records, "C"), workers)
    single = run(customers(sample, "S"), 1)
    account = httpx.get(f"{sandbox}/_sandbox/stripe/state", timeout=60).json()["accounts"][key]
    per_id = Counter(c["metadata"]["infor_customer_id"] for c in account["customers"])
    duplicates = sum(n - 1 for n in per_id.values())
    report("stripe", TEST_MODE_RATE.per_second, concurrent, single, duplicates, workers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=60, help="records pushed one at a time")
    args = parser.parse_args(argv)
    print(
        f"push benchmark: {args.records} records per system, {LATENCY_MS} ms latency per request", flush=True
    )
    with (
        tempfile.TemporaryDirectory() as home,
        private_sandbox(7, (WiseSimulator, StripeSimulator), LATENCY_MS) as sandbox,
    ):
        store = StateStore(f"sqlite:///{home}/state.db")
        store.migrate()
        bench_wise(sandbox, store, args.records, args.sample)
        bench_stripe(sandbox, store, args.records, args.sample)
        store.dispose()


if __name__ == "__main__":
    main()
