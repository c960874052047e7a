"""Benchmark: the Cin7 rate a 500-record push achieves, as a share of the budget (60 calls/min).

Starts a private sandbox with the Cin7 simulator only, set to ``--per-minute`` calls per rolling
minute per application key (the simulator answers 503 beyond it, as Cin7 does), and pushes
``--records`` Infor suppliers through ``SupplierSync`` with a real state store, fed by the push
factory's ``push_all`` with the client's declared concurrency, and a client whose own budget is the
same ``--per-minute``. Prints calls, 503s seen, the achieved calls per minute and
their share of the budget.

At Cin7's real 60/min a 500-record push takes about 8.5 minutes; ``--per-minute 600`` runs the same
measurement ten times faster with the simulator at the same scaled limit (the share is what counts).

    python -m ml_connector_pipelines.benchmarks.cin7_push [--records 500] [--per-minute 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from datetime import date

import httpx

from ..core.store import StateStore
from ..core.sync import SyncSession
from ..integrations.cin7.mapping import Cin7Settings
from ..integrations.cin7.pushers import SUPPLIERS, SupplierSync
from ..integrations.kit.pushers import push_all
from ..sandbox.cin7.simulator import Cin7Simulator, sandbox_credentials
from ..sandbox.host import SandboxServer
from ..systems.cin7.client import MAX_CONCURRENCY, Cin7Client
from ..systems.infor.models import Supplier

BUDGET_PER_MINUTE = 60  # Cin7's documented limit per API Application


@dataclass(frozen=True)
class PushRate:
    records: int
    calls: int
    throttled: int
    seconds: float
    per_minute: float

    @property
    def calls_per_minute(self) -> float:
        return self.calls / self.seconds * 60 if self.seconds else 0.0

    @property
    def share(self) -> float:
        return self.calls_per_minute / self.per_minute

    def report(self) -> str:
        scaled = "" if self.per_minute == BUDGET_PER_MINUTE else f" (scaled from {BUDGET_PER_MINUTE}/min)"
        return (
            f"cin7 push: {self.records} records, {self.calls} calls, {self.throttled} throttled (503), "
            f"{self.seconds:.1f} s, {self.calls_per_minute:.1f} calls/min of a {self.per_minute:g}/min "
            f"budget{scaled} = {self.share:.1%}"
        )


def _suppliers(count: int) -> list[Supplier]:
    today = date.today()
    return [
        Supplier(
            supplier_id=f"B{n:05d}",
            name=f"Bench supplier {n}",
            currency="EUR",
            status="active",
            modified_date=today,
        )
        for n in range(count)
    ]


def bench_cin7_push(
    records: int = 500, per_minute: float = BUDGET_PER_MINUTE, workers: int = MAX_CONCURRENCY
) -> PushRate:
    with SandboxServer(simulators=[Cin7Simulator]) as sandbox, tempfile.TemporaryDirectory() as home:
        body = {"per_minute": int(per_minute), "status": 503, "window_seconds": 60}
        httpx.put(f"{sandbox.url}/_sandbox/cin7/rate_limit", json=body, timeout=30).raise_for_status()
        credentials = sandbox_credentials("bench")
        store = StateStore(f"sqlite:///{home}/state.db")
        store.migrate()
        session = SyncSession(store, tenant="bench", flow=SUPPLIERS, run_id="bench", partition=None)
        client = Cin7Client(
            f"{sandbox.url}/cin7/ExternalApi/v2",
            credentials["account_id"],
            credentials["application_key"],
            per_minute=per_minute,
        )
        pusher = SupplierSync(session, client, Cin7Settings())
        pusher.directory()  # the one list call, before the clock starts
        calls_before = client.requests_made
        started = time.monotonic()
        with client:
            # As the push factory runs it: the client's declared concurrency, one error policy.
            push_all(pusher, session, _suppliers(records), lambda s: s.supplier_id, workers=workers)
            seconds = time.monotonic() - started
            calls = client.requests_made - calls_before
        store.dispose()
        throttled = sandbox.get_state("cin7")["throttled"]
    done = sum(1 for result in session.results if result.action == "created")
    if done != records:
        raise RuntimeError(f"only {done} of {records} suppliers were created")
    return PushRate(records, calls, throttled, seconds, per_minute)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--per-minute", type=float, default=BUDGET_PER_MINUTE)
    parser.add_argument("--workers", type=int, default=MAX_CONCURRENCY)
    args = parser.parse_args()
    print(bench_cin7_push(args.records, args.per_minute, args.workers).report())


if __name__ == "__main__":
    main()
