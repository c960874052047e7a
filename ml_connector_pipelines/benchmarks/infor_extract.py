"""Benchmark: every Infor extract at 10,000 records per entity, for an M3 and a SyteLine tenant.

Starts a private sandbox (Infor simulator only) in a child process, so its CPU and memory are not
counted here; registers one tenant per product the way `ml-connector tenants add` does; reseeds each
with N records per entity; then runs each extract through the adapter, and the suppliers asset once
through Dagster, for each of the ten modified dates the seed spreads records over, summed over the days.

Per extract it prints records, requests (token calls and retries included), requests per record,
records per second, the tracemalloc peak of that extract alone, and the process's ru_maxrss so far.

    python -m ml_connector_pipelines.benchmarks.infor_extract [--records 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from multiprocessing.connection import Connection

import dagster as dg
import httpx

from ..core.vault import generate_key
from ..definitions import build_resources
from ..integrations.infor.assets import infor_extracts
from ..integrations.partitions import partition_key
from ..integrations.resources import InforResource
from ..integrations.tenancy import Connector, register_tenant
from ..sandbox.host import SandboxServer
from ..sandbox.infor.seed import DEFAULT_COUNTS
from ..sandbox.infor.simulator import InforSimulator, sandbox_ionapi

ENTITIES = tuple(DEFAULT_COUNTS)  # suppliers, customers, ap/ar invoices, purchase orders, gl accounts
SEED_DAYS = 10  # the seed stamps each record with one of the ten days up to the tenant's today
MIB = 1024 * 1024
SUPPLIERS = next(asset for asset in infor_extracts if asset.key == dg.AssetKey("infor_suppliers"))


@dataclass(frozen=True)
class Measurement:
    product: str
    extract: str
    records: int
    requests: int
    seconds: float
    peak_bytes: int  # tracemalloc peak while this extract ran, above what was allocated before
    maxrss_bytes: int  # the process's resident high-water mark so far (never goes down)

    def row(self) -> str:
        per_record = self.requests / self.records if self.records else 0.0
        rate = self.records / self.seconds if self.seconds else 0.0
        return (
            f"{self.product:<9}{self.extract:<26}{self.records:>8}{self.requests:>9}{per_record:>10.4f}"
            f"{rate:>11.0f}{self.seconds:>8.2f}{self.peak_bytes / MIB:>11.1f}{self.maxrss_bytes / MIB:>12.1f}"
        )


HEADER = (
    f"{'product':<9}{'extract':<26}{'records':>8}{'requests':>9}{'req/rec':>10}"
    f"{'rec/s':>11}{'secs':>8}{'peak MiB':>11}{'maxrss MiB':>12}"
)


def _serve(seed: int, conn: Connection, simulators: tuple[type, ...], latency_ms: int) -> None:
    with SandboxServer(seed=seed, simulators=list(simulators), latency_ms=latency_ms) as server:
        conn.send(server.url)
        conn.recv()  # serve until the parent asks us to stop


@contextmanager
def private_sandbox(
    seed: int, simulators: tuple[type, ...] = (InforSimulator,), latency_ms: int = 0
) -> Iterator[str]:
    """The sandbox's base URL, served by a child process for the duration of the block."""
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(seed, child, simulators, latency_ms), daemon=True
    )
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("sandbox did not start")
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(timeout=15)


def reseed(sandbox_url: str, tenant: str, records: int) -> date:
    """Give every entity `records` records; returns the tenant's today (the last seeded day)."""
    response = httpx.put(
        f"{sandbox_url}/_sandbox/infor/tenants/{tenant}/seed",
        json=dict.fromkeys(ENTITIES, records),
        timeout=300,
    )
    response.raise_for_status()
    return date.fromisoformat(response.json()["today"])


def measure(product: str, extract: str, run: Callable[[], tuple[int, int]]) -> Measurement:
    """Time one extract (summed over the days) and its tracemalloc peak; `run` -> (records, requests)."""
    tracemalloc.reset_peak()
    # What stays allocated from earlier runs (Dagster's in-memory event log) is not this extract's.
    baseline = tracemalloc.get_traced_memory()[0]
    began = time.perf_counter()
    records, requests = run()
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] - baseline
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return Measurement(product, extract, records, requests, seconds, peak, maxrss)


def through_adapter(infor: InforResource, tenant: str, entity: str, days: list[date]) -> tuple[int, int]:
    records = 0
    with infor.adapter(tenant) as adapter:  # one adapter (one token) for the ten days, as a backfill
        for day in days:
            records += sum(1 for _ in getattr(adapter, entity)(day))
        return records, adapter.requests_made


def through_dagster(
    tenant: str, days: list[date], instance: dg.DagsterInstance, resources: dict[str, object]
) -> tuple[int, int]:
    """Materialize the suppliers asset once per day: typed DataFrame, checks and metadata included."""
    records = requests = 0
    for day in days:
        result = dg.materialize(
            [SUPPLIERS],
            partition_key=partition_key(tenant, day),
            instance=instance,
            resources=resources,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        records += int(metadata["row_count"].value)  # type: ignore[arg-type]
        requests += int(metadata["requests_used"].value)  # type: ignore[arg-type]
    return records, requests


def run(records_per_entity: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as home, private_sandbox(seed) as sandbox_url:
        # The same environment the CLI and Dagster read, pointed at a throwaway store and key.
        os.environ.update(
            ML_CONNECTOR_HOME=home,
            ML_CONNECTOR_MASTER_KEY=generate_key(),
            ML_CONNECTOR_ALLOW_LOOPBACK_HTTP="1",
        )
        os.environ.pop("ML_CONNECTOR_DB_URL", None)
        connector = Connector.open()
        instance = dg.DagsterInstance.ephemeral()
        resources = build_resources(db_url=connector.settings.db_url)
        infor: InforResource = resources["infor"]  # type: ignore[assignment]

        print(f"{records_per_entity} records per entity over {SEED_DAYS} modified dates, page size 500")
        print(HEADER)
        tracemalloc.start()
        for product in ("m3", "syteline"):
            tenant = f"BENCH_{product.upper()}"
            register_tenant(
                connector,
                tenant,
                ionapi=sandbox_ionapi(sandbox_url, tenant),
                product=product,
                config={"mongoose_config": f"{tenant}_SITE"},
                instance=instance,
            )
            today = reseed(sandbox_url, tenant, records_per_entity)
            days = [today - timedelta(days=back) for back in range(SEED_DAYS)]
            for entity in ENTITIES:
                result = measure(product, entity, partial(through_adapter, infor, tenant, entity, days))
                print(result.row(), flush=True)
            dagster = measure(
                product,
                "infor_suppliers (Dagster)",
                partial(through_dagster, tenant, days, instance, resources),
            )
            print(dagster.row(), flush=True)
        tracemalloc.stop()
    print("SyteLine GL accounts are dimension 1 only (its chart of accounts has one dimension).")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000, help="records per entity (default 10000)")
    parser.add_argument("--seed", type=int, default=7, help="sandbox seed (default 7)")
    args = parser.parse_args()
    run(args.records, args.seed)


if __name__ == "__main__":
    main()
