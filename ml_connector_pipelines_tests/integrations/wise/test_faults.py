"""Under a flaky network (429s, 5xx, commits whose answer is lost, revoked tokens) reruns converge:
no duplicate recipient, quote or transfer in Wise, and every record ends done or flagged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ml_connector_pipelines.integrations.wise.mapping import existing_recipient_identity
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.wise.models import Recipient
from ml_connector_pipelines_tests.conftest import make_tenant
from ml_connector_pipelines_tests.integrations.wise.wise_env import (
    PIPELINE,
    WISE_ASSETS,
    audit,
    ledger,
    metadata,
    tenant_name,
    wise_user,
)

MAX_RUNS = 8
DAYS = 3


@pytest.fixture
def flaky_sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(seed=5).start()
    # Faults on Wise, the system under test here; the Infor client's own retries are tested elsewhere.
    server.set_faults("flaky", seed=5, systems=["wise"])
    yield server
    server.stop()


def test_reruns_under_faults_converge_without_duplicates(
    flaky_sandbox: SandboxServer, connector: Any, request: pytest.FixtureRequest
) -> None:
    config = {"wise_create_transfers": True}
    tenant = make_tenant(flaky_sandbox, connector, config=config, name=tenant_name(request))
    today = datetime.now(UTC).date()

    for day in (today - timedelta(days=offset) for offset in range(DAYS)):
        for _ in range(MAX_RUNS):
            result = tenant.materialize(PIPELINE, day)
            found = metadata(result)
            if result.success and all(found[a]["failed"] == 0 for a in WISE_ASSETS):
                break
        else:
            pytest.fail(f"{day}: still failing after {MAX_RUNS} runs")
    injected = flaky_sandbox.ctx.faults.describe()["injected"]
    assert injected.get("commit_then_timeout") and injected.get("token_revocation"), injected
    # Some recipient creates had no answer: the engine looked them up (or retried) instead.
    assert any(e.reason and "unknown outcome" in e.reason for e in audit(tenant, "wise_recipients"))

    flaky_sandbox.set_faults("none")
    wise = wise_user(tenant)
    recipients = ledger(tenant, "wise_recipients")
    quotes = ledger(tenant, "wise_quotes")
    transfers = ledger(tenant, "wise_transfers")
    for entries in (recipients, quotes, transfers):
        assert entries
        for entry in entries.values():
            assert entry.status in ("done", "flagged"), entry
            assert entry.status == "done" or entry.reason

    # Recipients: exactly the ledger's, one per payee account.
    active = [r for r in wise["recipients"] if r["active"]]
    assert sorted(str(r["id"]) for r in active) == sorted(
        e.target_id for e in recipients.values() if e.status == "done"
    )
    identities = Counter(existing_recipient_identity(Recipient.model_validate(r)) for r in active)
    assert max(identities.values()) == 1

    # Quotes: a recipient is attached only to the quote the ledger holds for its invoice. A create
    # whose answer was lost can leave a spare quote, but never one that is attached and payable.
    attached = [
        q["id"] for q in wise["quotes"] if q["targetAccount"] is not None and q["status"] != "EXPIRED"
    ]
    done_quotes = {e.target_id for e in quotes.values() if e.status == "done"}
    assert sorted(attached) == sorted(done_quotes)

    # Transfers: one per invoice, each under its own customerTransactionId.
    done_transfers = [e for e in transfers.values() if e.status == "done"]
    assert len(wise["transfers"]) == len(done_transfers)
    assert len({t["customerTransactionId"] for t in wise["transfers"]}) == len(wise["transfers"])
    assert {t["quoteUuid"] for t in wise["transfers"]} <= done_quotes
