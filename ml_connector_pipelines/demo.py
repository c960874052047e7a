"""`ml-connector demo`: the whole product on the embedded default (sandbox + SQLite), in one command.

It starts the sandbox and the webhook receiver, registers a demo tenant with sandbox credentials, runs
the main job for today's partition, then plays the outside world (a Wise transfer moving to "sent", a
Stripe customer paying an invoice and getting a partial refund), lets the event-driven jobs write the
results back to Infor, reruns the main job to show nothing is sent twice, and prints one line per flow.
"""

import os
import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx

from .console import print_table
from .core.webhooks import WebhookServer, create_webhook_app
from .definitions import defs
from .integrations.cin7.demo import add_cin7_to_demo
from .integrations.cleo.demo import run_cleo_demo
from .integrations.partitions import partition_key
from .integrations.procurify.demo import run_procurify_demo
from .integrations.tenancy import Connector, register_tenant, webhook_verifiers, wise_client
from .sandbox.host import SandboxServer
from .sandbox.infor.simulator import sandbox_ionapi

TENANT = "DEMO"
WISE_TOKEN = "wise-sandbox-demo"
STRIPE_KEY = "sk_test_demo"
# The full event log goes to the instance (see it with `make ui`); the terminal shows warnings only.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ACTIONS = ["created", "updated", "recreated", "skipped", "flagged", "failed"]  # always shown


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _setup_tenant(
    connector: Connector, sandbox: SandboxServer, receiver: WebhookServer, instance: Any
) -> None:
    # The sandbox starts empty on every run, so what the ledger remembers from the last demo is void.
    connector.state.forget_sync_state(TENANT)
    wise_key = sandbox.simulator("wise").credentials()["webhook_public_key_pem"]
    wise = {"base_url": f"{sandbox.url}/wise", "token": WISE_TOKEN, "webhook_public_keys": [wise_key]}
    # Playing the Stripe dashboard: create the webhook endpoint and keep its signing secret.
    endpoint = httpx.post(
        f"{sandbox.url}/stripe/v1/webhook_endpoints",
        auth=(STRIPE_KEY, ""),
        data={"url": f"{receiver.url}/webhooks/stripe/{TENANT}", "enabled_events[0]": "*"},
        timeout=30,
    ).json()
    stripe = {
        "api_key": STRIPE_KEY,
        "base_url": f"{sandbox.url}/stripe",
        "webhook_secret": endpoint["secret"],
    }
    register_tenant(
        connector,
        TENANT,
        ionapi=sandbox_ionapi(sandbox.url, TENANT),
        product="m3",
        config={"wise_source_currency": "EUR", "wise_create_transfers": True},
        wise=wise,
        stripe=stripe,
        instance=instance,
    )
    with wise_client(wise) as client:
        client.create_subscription(f"{receiver.url}/webhooks/wise/{TENANT}")
    add_cin7_to_demo(connector, sandbox, TENANT)


def _play_the_outside_world(sandbox: SandboxServer) -> list[str]:
    """A Wise payout completes; a Stripe customer pays one invoice and is refunded part of another."""
    happened: list[str] = []
    wise_user = next(
        (u for u in sandbox.get_state("wise")["users"].values() if u["transfers"]),
        None,
    )
    if wise_user is None:
        happened.append("no Wise transfer to move (no open invoice got an unfunded transfer)")
    else:
        transfer = wise_user["transfers"][0]
        for status in ("processing", "funds_converted", "outgoing_payment_sent"):
            httpx.post(
                f"{sandbox.url}/_sandbox/wise/transfers/{transfer['id']}/state",
                json={"status": status},
                timeout=30,
            ).raise_for_status()
        happened.append(
            f"Wise transfer {transfer['id']} moved to outgoing_payment_sent (signed webhooks sent)"
        )
    account = sandbox.get_state("stripe")["accounts"].get(STRIPE_KEY, {})
    open_invoices = [i for i in account.get("invoices", []) if i["status"] == "open"]
    for invoice in open_invoices[:2]:
        httpx.post(
            f"{sandbox.url}/_sandbox/stripe/invoices/{invoice['id']}/pay", timeout=30
        ).raise_for_status()
        happened.append(
            f"Stripe invoice {invoice['id']} paid ({invoice['amount_due']} {invoice['currency']})"
        )
    if open_invoices:
        paid = sandbox.get_state("stripe")["accounts"][STRIPE_KEY]
        charge = next(c for c in paid.get("charges", []) if c["status"] == "succeeded")
        refund = charge["amount"] // 4 or 1
        httpx.post(
            f"{sandbox.url}/_sandbox/stripe/refunds",
            json={"charge": charge["id"], "amount": refund},
            timeout=30,
        ).raise_for_status()
        happened.append(f"Stripe charge {charge['id']} partially refunded ({refund} {charge['currency']})")
    return happened


def _summary(connector: Connector, run_ids: list[str]) -> tuple[list[dict[str, Any]], list[str], int]:
    """Audit rows of the demo's runs, counted per flow and action (alerts are repeats of flags)."""
    counts: dict[str, Counter[str]] = {}
    for event in connector.state.audit.history(TENANT):
        if event.run_id in run_ids and event.action != "alert":
            counts.setdefault(event.flow, Counter())[event.action] += 1
    seen = {action for c in counts.values() for action in c}
    columns = ACTIONS + sorted(seen - set(ACTIONS))
    rows = [{"flow": flow, **{a: c.get(a, 0) for a in columns}} for flow, c in sorted(counts.items())]
    return rows, columns, sum(c.get("failed", 0) for c in counts.values())


def _extracted(result: dg.ExecuteInProcessResult) -> str:
    counts = {
        event.asset_key.to_user_string().removeprefix("infor_"): event.materialization.metadata[
            "row_count"
        ].value
        for event in result.get_asset_materialization_events()
        if "row_count" in event.materialization.metadata
    }
    return ", ".join(f"{count} {entity}" for entity, count in sorted(counts.items()))


def _run(job_name: str, key: Any, instance: dg.DagsterInstance, label: str) -> dg.ExecuteInProcessResult:
    print(f"- {label} ...", flush=True)
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE
    )
    print(f"  run {result.run_id[:8]}: {'success' if result.success else 'FAILED'}", flush=True)
    return result


def run_demo(ui: bool = False, port: int = 8700) -> int:
    os.environ.setdefault("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP", "1")
    connector = Connector.open(create_key=True)
    instance = dg.DagsterInstance.get()
    sandbox = SandboxServer(port=port if _port_free(port) else 0, seed=7).start()
    receiver = WebhookServer(create_webhook_app(connector.state.inbox, webhook_verifiers(connector))).start()
    print(f"sandbox at {sandbox.url}, webhook receiver at {receiver.url}", flush=True)
    try:
        _setup_tenant(connector, sandbox, receiver, instance)
        today = datetime.now(UTC).date()
        day_key = partition_key(TENANT, today)
        results = [_run("main", day_key, instance, f"main job for {TENANT} / {today}")]
        print(f"  extracted from Infor: {_extracted(results[0])}")
        results += run_procurify_demo(connector, sandbox, instance, TENANT, _run)
        for line in _play_the_outside_world(sandbox):
            print(f"- {line}")
        results.append(_run("wise_payout_status_job", TENANT, instance, "Wise payout status back to Infor"))
        results.append(
            _run("stripe_ar_payments_job", TENANT, instance, "Stripe payments and refunds to Infor AR")
        )
        results += run_cleo_demo(connector, sandbox, instance, TENANT, _run)
        results.append(_run("main", day_key, instance, "main job again (a replay sends nothing twice)"))
        rows, columns, failed = _summary(connector, [r.run_id for r in results])
        print()
        print_table(rows, ["flow", *columns])
        print()
        print(f"record-level audit trail: ml-connector audit {TENANT}   run history: make ui")
        ok = failed == 0 and all(r.success for r in results)
        if ui:
            print(
                "Dagster UI at http://127.0.0.1:3000 (sandbox and receiver stay up; Ctrl-C to stop)",
                flush=True,
            )
            try:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "dagster",
                        "dev",
                        "-m",
                        "ml_connector_pipelines.definitions",
                        "-p",
                        "3000",
                    ],
                    check=False,
                )
            except KeyboardInterrupt:
                pass
        return 0 if ok else 1
    finally:
        receiver.stop()
        sandbox.stop()
