"""Opt-in transfers and their states back to Infor: signed Wise webhooks through the real receiver,
the sensor, the payout-status job, transfer-list polling, over HTTP against a private sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import httpx
import pytest

from ml_connector_pipelines.core.webhooks import WebhookServer, create_webhook_app
from ml_connector_pipelines.integrations.event_runs import TENANT_EVENTS_TAG
from ml_connector_pipelines.integrations.tenancy import webhook_verifiers
from ml_connector_pipelines.integrations.wise.mapping import transfer_customer_transaction_id
from ml_connector_pipelines.integrations.wise.sensors import wise_events_sensor
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.wise.webhooks import StateChange, sign, state_change_body
from ml_connector_pipelines.systems.wise.client import WiseClient
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant
from ml_connector_pipelines_tests.integrations.wise.wise_env import (
    audit,
    ledger,
    metadata,
    run_day,
    tenant_name,
    wise_user,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # A private simulator: this module switches Wise's out-of-order webhook delivery on and off.
    server = SandboxServer(seed=31).start()
    yield server
    server.stop()


@pytest.fixture
def tenant(sandbox: SandboxServer, connector: Any, request: pytest.FixtureRequest) -> TenantEnv:
    config = {"wise_create_transfers": True}
    return make_tenant(sandbox, connector, config=config, name=tenant_name(request))


@pytest.fixture
def receiver(tenant: TenantEnv) -> Iterator[WebhookServer]:
    """The real receiver, verifying with the simulator's public key stored in the tenant's vault."""
    connector = tenant.connector
    pem = httpx.get(f"{tenant.sandbox.url}/_sandbox/credentials").json()["wise"]["webhook_public_key_pem"]
    creds = connector.credentials.get(tenant.name, "wise")
    connector.credentials.put(tenant.name, "wise", {**creds, "webhook_public_keys": [pem]})
    server = WebhookServer(create_webhook_app(connector.state.inbox, webhook_verifiers(connector))).start()
    yield server
    server.stop()


def client(tenant: TenantEnv) -> WiseClient:
    return WiseClient(f"{tenant.sandbox.url}/wise", token=tenant.wise_token)


def move(tenant: TenantEnv, transfer_id: str, status: str) -> None:
    url = f"{tenant.sandbox.url}/_sandbox/wise/transfers/{transfer_id}/state"
    httpx.post(url, json={"status": status}, timeout=30).raise_for_status()


def webhooks(tenant: TenantEnv, **switches: bool) -> None:
    httpx.put(f"{tenant.sandbox.url}/_sandbox/wise/webhooks", json=switches, timeout=30).raise_for_status()


def extensions(tenant: TenantEnv) -> dict[str, dict[str, Any]]:
    return {e["invoice_key"]: e for e in tenant.infor_state()["extensions"] if e["file"] == "FPLEDG"}


def tick(tenant: TenantEnv) -> dg.SensorResult:
    # As a context manager, so the Dagster state the context sets is reset after the tick.
    with dg.build_sensor_context(
        instance=tenant.instance, resources={"state": tenant.resources["state"]}
    ) as context:
        return wise_events_sensor(context)


def sensor_then_job(tenant: TenantEnv) -> dict[str, Any]:
    """One sensor tick and, if it asks for one, the run it requested; the run's metadata."""
    result, repeat = tick(tenant), tick(tenant)
    assert isinstance(result, dg.SensorResult), result
    [request] = result.run_requests
    assert request.partition_key == tenant.name
    assert request.tags[TENANT_EVENTS_TAG] == tenant.name  # one event run per tenant at a time
    # The same tick again asks for the same batch: Dagster launches a run key only once.
    assert [r.run_key for r in repeat.run_requests] == [request.run_key]
    run = tenant.run("wise_payout_status_job")
    assert run.success
    return metadata(run)["wise_payout_status"]


def test_transfer_states_reach_the_right_infor_invoices(tenant: TenantEnv, receiver: WebhookServer) -> None:
    day = datetime.now(UTC).date()
    with client(tenant) as wise:
        wise.create_subscription(f"{receiver.url}/webhooks/wise/{tenant.name}")
    webhooks(tenant, out_of_order=True)
    try:
        first = run_day(tenant, day)
        transfers = {k: e for k, e in ledger(tenant, "wise_transfers").items() if e.status == "done"}
        assert len(transfers) == first["wise_transfers"]["created"] >= 3
        paid, cancelled, *waiting = sorted(transfers)
        move(tenant, transfers[paid].target_id, "processing")
        move(tenant, transfers[paid].target_id, "funds_converted")
        move(tenant, transfers[paid].target_id, "outgoing_payment_sent")
        move(tenant, transfers[cancelled].target_id, "cancelled")
    finally:
        webhooks(tenant, out_of_order=False)

    # Created unfunded, with the deterministic customerTransactionId; nothing funded them.
    in_wise = {t["id"]: t for t in wise_user(tenant)["transfers"]}
    for key, entry in transfers.items():
        transfer = in_wise[int(entry.target_id)]
        assert transfer["customerTransactionId"] == transfer_customer_transaction_id(tenant.name, key)
        assert transfer["quoteUuid"] == ledger(tenant, "wise_quotes")[key].target_id
    assert not [q for q in wise_user(tenant)["quotes"] if q["status"] == "FUNDED"]
    rerun = run_day(tenant, day)
    assert rerun["wise_transfers"]["created"] == 0
    assert len(wise_user(tenant)["transfers"]) == len(transfers)

    status_run = sensor_then_job(tenant)
    assert status_run["failed"] == 0
    stored = extensions(tenant)
    assert (stored[paid]["status"], stored[paid]["external_id"]) == ("paid", transfers[paid].target_id)
    assert (stored[cancelled]["status"], stored[cancelled]["external_id"]) == (
        "cancelled",
        transfers[cancelled].target_id,
    )
    for key in waiting:
        assert (stored[key]["status"], stored[key]["external_id"]) == (
            "awaiting_funds",
            transfers[key].target_id,
        )
    assert set(stored) == set(transfers)
    assert tenant.connector.state.inbox.pending("wise", tenant.name) == []
    # Nothing waiting: the sensor only asks for the periodic polling run (the missed-webhook net).
    [poll] = tick(tenant).run_requests
    assert ":poll:" in poll.run_key and poll.partition_key == tenant.name

    # A late "processing" (an old event Wise only now delivers) never overwrites "paid".
    paid_at = stored[paid]["updated_at"]
    late = StateChange(
        transfer_id=int(transfers[paid].target_id),
        profile_id=0,
        account_id=0,
        current_state="processing",
        previous_state="incoming_payment_waiting",
        occurred_at=(datetime.fromisoformat(paid_at) - timedelta(seconds=5)).isoformat(),
    )
    body = state_change_body(late, "late-delivery", "2.0.0", paid_at)
    answer = httpx.post(
        f"{receiver.url}/webhooks/wise/{tenant.name}",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature-SHA256": sign(body)},
    )
    assert answer.json()["status"] == "stored"
    late_run = sensor_then_job(tenant)
    assert extensions(tenant)[paid]["status"] == "paid"
    assert late_run.get("status", 0) == 0
    [refused] = [e for e in audit(tenant, "wise_payout_status") if e.reason and "older than" in e.reason]
    assert (refused.source_id, refused.details["state"]) == (paid, "processing")


def test_unknown_transfers_are_skipped_and_polling_catches_missed_webhooks(
    tenant: TenantEnv, receiver: WebhookServer
) -> None:
    day = datetime.now(UTC).date()
    run_day(tenant, day)
    transfers = {k: e for k, e in ledger(tenant, "wise_transfers").items() if e.status == "done"}
    with client(tenant) as wise:
        subscription = wise.create_subscription(f"{receiver.url}/webhooks/wise/{tenant.name}")
        # A transfer someone made by hand in Wise: its quote is not one of ours.
        recipient_id = int(next(iter(ledger(tenant, "wise_recipients").values())).target_id)
        recipient = wise.get_recipient(recipient_id)
        quote = wise.create_quote("EUR", recipient.currency, target_amount=Decimal("42"))
        foreign = wise.create_transfer(
            recipient_id, quote.id, "7e1f4c22-8f3a-4a57-9d65-0b3c1a2b3c4d", "by hand"
        )

    sensor_then_job(tenant)
    skipped = [e for e in audit(tenant, "wise_payout_status") if e.target_id == str(foreign.id)]
    assert skipped and all(e.action == "skipped" and "not one of ours" in e.reason for e in skipped)
    assert str(foreign.id) not in {e["external_id"] for e in extensions(tenant).values()}

    # Webhooks stop arriving (subscription gone); the poll of GET /v1/transfers still sees the move.
    with client(tenant) as wise:
        wise.http.delete(f"/v3/profiles/{wise.business_profile_id()}/subscriptions/{subscription.id}")
    key = sorted(transfers)[0]
    move(tenant, transfers[key].target_id, "processing")
    assert tenant.connector.state.inbox.pending("wise", tenant.name) == []
    # No webhook arrived, yet the sensor asks for a run: the periodic poll of the transfer list.
    [poll] = tick(tenant).run_requests
    assert ":poll:" in poll.run_key and poll.partition_key == tenant.name
    polled = tenant.run("wise_payout_status_job")
    assert polled.success
    assert extensions(tenant)[key]["status"] == "processing"
    [via_poll] = [
        e
        for e in audit(tenant, "wise_payout_status")
        if e.action == "status" and e.source_id == key and e.details["state"] == "processing"
    ]
    assert via_poll.details["via"] == "poll"

    # Polling again changes nothing in Infor.
    again = tenant.run("wise_payout_status_job")
    assert metadata(again)["wise_payout_status"].get("status", 0) == 0
    assert extensions(tenant)[key]["status"] == "processing"


def test_transfers_are_not_created_without_the_opt_in(
    sandbox: SandboxServer, connector: Any, request: pytest.FixtureRequest
) -> None:
    tenant = make_tenant(sandbox, connector, name=tenant_name(request))
    day = datetime.now(UTC).date()
    result = run_day(tenant, day)
    assert result["wise_quotes"]["created"] > 0
    assert result["wise_transfers"]["created"] == 0
    assert wise_user(tenant)["transfers"] == []
    reasons = {e.reason for e in audit(tenant, "wise_transfers")}
    assert reasons == {"not opted in"}
