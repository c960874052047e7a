"""An AR invoice already overdue in Infor still reaches Stripe (which refuses a past due_date), end to
end over HTTP: it is billed with terms instead, and keeps its Infor due date in the metadata."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from ml_connector_pipelines.integrations.stripe.assets import INVOICES_FLOW
from ml_connector_pipelines_tests.conftest import TenantEnv

from .conftest import PUSH_ASSETS, infor_key, minor, open_invoices_of, patch_infor, stripe_account, today


def test_an_overdue_invoice_lands_in_stripe_due_the_next_day(tenant: TenantEnv) -> None:
    day = today()
    # Infor tenants are seeded on first use; this makes the first use now.
    httpx.put(f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/seed", json={}, timeout=30)
    record = next(i for i in tenant.infor_state()["ar_invoices"] if i["status"] == "open")
    overdue = day - timedelta(days=20)
    patch_infor(tenant, "ar_invoices", infor_key(record), {"due_date": overdue.isoformat()})
    assert infor_key(record) in {infor_key(i) for i in open_invoices_of(tenant, day)}

    started = int(time.time())
    assert tenant.materialize(PUSH_ASSETS, day).success
    [held] = [
        inv
        for inv in stripe_account(tenant)["invoices"]
        if inv["metadata"]["infor_invoice_key"] == infor_key(record)
    ]
    assert held["status"] == "open" and held["collection_method"] == "send_invoice"
    assert held["amount_due"] == minor(record["open_amount"], record["currency"])
    assert held["metadata"]["infor_due_date"] == overdue.isoformat()
    # Due in Stripe one day after it was finalized: payable at once, never a date in the past.
    assert started + 86400 <= held["due_date"] <= int(time.time()) + 86400
    entry = tenant.connector.state.ledger.get(tenant.name, INVOICES_FLOW, infor_key(record))
    assert entry is not None and entry.status == "done" and entry.target_id == held["id"]

    # Replaying the partition (a day later the terms would be the same) sends nothing new.
    assert tenant.materialize(PUSH_ASSETS, day).success
    assert [inv["id"] for inv in stripe_account(tenant)["invoices"]].count(held["id"]) == 1
    assert len(stripe_account(tenant)["invoices"]) == len(open_invoices_of(tenant, day))
