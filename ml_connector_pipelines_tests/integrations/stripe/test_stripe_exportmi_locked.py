"""Issue 9 done-when: the Stripe flow (customers, invoices out, AR payments back) passes on an M3
tenant that locks EXPORTMI (list transactions: CRS610MI, ARS200MI; ARS040MI posts) and on one that
leaves it open, asserted on what the Stripe and Infor simulators hold."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant

from .conftest import (
    PUSH_ASSETS,
    busiest_day,
    infor_key,
    launch,
    minor,
    open_invoices_of,
    postings,
    sandbox_post,
    start_receiver,
    stripe_account,
    tick_sensor,
)


@pytest.mark.parametrize("exportmi", ["open", "locked"])
def test_stripe_flow_on_an_m3_tenant_with_exportmi_open_or_locked(
    sandbox_server: Any, connector: Any, exportmi: str
) -> None:
    locked = exportmi == "locked"
    tenant: TenantEnv = make_tenant(
        sandbox_server, connector, config={"m3_exportmi": False} if locked else {}
    )
    day = busiest_day(tenant)  # seeds the Infor tenant
    url = f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/config"
    httpx.put(url, json={"exportmi": not locked}, timeout=30).raise_for_status()
    before = tenant.infor_state()["m3_calls"]

    assert tenant.materialize(PUSH_ASSETS, day).success
    opened = open_invoices_of(tenant, day)
    account = stripe_account(tenant)
    billed = {invoice["metadata"]["infor_invoice_key"]: invoice for invoice in account["invoices"]}
    assert len(billed) == len(opened) > 0
    for record in opened:
        assert billed[infor_key(record)]["amount_due"] == minor(record["open_amount"], record["currency"])
    customers = {c["metadata"]["infor_customer_id"] for c in account["customers"]}
    assert {record["customer_id"] for record in opened} <= customers

    for _receiver in start_receiver(tenant):  # Stripe's webhooks reach the inbox inside this block
        record = opened[0]
        invoice = billed[infor_key(record)]
        sandbox_post(tenant, f"/stripe/invoices/{invoice['id']}/pay")
        [request] = tick_sensor(tenant)
        assert launch(tenant, request)
        [payment] = postings(tenant, invoice["id"])
        assert payment["amount"] == record["open_amount"]
        # The same event again (a redelivery, a lost answer): posted once.
        for event in stripe_account(tenant)["events"]:
            sandbox_post(tenant, f"/stripe/events/{event['id']}/redeliver")
        for replay in tick_sensor(tenant):
            assert launch(tenant, replay)
        assert len(postings(tenant, invoice["id"])) == 1

    calls = tenant.infor_state()["m3_calls"]
    exported = calls.get("EXPORTMI/Select", 0) - before.get("EXPORTMI/Select", 0)
    if locked:
        assert exported == 0
        assert calls.get("ARS200MI/LstInvByDivi", 0) > before.get("ARS200MI/LstInvByDivi", 0)
    else:
        assert exported > 0
