"""A Stripe payment flagged because of an Infor data problem is replayed after the fix, posted once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml_connector_pipelines.cli import main
from ml_connector_pipelines.core.webhooks import WebhookServer
from ml_connector_pipelines.integrations.stripe.payments import PAYMENTS_FLOW
from ml_connector_pipelines_tests.conftest import TenantEnv

from .conftest import (
    PUSH_ASSETS,
    busiest_day,
    infor_key,
    launch,
    open_invoices_of,
    patch_infor,
    postings,
    sandbox_post,
    stripe_account,
    tick_sensor,
)


def test_a_flagged_payment_is_replayed_after_the_fix_and_posted_once(
    tenant: TenantEnv,
    receiver: WebhookServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    day = busiest_day(tenant)
    assert tenant.materialize(PUSH_ASSETS, day).success
    record = open_invoices_of(tenant, day)[0]
    key = infor_key(record)
    [invoice] = [i for i in stripe_account(tenant)["invoices"] if i["metadata"]["infor_invoice_key"] == key]

    # Someone in Infor books the invoice down to a cent; the Stripe payment then exceeds it.
    patch_infor(tenant, "ar_invoices", key, {"open_amount": "0.01"})
    sandbox_post(tenant, f"/stripe/invoices/{invoice['id']}/pay")
    [request] = tick_sensor(tenant)
    assert launch(tenant, request)
    assert postings(tenant, invoice["id"]) == []
    ledger = tenant.connector.state.ledger
    flagged = ledger.get(tenant.name, PAYMENTS_FLOW, invoice["id"])
    assert flagged is not None and flagged.status == "flagged"
    assert tick_sensor(tenant) == []  # a dead letter: no run asks for it again on its own

    def replay(*args: str) -> tuple[int, str]:
        code = main(["replay", tenant.name, "--flow", PAYMENTS_FLOW, *args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    # Not fixed yet: the replay runs, and the payment is flagged again (still not posted).
    code, out = replay("--record", invoice["id"])
    assert code == 0 and invoice["id"] in out, out
    assert postings(tenant, invoice["id"]) == []

    # Fixed in Infor: replayed by the CLI, posted exactly once.
    patch_infor(tenant, "ar_invoices", key, {"open_amount": record["open_amount"]})
    code, out = replay("--flagged")
    assert code == 0, out
    [payment] = postings(tenant, invoice["id"])
    assert payment["amount"] == record["open_amount"]
    assert ledger.get(tenant.name, PAYMENTS_FLOW, invoice["id"]).status == "done"  # type: ignore[union-attr]

    # Nothing is flagged any more: a second replay has nothing to do, and posts nothing.
    code, out = replay("--flagged")
    assert code == 2 and "nothing flagged" in out
    assert len(postings(tenant, invoice["id"])) == 1
    history = tenant.connector.state.audit.history(tenant.name, flow=PAYMENTS_FLOW, record=invoice["id"])
    assert [e.action for e in history].count("replayed") == 2


def test_replay_refuses_an_unknown_flow(tenant: TenantEnv, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert main(["replay", tenant.name, "--flow", "bogus", "--flagged"]) == 2
