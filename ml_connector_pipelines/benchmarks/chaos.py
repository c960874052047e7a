"""The chaos suite (issue 16): an operator's worst day, against the sandbox, counted at the simulators.

`make chaos` (`python -m ml_connector_pipelines.benchmarks.chaos`) drives the push flow of every pair
in FLOWS through these scenarios, each on a fresh sandbox, state store and Dagster instance with the
same seeded tenant (so every scenario sees the same records):

- `none` (the baseline: which records settle, which are flagged for real), `flaky`, `storm`, `chaos`,
  `gateway_timeout`: the sandbox fault profiles on the flow's target system; rerun until settled.
- `kill -9`: a run in its own process is SIGKILLed while it holds a claim mid-push, then rerun.
- `race (pg)`: two processes materialize one partition at once on a Postgres state store.
- `replay`: a settled partition materialized twice more.
- `bad record`: one source record made invalid (an empty name) before the first run.

Per scenario it prints: duplicates in the target (read from `GET /_sandbox/<system>/state`), records
neither done nor flagged (lost), false flags (flagged here but not in the baseline), needless
recreates (records the target deleted or voided although nothing changed), runs needed to settle
(after the kill: reruns), green runs with failed records, and the longest run. A second table holds
the door checks (deep JSON, .ionapi fuzz, forged or misrouted webhooks, first use).

Adding a pair is one `Flow` entry: its assets by name, its ledger flows, how to read duplicates and
recreates from its simulator, and a record to break. Runs go through Dagster (`dg.materialize` of
the named assets from `definitions.defs`), in-process or, for the kill and the race, in a worker
process (`python -m ml_connector_pipelines.benchmarks.chaos worker FLOW TENANT DAY`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

WORKER_TIMEOUT_SECONDS = 900
WORKER_MODULE = "ml_connector_pipelines.benchmarks.chaos"  # not __name__: "__main__" under make chaos
MAX_RUNS = 6
RACE_DB_LATENCY_MS = 15
TENANT = "CHAOS"  # one seeded tenant for every scenario: the same records everywhere
SEED = 11
PROFILES = ("none", "flaky", "storm", "chaos", "gateway_timeout")
SCENARIOS = (*PROFILES, "kill -9", "race (pg)", "replay", "bad record")
DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"  # the race needs one (as the tests)
QUICK_SCENARIOS = ("none", "flaky", "kill -9", "race (pg)", "replay")  # the CI variant


# Flows -------------------------------------------------------------------------------------------


@dataclass
class Env:
    """One scenario's world: a sandbox, a state store, a Dagster home and the registered tenant."""

    sandbox: Any
    root: Path
    db_url: str
    connector: Any
    master_key: str
    tenant: str = TENANT

    @property
    def environ(self) -> dict[str, str]:
        return {
            "ML_CONNECTOR_HOME": str(self.root / "home"),
            "ML_CONNECTOR_DB_URL": self.db_url,
            "ML_CONNECTOR_MASTER_KEY": self.master_key,
            "ML_CONNECTOR_ALLOW_LOOPBACK_HTTP": "1",
            "DAGSTER_HOME": str(self.root / "dagster"),
        }

    def ledger(self, flow: str) -> list[Any]:
        return self.connector.state.ledger.entries(self.tenant, flow)

    def target_state(self, system: str) -> dict[str, Any]:
        return self.sandbox.get_state(system)

    def infor(self) -> dict[str, Any]:
        # An empty config change seeds the tenant on first use and, unlike /seed, never reseeds it.
        url = f"{self.sandbox.url}/_sandbox/infor/tenants/{self.tenant}/config"
        httpx.put(url, json={}, timeout=30).raise_for_status()
        return self.sandbox.get_state("infor")["tenants"][self.tenant]

    def patch_infor(self, table: str, key: str, changes: dict[str, Any]) -> None:
        url = f"{self.sandbox.url}/_sandbox/infor/tenants/{self.tenant}/records/{table}/{key}"
        httpx.patch(url, json=changes, timeout=30).raise_for_status()


@dataclass(frozen=True)
class Flow:
    name: str
    system: str  # the target whose simulator is counted
    assets: tuple[str, ...]  # materialized in one run, upstream first
    ledger_flows: tuple[str, ...]
    day: Callable[[Env], date]  # the partition to push: the day with the most records
    duplicates: Callable[[Env], int]
    recreates: Callable[[Env], int]
    break_record: Callable[[Env], tuple[str, str]]  # makes one source record invalid -> (flow, id)


def _busiest(records: list[dict[str, Any]]) -> date:
    return date.fromisoformat(Counter(r["modified_date"] for r in records).most_common(1)[0][0])


def _wise_user(env: Env) -> dict[str, Any]:
    from ..integrations.tenancy import wise_client

    with wise_client(env.connector.credentials.get(env.tenant, "wise")) as client:
        profile_id = client.business_profile_id()
    users = env.target_state("wise")["users"].values()
    return next(u for u in users if any(p["id"] == profile_id for p in u["profiles"]))


def _wise_duplicates(env: Env) -> int:
    """Live Wise records the ledger does not know: active recipients, and quotes with a recipient
    attached (payable), that no ledger row points to. A spare unattached quote pays nobody."""
    user = _wise_user(env)
    recipients = {e.target_id for e in env.ledger("wise_recipients") if e.target_id}
    quotes = {e.target_id for e in env.ledger("wise_quotes") if e.target_id}
    stray = [r for r in user["recipients"] if r["active"] and str(r["id"]) not in recipients]
    attached = [q for q in user["quotes"] if q.get("targetAccount") and str(q["id"]) not in quotes]
    return len(stray) + len(attached)


def _wise_recreates(env: Env) -> int:
    return sum(1 for r in _wise_user(env)["recipients"] if not r["active"])  # deleted recipients


def _wise_break(env: Env) -> tuple[str, str]:
    day = _wise_day(env)
    of_the_day = [s for s in env.infor()["suppliers"] if s["modified_date"] == day.isoformat()]
    supplier = [s for s in of_the_day if s["bank_account"]][-1]
    env.patch_infor("suppliers", supplier["supplier_id"], {"name": ""})
    return "wise_recipients", supplier["supplier_id"]


def _wise_day(env: Env) -> date:
    # The sandbox's today: a patched record is stamped modified today, so the broken supplier stays
    # in the partition pushed (the seed gives today as many suppliers as any other day).
    return date.fromisoformat(env.infor()["today"])


def _stripe_account(env: Env) -> dict[str, Any]:
    key = env.connector.credentials.get(env.tenant, "stripe")["api_key"]
    return env.target_state("stripe")["accounts"].get(key) or {"customers": [], "invoices": []}


def _extra(counts: Counter[str]) -> int:
    return sum(n - 1 for n in counts.values() if n > 1)


def _stripe_duplicates(env: Env) -> int:
    account = _stripe_account(env)
    customers = Counter(c["metadata"].get("infor_customer_id") for c in account["customers"])
    live = [i for i in account["invoices"] if i["status"] != "void"]
    return _extra(customers) + _extra(Counter(i["metadata"].get("infor_invoice_key") for i in live))


def _stripe_recreates(env: Env) -> int:
    return sum(1 for i in _stripe_account(env)["invoices"] if i["status"] == "void")


def _stripe_day(env: Env) -> date:
    return _busiest([i for i in env.infor()["ar_invoices"] if i["status"] == "open"])


def _stripe_break(env: Env) -> tuple[str, str]:
    """A customer of the day with a country Stripe does not know (an empty name is fine for Stripe)."""
    day = _stripe_day(env).isoformat()
    # The customer of an open invoice of the day: in the extract, or synced on the spot for it.
    invoices = env.infor()["ar_invoices"]
    customer_id = next(
        i["customer_id"] for i in invoices if i["modified_date"] == day and i["status"] == "open"
    )
    env.patch_infor("customers", customer_id, {"country": "XX"})
    return "stripe_customers", customer_id


FLOWS: dict[str, Flow] = {
    "wise": Flow(
        name="wise",
        system="wise",
        assets=("infor_suppliers", "infor_ap_invoices", "wise/wise_recipients", "wise/wise_quotes"),
        ledger_flows=("wise_recipients", "wise_quotes"),
        day=_wise_day,
        duplicates=_wise_duplicates,
        recreates=_wise_recreates,
        break_record=_wise_break,
    ),
    "stripe": Flow(
        name="stripe",
        system="stripe",
        assets=("infor_customers", "infor_ar_invoices", "stripe/stripe_customers", "stripe/stripe_invoices"),
        ledger_flows=("stripe_customers", "stripe_invoices"),
        day=_stripe_day,
        duplicates=_stripe_duplicates,
        recreates=_stripe_recreates,
        break_record=_stripe_break,
    ),
}


# Running the flows ---------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    success: bool
    failed_records: int
    seconds: float


def materialize(flow: Flow, tenant: str, day: date) -> RunOutcome:
    """One run of the flow's assets for a tenant-day, through Dagster, in this process (env from
    os.environ: state store, keys, DAGSTER_HOME)."""
    import dagster as dg

    from ..definitions import build_resources
    from ..integrations.partitions import partition_key

    assets = [_assets_by_name()[name] for name in flow.assets]
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            assets,
            partition_key=partition_key(tenant, day),
            instance=instance,
            resources=build_resources(db_url=os.environ["ML_CONNECTOR_DB_URL"]),
            raise_on_error=False,
        )
        failed = 0
        for event in result.get_asset_materialization_events():
            value = event.materialization.metadata.get("failed")
            failed += int(value.value) if value is not None else 0
    return RunOutcome(result.success, failed, time.monotonic() - started)


def _assets_by_name() -> dict[str, Any]:
    """Every asset of the code location by name, without the resources `defs` binds to them."""
    import dagster as dg

    from ..definitions import INTEGRATIONS

    found: dict[str, Any] = {}
    for integration in INTEGRATIONS:
        for asset in integration.assets or []:
            if isinstance(asset, dg.AssetsDefinition):
                found.update({key.to_user_string(): asset for key in asset.keys})
    return found


def start_worker(env: Env, flow: Flow, day: date, db_latency_ms: int = 0) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", WORKER_MODULE, "worker", flow.name, env.tenant, day.isoformat()]
    argv += ["--db-latency-ms", str(db_latency_ms)]
    log = (env.root / f"worker-{time.monotonic_ns()}.log").open("w")
    return subprocess.Popen(
        argv,
        env={**os.environ, **env.environ},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the SIGKILL reaches every child
    )


@contextmanager
def scenario_env(profile: str, *, postgres: bool = False, latency_ms: int = 0) -> Iterator[Env]:
    """A fresh sandbox (with `profile` on every simulator but Infor), state store and Dagster home,
    with TENANT registered; os.environ points at them for the duration."""
    import dagster as dg

    from ..core.vault import generate_key
    from ..integrations.tenancy import Connector, register_tenant
    from ..sandbox.host import SandboxServer
    from ..sandbox.infor.simulator import sandbox_ionapi

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp, _database(postgres, Path(tmp)) as db_url:
        root = Path(tmp)
        (root / "dagster").mkdir()
        (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        sandbox = SandboxServer(seed=SEED, latency_ms=latency_ms).start()
        try:
            env = Env(sandbox=sandbox, root=root, db_url=db_url, connector=None, master_key=generate_key())
            os.environ.update(env.environ)
            env.connector = Connector.open()
            with dg.DagsterInstance.get() as instance:
                register_tenant(
                    env.connector,
                    TENANT,
                    ionapi=sandbox_ionapi(sandbox.url, TENANT),
                    config={"mongoose_config": f"{TENANT}_SITE"},
                    wise={"base_url": f"{sandbox.url}/wise", "token": f"wise-sandbox-{TENANT.lower()}"},
                    stripe={
                        "api_key": f"sk_test_{TENANT.lower()}",
                        "base_url": f"{sandbox.url}/stripe",
                        "webhook_secret": "",
                    },
                    instance=instance,
                )
            systems = [s.name for s in sandbox.simulators if s.name != "infor"]
            sandbox.set_faults(profile, seed=SEED, systems=systems)
            yield env
        finally:
            sandbox.stop()
            if env.connector is not None:
                env.connector.state.store.dispose()
            os.environ.clear()
            os.environ.update(saved)


@contextmanager
def _database(postgres: bool, root: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{root / 'state.db'}"
        return
    import uuid

    import sqlalchemy as sa

    admin_url = os.environ.get("ML_CONNECTOR_TEST_PG", DEFAULT_PG)
    name = f"mlc_chaos_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# Scenarios -----------------------------------------------------------------------------------------


@dataclass
class Row:
    flow: str
    scenario: str
    duplicates: int = 0
    lost: int = 0
    false_flags: int = 0
    needless_recreates: int = 0
    runs_to_settle: int | str = "-"
    green_with_failures: int = 0
    longest_run_s: float = 0.0
    note: str = ""
    reasons: list[str] = field(default_factory=list)  # printed under the table: why a row is not clean

    @property
    def clean(self) -> bool:
        recovered = isinstance(self.runs_to_settle, int) and (
            self.runs_to_settle <= 1 or self.scenario not in ("kill -9", "race (pg)", "replay", "none")
        )
        zeros = (
            self.duplicates,
            self.lost,
            self.false_flags,
            self.needless_recreates,
            self.green_with_failures,
        )
        return not any(zeros) and recovered


@dataclass
class Baseline:
    settled: set[tuple[str, str]] = field(default_factory=set)  # (flow, source id) done or flagged
    flagged: set[tuple[str, str]] = field(default_factory=set)


def quarantined(env: Env, flow: Flow) -> set[str]:
    """Source ids an extract quarantined: left out of the push, named and alerted (an audit alert on
    a flow other than the push's own). For the push they count as flagged."""
    return {
        event.source_id
        for event in env.connector.state.audit.history(env.tenant)
        if event.action == "alert" and event.flow not in flow.ledger_flows
    }


def ledger_sets(env: Env, flow: Flow) -> tuple[set[tuple[str, str]], set[tuple[str, str]], int]:
    """(settled, flagged, pending) over the flow's ledger flows; quarantined records count flagged."""
    settled: set[tuple[str, str]] = set()
    flagged: set[tuple[str, str]] = set()
    pending = 0
    for name in flow.ledger_flows:
        for entry in env.ledger(name):
            if entry.status == "pending":
                pending += 1
                continue
            settled.add((name, entry.source_id))
            if entry.status == "flagged":
                flagged.add((name, entry.source_id))
    held = quarantined(env, flow)
    if held:
        for name in flow.ledger_flows:
            flagged |= {(name, source_id) for source_id in held}
        settled |= flagged
    return settled, flagged, pending


def settle(env: Env, flow: Flow, day: date, row: Row, baseline: Baseline | None, max_runs: int) -> int:
    """Rerun until every record is done or flagged (and none pending); the runs it took."""
    for run in range(1, max_runs + 1):
        outcome = materialize(flow, env.tenant, day)
        row.longest_run_s = max(row.longest_run_s, outcome.seconds)
        if outcome.success and outcome.failed_records:
            row.green_with_failures += 1
        settled, _, pending = ledger_sets(env, flow)
        if outcome.success and not pending and (baseline is None or baseline.settled <= settled):
            return run
    return max_runs + 1


def measure(env: Env, flow: Flow, row: Row, baseline: Baseline | None, expected_flags: set[Any]) -> None:
    settled, flagged, _ = ledger_sets(env, flow)
    row.duplicates = flow.duplicates(env)
    row.needless_recreates = flow.recreates(env)
    if baseline is not None:
        lost = baseline.settled - settled
        row.lost = len(lost)
        if lost:
            row.reasons.append(f"lost: {', '.join(sorted(source_id for _, source_id in lost)[:5])}")
        false = flagged - baseline.flagged - expected_flags
        row.false_flags = len(false)
        if false:
            first = sorted(false)[0]
            row.reasons.append(f"false flag {first[1]}: {_reason(env, first)}"[:120])


def _reason(env: Env, key: tuple[str, str]) -> str | None:
    entry = env.connector.state.ledger.get(env.tenant, *key)
    return entry.reason if entry else None


def run_profile(flow: Flow, profile: str, baseline: Baseline | None) -> tuple[Row, Baseline]:
    row = Row(flow.name, profile)
    with scenario_env(profile) as env:
        day = flow.day(env)
        runs = settle(env, flow, day, row, baseline, MAX_RUNS)
        row.runs_to_settle = runs if runs <= MAX_RUNS else f">{MAX_RUNS}"
        measure(env, flow, row, baseline, set())
        settled, flagged, _ = ledger_sets(env, flow)
        row.note = f"{len(settled)} records, {len(flagged)} flagged"
        injected = env.sandbox.ctx.faults.describe().get("injected") or {}
        if injected:
            row.note += f"; faults {sum(injected.values())}"
    return row, Baseline(settled, flagged)


def run_kill(flow: Flow, baseline: Baseline) -> Row:
    """SIGKILL a worker while it holds a claim mid-push (after at least one record is done)."""
    row = Row(flow.name, "kill -9")
    with scenario_env("none", latency_ms=40) as env:
        day = flow.day(env)
        worker = start_worker(env, flow, day)
        killed = _kill_mid_push(env, flow, worker)
        if killed:
            row.note = "killed holding a claim"
        else:
            logs = sorted(env.root.glob("worker-*.log"))
            row.note = f"worker exited {worker.returncode} before a claim was seen"
            print(logs[-1].read_text()[-3000:] if logs else "", file=sys.stderr)
        runs = settle(env, flow, day, row, baseline, MAX_RUNS)
        row.runs_to_settle = runs if runs <= MAX_RUNS else f">{MAX_RUNS}"
        measure(env, flow, row, baseline, set())
    return row


def _kill_mid_push(env: Env, flow: Flow, worker: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    while worker.poll() is None and time.monotonic() < deadline:
        entries = [e for name in flow.ledger_flows for e in env.ledger(name)]
        done = sum(1 for e in entries if e.status == "done")
        held = any(e.status == "pending" and e.claimed_at is not None for e in entries)
        if done and held:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            return True
        time.sleep(0.01)
    worker.wait()
    return False


def run_race(flow: Flow, baseline: Baseline) -> Row:
    """Two processes on one partition at once, on Postgres; then reruns until settled."""
    row = Row(flow.name, "race (pg)")
    if not _postgres_reachable():
        row.runs_to_settle, row.note = "skipped", "no Postgres at ML_CONNECTOR_TEST_PG"
        return row
    with scenario_env("none", postgres=True, latency_ms=20) as env:
        day = flow.day(env)
        # A database a few milliseconds away, as in production: every statement waits, so the gap
        # between one run's read of the ledger and its claim is as wide as it is there.
        workers = [start_worker(env, flow, day, db_latency_ms=RACE_DB_LATENCY_MS) for _ in range(2)]
        codes = [worker.wait(WORKER_TIMEOUT_SECONDS) for worker in workers]
        settled, _, pending = ledger_sets(env, flow)
        if codes == [0, 0] and not pending and baseline.settled <= settled:
            row.runs_to_settle = 0  # the two racing runs settled it between them
        else:
            runs = settle(env, flow, day, row, baseline, MAX_RUNS)
            row.runs_to_settle = runs if runs <= MAX_RUNS else f">{MAX_RUNS}"
        row.note = f"worker exit codes {codes}"
        measure(env, flow, row, baseline, set())
    return row


def _slow_database(seconds: float) -> None:
    import sqlalchemy as sa

    def wait(*_: Any) -> None:
        time.sleep(seconds)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", wait)


def _postgres_reachable() -> bool:
    import sqlalchemy as sa

    url = os.environ.get("ML_CONNECTOR_TEST_PG", DEFAULT_PG)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:  # any failure to connect means no Postgres here
        return False


def run_replay(flow: Flow, baseline: Baseline) -> Row:
    """A settled partition materialized twice more: nothing new in the target."""
    row = Row(flow.name, "replay")
    with scenario_env("none") as env:
        day = flow.day(env)
        settle(env, flow, day, row, baseline, MAX_RUNS)
        before = flow.duplicates(env), flow.recreates(env)
        for _ in range(2):
            outcome = materialize(flow, env.tenant, day)
            row.longest_run_s = max(row.longest_run_s, outcome.seconds)
        row.runs_to_settle = 0
        measure(env, flow, row, baseline, set())
        row.note = "target unchanged" if (row.duplicates, row.needless_recreates) == before else "changed"
    return row


def run_bad_record(flow: Flow, baseline: Baseline) -> Row:
    """One record made invalid: it is flagged, every other record still settles."""
    row = Row(flow.name, "bad record")
    with scenario_env("none") as env:
        day = flow.day(env)
        bad = flow.break_record(env)
        runs = settle(env, flow, day, row, baseline, MAX_RUNS)
        row.runs_to_settle = runs if runs <= MAX_RUNS else f">{MAX_RUNS}"
        _, flagged, _ = ledger_sets(env, flow)
        # Records that need the bad one (an invoice of that customer) are rightly flagged with it.
        why = _reason(env, bad) or bad[1]
        expected = {bad} | {key for key in flagged if why in (_reason(env, key) or "") or bad[1] in key[1]}
        measure(env, flow, row, baseline, expected)
        row.note = f"{bad[1]} flagged" if bad in flagged else f"{bad[1]} NOT flagged"
        if bad not in flagged and bad not in baseline.settled:
            row.lost += 1  # not already counted as lost
    return row


def run_flow(flow: Flow, scenarios: tuple[str, ...]) -> list[Row]:
    baseline_row, baseline = run_profile(flow, "none", None)
    rows = [baseline_row] if "none" in scenarios else []
    for scenario in scenarios:
        if scenario == "none":
            continue
        if scenario in PROFILES:
            rows.append(run_profile(flow, scenario, baseline)[0])
        else:
            rows.append(SCENARIO_RUNNERS[scenario](flow, baseline))
        print_rows(rows[-1:], header=False)
    return rows


SCENARIO_RUNNERS: dict[str, Callable[[Flow, Baseline], Row]] = {
    "kill -9": run_kill,
    "race (pg)": run_race,
    "replay": run_replay,
    "bad record": run_bad_record,
}


# Door checks (items 7-10): what must be refused is refused cleanly, what must work works ----------------


@dataclass
class DoorRow:
    check: str
    attempts: int
    accepted_wrongly: int
    crashed: int  # tracebacks / 500s instead of a clean 4xx or exit 2
    note: str = ""

    @property
    def clean(self) -> bool:
        return not self.accepted_wrongly and not self.crashed


def door_checks() -> list[DoorRow]:
    return [_deep_webhook(), _ionapi_fuzz(), _stripe_future(), _wise_other_tenant(), _first_use()]


def _deep_webhook() -> DoorRow:
    from ..core.inbox import Inbox
    from ..core.store import StateStore
    from ..core.webhooks import WebhookServer, create_webhook_app
    from ..sandbox.stripe.simulator import sign
    from ..systems.stripe.client import StripeWebhookVerifier

    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(f"sqlite:///{tmp}/state.db")
        store.migrate()
        app = create_webhook_app(Inbox(store), {"stripe": StripeWebhookVerifier({"t": "whsec_t"}.get)})
        crashed = accepted = 0
        depths = (1_000, 50_000, 200_000)
        with WebhookServer(app) as server:
            for depth in depths:
                body = '{"id": "evt_1", "data": ' + "[" * depth + "]" * depth + "}"
                headers = {"Stripe-Signature": sign("whsec_t", int(time.time()), body)}
                status = httpx.post(
                    f"{server.url}/webhooks/stripe/t", content=body, headers=headers
                ).status_code
                crashed += status >= 500
                accepted += status < 400
        store.dispose()
    return DoorRow("deep JSON webhook (signed)", len(depths), accepted, crashed, "400 or 413 each")


def _ionapi_fuzz() -> DoorRow:
    from ..sandbox.infor.simulator import sandbox_ionapi
    from ..systems.infor.ionapi import IonApi, IonApiError, parse_ionapi_json

    good = sandbox_ionapi("https://example.com", "ACME")
    bad = [
        ("iu", good["iu"] + "\r\nX-Evil: 1"),
        ("pu", "https://u:p@example.com/ACME/as/"),
        ("cs", "x" * 1_000_000),
        ("ti", "../ACME"),
        ("ti", "AC\x01ME"),
        ("ot", "token?x=1"),
    ]
    accepted = crashed = 0
    for key, value in bad:
        try:
            IonApi.from_dict({**good, key: value})
            accepted += 1
        except IonApiError as exc:
            accepted += exc.key != key  # refused, but without naming the key counts as a miss
        except Exception:
            crashed += 1
    try:
        parse_ionapi_json("[" * 30_000 + "]" * 30_000)
        accepted += 1
    except IonApiError:
        pass
    except Exception:
        crashed += 1
    return DoorRow(".ionapi fuzz (CRLF, user:pw, 1 MB, ti, deep)", len(bad) + 1, accepted, crashed)


def _stripe_future() -> DoorRow:
    from ..core.webhooks import InvalidWebhook
    from ..sandbox.stripe.simulator import sign
    from ..systems.stripe.client import StripeWebhookVerifier

    verifier = StripeWebhookVerifier({"t": "whsec_t"}.get)
    body = json.dumps({"id": "evt_1", "object": "event"})
    accepted = 0
    aheads = (600, 86_400, 86_400 * 365)
    for ahead in aheads:
        try:
            verifier(
                "t", {"stripe-signature": sign("whsec_t", int(time.time()) + ahead, body)}, body.encode()
            )
            accepted += 1
        except InvalidWebhook:
            pass
    return DoorRow("Stripe signature dated in the future", len(aheads), accepted, 0)


def _wise_other_tenant() -> DoorRow:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from ..core.webhooks import InvalidWebhook
    from ..systems.wise.signature import WiseWebhookVerifier

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = WiseWebhookVerifier(lambda tenant: [pem.decode()], {"a": 1, "b": 2}.get)
    resource = {"type": "transfer", "id": 7, "profile_id": 1, "account_id": 3}
    event = {"event_type": "transfers#state-change", "data": {"resource": resource, "current_state": "x"}}
    body = json.dumps(event).encode()
    signature = base64.b64encode(private.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    headers = {"x-signature-sha256": signature}
    verifier("a", headers, body)  # tenant a's own event is fine
    try:
        verifier("b", headers, body)
        accepted = 1
    except InvalidWebhook:
        accepted = 0
    return DoorRow("Wise event of tenant A at tenant B's URL", 1, accepted, 0, "profile_id checked")


def _first_use() -> DoorRow:
    from ..sandbox.infor.simulator import sandbox_ionapi

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ionapi = root / "t.ionapi"
        ionapi.write_text(json.dumps(sandbox_ionapi("http://127.0.0.1:1", "FIRST")))
        (root / "dagster").mkdir()
        (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("ML_CONNECTOR_MASTER_KEY", "ML_CONNECTOR_DB_URL", "ML_CONNECTOR_ENV")
        }
        env |= {"ML_CONNECTOR_HOME": str(root / "home"), "DAGSTER_HOME": str(root / "dagster")}
        env["ML_CONNECTOR_ALLOW_LOOPBACK_HTTP"] = "1"
        # --no-check: this is about the master key on first use, not about reaching the systems.
        argv = [sys.executable, "-m", "ml_connector_pipelines.cli", "tenants", "add", "FIRST", "--no-check"]
        fresh = subprocess.run([*argv, "--ionapi", str(ionapi)], env=env, capture_output=True, text=True)
        (root / "home" / "master.key").unlink(missing_ok=True)
        prod = subprocess.run(
            [*argv, "--replace", "--ionapi", str(ionapi)],
            env={**env, "ML_CONNECTOR_ENV": "production"},
            capture_output=True,
            text=True,
        )
    works = fresh.returncode == 0 and "ML_CONNECTOR_MASTER_KEY" in fresh.stderr
    refuses = prod.returncode == 2 and "no master key" in prod.stderr
    note = f"fresh home exit {fresh.returncode}, production without key exit {prod.returncode}"
    return DoorRow("tenants add on a fresh home / production", 2, int(not refuses), int(not works), note)


# Output ------------------------------------------------------------------------------------------------

COLUMNS = (
    ("flow", 7),
    ("scenario", 16),
    ("duplicates", 10),
    ("lost", 5),
    ("false_flags", 11),
    ("needless_recreates", 18),
    ("runs_to_settle", 14),
    ("green_with_failures", 19),
    ("longest_run_s", 13),
    ("note", 0),
)


def print_rows(rows: list[Row], header: bool = True) -> None:
    if header:
        print("  ".join(name.ljust(width) for name, width in COLUMNS), flush=True)
    for row in rows:
        cells = []
        for name, width in COLUMNS:
            value = getattr(row, name)
            text = f"{value:.1f}" if isinstance(value, float) else str(value)
            cells.append(text.ljust(width))
        print("  ".join(cells), flush=True)


def print_door(rows: list[DoorRow]) -> None:
    print(f"{'door check':46}  attempts  accepted_wrongly  crashed  note")
    for row in rows:
        print(f"{row.check:46}  {row.attempts:<8}  {row.accepted_wrongly:<16}  {row.crashed:<7}  {row.note}")


def run_chaos(flows: list[str], scenarios: tuple[str, ...]) -> tuple[list[Row], list[DoorRow]]:
    rows: list[Row] = []
    print_rows([])
    for name in flows:
        rows += run_flow(FLOWS[name], scenarios)
    print("\nall rows:")
    print_rows(rows)
    for row in rows:
        for reason in row.reasons:
            print(f"  {row.flow} / {row.scenario}: {reason}")
    door = door_checks()
    print()
    print_door(door)
    return rows, door


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help="one run of a flow (used by the kill and race scenarios)")
    worker.add_argument("flow", choices=sorted(FLOWS))
    worker.add_argument("tenant")
    worker.add_argument("day")
    worker.add_argument("--db-latency-ms", type=int, default=0, help="sleep before every SQL statement")
    parser.add_argument("--flow", action="append", choices=sorted(FLOWS), help="default: every flow")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: every scenario")
    parser.add_argument("--quick", action="store_true", help="the short CI variant (no slow profiles)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        if args.db_latency_ms:
            _slow_database(args.db_latency_ms / 1000)
        outcome = materialize(FLOWS[args.flow], args.tenant, date.fromisoformat(args.day))
        return 0 if outcome.success else 1
    scenarios = tuple(args.scenario or (QUICK_SCENARIOS if args.quick else SCENARIOS))
    rows, door = run_chaos(args.flow or sorted(FLOWS), scenarios)
    return 0 if all(r.clean for r in rows) and all(d.clean for d in door) else 1


if __name__ == "__main__":
    sys.exit(main())
