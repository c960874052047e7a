"""Helpers for the Infor <-> Stripe flow tests: a real webhook receiver, and what each target holds."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import httpx
import pytest

from ml_connector_pipelines.core.webhooks import WebhookServer, create_webhook_app
from ml_connector_pipelines.integrations.event_runs import RUN_KEY_TAG
from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.integrations.stripe.assets import stripe_customers, stripe_invoices
from ml_connector_pipelines.integrations.stripe.mapping import to_minor_units
from ml_connector_pipelines.integrations.stripe.payments import PAYMENT_EVENT_TYPES
from ml_connector_pipelines.integrations.stripe.sensors import stripe_events_sensor
from ml_connector_pipelines.integrations.tenancy import webhook_verifiers
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.infor.m3_adapter import payment_key
from ml_connector_pipelines_tests.conftest import TenantEnv
from ml_connector_pipelines_tests.sandbox.m3_conformance import m3_violations

EXTRACTS = {asset.key.to_user_string(): asset for asset in infor_extracts}
PUSH_ASSETS = [EXTRACTS["infor_customers"], EXTRACTS["infor_ar_invoices"], stripe_customers, stripe_invoices]


def today() -> date:
    return datetime.now(UTC).date()


def infor_key(record: dict[str, Any]) -> str:
    return f"{record['division']}/{record['customer_id']}/{record['invoice_number']}/{record['invoice_year']}"


def minor(amount: str, currency: str) -> int:
    return to_minor_units(Decimal(amount), currency, "test", "amount")


def stripe_account(tenant: TenantEnv) -> dict[str, Any]:
    """What the tenant's simulated Stripe account holds, read from the simulator itself."""
    accounts = tenant.sandbox.get_state("stripe")["accounts"]
    return accounts.get(tenant.stripe_key) or {"customers": [], "invoices": [], "events": []}


def busiest_day(tenant: TenantEnv) -> date:
    """The modified date with the most open AR invoices: the richest partition to push."""
    # Infor tenants are seeded on first use; this makes the first use now.
    httpx.put(f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/seed", json={}, timeout=30)
    opened = Counter(i["modified_date"] for i in tenant.infor_state()["ar_invoices"] if i["status"] == "open")
    return date.fromisoformat(opened.most_common(1)[0][0])


def open_invoices_of(tenant: TenantEnv, day: date) -> list[dict[str, Any]]:
    return [
        i
        for i in tenant.infor_state()["ar_invoices"]
        if i["modified_date"] == day.isoformat() and i["status"] == "open"
    ]


@pytest.fixture(autouse=True)
def _m3_calls_follow_the_metadata(sandbox_server: SandboxServer) -> Iterator[None]:
    """After each test, no M3 call of the flows was refused by the MI metadata (issue 9)."""
    yield
    assert m3_violations(sandbox_server) == []


def postings(tenant: TenantEnv, reference: str) -> list[dict[str, Any]]:
    """Infor's postings for a payment reference. M3 keeps its 15-character key (ARS040MI CKNO)."""
    held_as = {reference, payment_key(reference)}
    return [p for p in tenant.infor_state()["ar_payments"] if p["reference"] in held_as]


def stripe_post(tenant: TenantEnv, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """A call to the tenant's Stripe API outside our client (what a person would do in Stripe).
    Keyed, so a retry after an injected fault replays instead of repeating."""
    headers = {"Authorization": f"Bearer {tenant.stripe_key}", "Idempotency-Key": uuid.uuid4().hex}
    for _ in range(10):
        answer = httpx.post(f"{tenant.sandbox.url}/stripe{path}", data=data, headers=headers, timeout=30)
        if answer.status_code < 500 and answer.status_code != 429:
            break
    answer.raise_for_status()
    return answer.json()


def sandbox_post(tenant: TenantEnv, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = httpx.post(f"{tenant.sandbox.url}/_sandbox{path}", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


def patch_infor(tenant: TenantEnv, table: str, key: str, changes: dict[str, Any]) -> None:
    url = f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/records/{table}/{key}"
    httpx.patch(url, json=changes, timeout=30).raise_for_status()


def tick_sensor(tenant: TenantEnv) -> list[dg.RunRequest]:
    with dg.build_sensor_context(instance=tenant.instance, resources=tenant.resources) as context:
        result = stripe_events_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return list(result.run_requests or [])


def launch(tenant: TenantEnv, request: dg.RunRequest) -> bool:
    """Run what the sensor asked for, tagged with its run key as the Dagster daemon does."""
    assert request.partition_key == tenant.name and request.run_key
    tags = {**request.tags, RUN_KEY_TAG: request.run_key}
    return tenant.run("stripe_ar_payments_job", tags=tags).success


@pytest.fixture
def receiver(tenant: TenantEnv) -> Iterator[WebhookServer]:
    yield from start_receiver(tenant)


def start_receiver(tenant: TenantEnv) -> Iterator[WebhookServer]:
    """The real receiver, subscribed in Stripe, with the endpoint's secret in the tenant's vault."""
    connector = tenant.connector
    server = WebhookServer(create_webhook_app(connector.state.inbox, webhook_verifiers(connector))).start()
    endpoint = stripe_post(
        tenant,
        "/v1/webhook_endpoints",
        {
            "url": f"{server.url}/webhooks/stripe/{tenant.name}",
            "enabled_events[]": list(PAYMENT_EVENT_TYPES),
        },
    )
    creds = connector.credentials.get(tenant.name, "stripe")
    connector.credentials.put(tenant.name, "stripe", {**creds, "webhook_secret": endpoint["secret"]})
    try:
        yield server
    finally:
        server.stop()
