"""The whole Stripe round trip on a bad day: 429s, 5xx, answers lost after a commit, revoked tokens.

Runs that hit a fault leave records pending (never half-done); rerunning converges. At the end
every Infor invoice is billed exactly once and every payment and refund posted exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from ml_connector_pipelines.integrations.stripe.assets import CUSTOMERS_FLOW, INVOICES_FLOW
from ml_connector_pipelines.integrations.stripe.payments import PAYMENTS_FLOW
from ml_connector_pipelines.sandbox.host import SandboxServer
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

MAX_RUNS = 8


@pytest.fixture
def flaky_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(seed=23, faults="flaky") as server:
        yield server


def pending(tenant: TenantEnv, flow: str) -> list[Any]:
    return tenant.connector.state.ledger.entries(tenant.name, flow, status="pending")


def test_nothing_lost_or_duplicated_under_faults(flaky_sandbox: SandboxServer, connector: Any) -> None:
    tenant = make_tenant(flaky_sandbox, connector)
    day = busiest_day(tenant)
    for _ in range(MAX_RUNS):
        result = tenant.materialize(PUSH_ASSETS, day)
        if result.success and not pending(tenant, CUSTOMERS_FLOW) and not pending(tenant, INVOICES_FLOW):
            break
    else:
        pytest.fail("the push did not converge")

    opened = open_invoices_of(tenant, day)
    account = stripe_account(tenant)
    assert Counter(c["metadata"]["infor_customer_id"] for c in account["customers"]).most_common(1)[0][1] == 1
    billed = Counter(i["metadata"]["infor_invoice_key"] for i in account["invoices"])
    assert billed == Counter(infor_key(record) for record in opened)
    assert all(i["status"] == "open" for i in account["invoices"])
    items = Counter(item["invoice"] for item in account["invoiceitems"])
    assert set(items.values()) == {1}  # one line per invoice, never added twice

    receivers = start_receiver(tenant)
    next(receivers)
    try:
        paid = account["invoices"][:2]
        intents = [
            sandbox_post(tenant, f"/stripe/invoices/{i['id']}/pay")["payment_intent"]["id"] for i in paid
        ]
        refund = sandbox_post(tenant, "/stripe/refunds", {"payment_intent": intents[0], "amount": 100})
        inbox = tenant.connector.state.inbox
        for _ in range(MAX_RUNS):
            for request in tick_sensor(tenant):
                launch(tenant, request)
            if not inbox.pending("stripe", tenant.name) and not pending(tenant, PAYMENTS_FLOW):
                break
        else:
            pytest.fail("the payments did not converge")
    finally:
        receivers.close()

    by_key = {infor_key(record): record for record in opened}
    for invoice in paid:
        [posting] = postings(tenant, invoice["id"])
        record = by_key[invoice["metadata"]["infor_invoice_key"]]
        assert posting["amount"] == record["open_amount"]
    [reversal] = postings(tenant, refund["id"])
    assert minor(reversal["amount"], reversal["currency"]) == -100
    assert len(tenant.infor_state()["ar_payments"]) == 3
    print(
        flaky_sandbox.ctx.faults.injected,
        [e.action for e in tenant.connector.state.audit.history(tenant.name)],
    )
    assert flaky_sandbox.ctx.faults.injected  # faults really were injected


def test_a_batch_whose_postings_failed_is_launched_again(connector: Any) -> None:
    with SandboxServer(seed=5) as sandbox:
        tenant = make_tenant(sandbox, connector)
        day = busiest_day(tenant)
        assert tenant.materialize(PUSH_ASSETS, day).success
        invoice = stripe_account(tenant)["invoices"][0]
        sandbox_post(tenant, f"/stripe/invoices/{invoice['id']}/pay")

        # Infor refuses the tenant's credentials (a rotated client secret): nothing can be posted,
        # the run hands the events back.
        ionapi = connector.credentials.get(tenant.name, "infor")
        connector.credentials.put(tenant.name, "infor", {**ionapi, "cs": "rotated-elsewhere"})
        [first] = tick_sensor(tenant)
        launch(tenant, first)
        assert postings(tenant, invoice["id"]) == []
        assert connector.state.inbox.pending("stripe", tenant.name)

        # The right secret is back: the same batch gets a new run key, its payment is posted once.
        connector.credentials.put(tenant.name, "infor", ionapi)
        [again] = tick_sensor(tenant)
        assert again.run_key == f"{first.run_key}:retry-1"
        assert launch(tenant, again)
        assert len(postings(tenant, invoice["id"])) == 1
        assert tick_sensor(tenant) == []


def test_a_payment_held_by_another_live_run_stays_in_the_inbox(sandbox_server: Any, connector: Any) -> None:
    tenant = make_tenant(sandbox_server, connector)
    day = busiest_day(tenant)
    assert tenant.materialize(PUSH_ASSETS, day).success
    invoice = stripe_account(tenant)["invoices"][0]
    sandbox_post(tenant, f"/stripe/invoices/{invoice['id']}/pay")
    # Another run (say, one a worker is still executing) holds this payment's ledger record.
    ledger = connector.state.ledger
    assert ledger.claim(tenant.name, PAYMENTS_FLOW, invoice["id"], "other-run") is not None

    [first] = tick_sensor(tenant)
    launch(tenant, first)
    assert postings(tenant, invoice["id"]) == []
    # Not marked processed: if the other run dies, the payment is still waiting to be posted.
    assert connector.state.inbox.pending("stripe", tenant.name)

    ledger.release(tenant.name, PAYMENTS_FLOW, invoice["id"], "other-run")
    [again] = tick_sensor(tenant)
    assert launch(tenant, again)
    assert len(postings(tenant, invoice["id"])) == 1
    assert tick_sensor(tenant) == []
