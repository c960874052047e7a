"""Infor suppliers and open AP invoices become Wise recipients and quotes, end to end over HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from schwifty import IBAN

from ml_connector_pipelines.core.vault import generate_key
from ml_connector_pipelines.integrations.tenancy import Connector
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant
from ml_connector_pipelines_tests.integrations.wise.wise_env import (
    audit,
    infor_records,
    invoice_key,
    ledger,
    patch_infor,
    run_day,
    tenant_name,
    wise_user,
)


@pytest.fixture
def tenant(sandbox_server: SandboxServer, connector: Any, request: pytest.FixtureRequest) -> TenantEnv:
    return make_tenant(sandbox_server, connector, name=tenant_name(request))


def today() -> date:
    return datetime.now(UTC).date()


def iban_is_valid(value: str) -> bool:
    try:
        IBAN(value)
    except ValueError:
        return False
    return True


@pytest.fixture
def tenant_on_both_stores(
    sandbox_server: SandboxServer,
    state_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> TenantEnv:
    """A tenant whose state store is SQLite or Postgres (the `connector` fixture is SQLite only)."""
    monkeypatch.setenv("ML_CONNECTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ML_CONNECTOR_MASTER_KEY", generate_key())
    monkeypatch.setenv("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP", "1")
    monkeypatch.setenv("ML_CONNECTOR_DB_URL", state_db_url)
    return make_tenant(sandbox_server, Connector.open(), name=tenant_name(request))


def test_suppliers_and_open_invoices_become_recipients_and_quotes_and_a_rerun_creates_nothing(
    tenant_on_both_stores: TenantEnv,
) -> None:
    tenant = tenant_on_both_stores
    day = today()
    invoices = infor_records(tenant, "ap_invoices", day)
    paid = next(i for i in invoices if i["status"] == "open")
    patch_infor(tenant, "ap_invoices", invoice_key(paid), {"status": "paid"})
    first = run_day(tenant, day)

    wise = wise_user(tenant)
    recipients = {r["id"]: r for r in wise["recipients"]}
    quotes = {q["id"]: q for q in wise["quotes"]}
    recipient_ledger = ledger(tenant, "wise_recipients")
    quote_ledger = ledger(tenant, "wise_quotes")

    # Every supplier changed today is a recipient with its own account, or flagged with a reason.
    for supplier in infor_records(tenant, "suppliers", day):
        entry = recipient_ledger[supplier["supplier_id"]]
        if entry.status == "flagged":
            assert entry.reason
            continue
        assert entry.status == "done"
        recipient = recipients[int(entry.target_id)]
        assert recipient["active"] and recipient["currency"] == supplier["bank_account"]["currency"]
        assert recipient["accountHolderName"] == supplier["bank_account"]["account_holder"]
        if supplier["bank_account"]["kind"] == "iban":
            assert recipient["details"]["IBAN"] == supplier["bank_account"]["iban"].replace(" ", "")

    # Every open invoice changed today has one quote: its currency and amount, funded in EUR, paying
    # its supplier's recipient (created on the spot when the supplier changed on another day).
    invoices = infor_records(tenant, "ap_invoices", day)
    open_invoices = [i for i in invoices if i["status"] == "open"]
    assert open_invoices
    quoted = 0
    for invoice in open_invoices:
        entry = quote_ledger[invoice_key(invoice)]
        recipient_entry = recipient_ledger[invoice["supplier_id"]]
        if recipient_entry.status == "flagged":
            assert entry.status == "flagged" and "recipient is flagged" in entry.reason
            continue
        assert entry.status == "done"
        quote = quotes[entry.target_id]
        assert quote["targetCurrency"] == invoice["currency"]
        assert Decimal(str(quote["targetAmount"])) == Decimal(invoice["amount"])
        assert quote["sourceCurrency"] == "EUR"
        assert quote["targetAccount"] == int(recipient_entry.target_id)
        assert entry.extra["recipient_id"] == recipient_entry.target_id
        assert entry.extra["invoice_key"] == invoice_key(invoice)
        quoted += 1
    assert quoted
    suppliers_today = {s["supplier_id"] for s in infor_records(tenant, "suppliers", day)}
    assert {i["supplier_id"] for i in open_invoices} - suppliers_today, (
        "some quotes needed a recipient made now"
    )
    assert len(recipients) == len([e for e in recipient_ledger.values() if e.status == "done"])

    # Paid and cancelled invoices get no quote.
    for invoice in invoices:
        if invoice["status"] != "open":
            assert invoice_key(invoice) not in quote_ledger
    assert invoice_key(paid) not in quote_ledger

    assert first["wise_quotes"]["created"] == quoted
    assert first["wise_transfers"]["created"] == 0  # not opted in: nothing, and nothing funded
    assert wise["transfers"] == []

    # A rerun of the partition creates nothing in Wise and says so in its metadata.
    second = run_day(tenant, day)
    again = wise_user(tenant)
    assert len(again["recipients"]) == len(wise["recipients"])
    assert len(again["quotes"]) == len(wise["quotes"])
    for asset in ("wise_recipients", "wise_quotes", "wise_transfers"):
        assert second[asset]["created"] == 0
        assert second[asset].get("recreated", 0) == 0
        assert second[asset]["failed"] == 0
    assert second["wise_quotes"]["skipped"] >= quoted


def test_changed_iban_deletes_and_recreates_the_recipient_and_requotes(tenant: TenantEnv) -> None:
    day = today()
    supplier = next(
        s
        for s in infor_records(tenant, "suppliers")
        if s["bank_account"]["kind"] == "iban" and iban_is_valid(s["bank_account"]["iban"])
    )
    supplier_id = supplier["supplier_id"]
    run_day(tenant, date.fromisoformat(supplier["modified_date"]))
    old_id = ledger(tenant, "wise_recipients")[supplier_id].target_id
    assert old_id
    new_iban = IBAN("DE89 3704 0044 0532 0130 00")
    assert new_iban.compact != supplier["bank_account"]["iban"]

    # The supplier is changed in Infor (stamped modified today), so today's partition carries it.
    patch_infor(tenant, "suppliers", supplier_id, {"bank_account": {"iban": new_iban.compact}})
    result = run_day(tenant, day)
    assert result["wise_recipients"]["recreated"] == 1

    entry = ledger(tenant, "wise_recipients")[supplier_id]
    assert entry.status == "done" and entry.target_id != old_id
    assert entry.extra["previous_target_ids"] == [old_id]
    recipients = {r["id"]: r for r in wise_user(tenant)["recipients"]}
    assert recipients[int(old_id)]["active"] is False
    assert recipients[int(entry.target_id)]["active"] is True
    assert recipients[int(entry.target_id)]["details"]["IBAN"] == new_iban.compact
    history = [e.action for e in audit(tenant, "wise_recipients") if e.source_id == supplier_id]
    assert history[-1] == "recreated"

    # Its open invoices of this partition now quote the new recipient.
    quotes = {q["id"]: q for q in wise_user(tenant)["quotes"]}
    for invoice in infor_records(tenant, "ap_invoices", day):
        if invoice["supplier_id"] == supplier_id and invoice["status"] == "open":
            quote_entry = ledger(tenant, "wise_quotes")[invoice_key(invoice)]
            assert quotes[quote_entry.target_id]["targetAccount"] == int(entry.target_id)

    # And once more: nothing new.
    again = run_day(tenant, day)
    assert again["wise_recipients"]["created"] == again["wise_recipients"].get("recreated", 0) == 0


def test_invalid_ibans_are_flagged_with_an_alert_and_never_sent(tenant: TenantEnv) -> None:
    broken = [
        s
        for s in infor_records(tenant, "suppliers")
        if s["bank_account"]["kind"] == "iban" and not iban_is_valid(s["bank_account"]["iban"])
    ]
    assert broken, "the sandbox seeds suppliers with broken IBANs"
    supplier = broken[0]
    run_day(tenant, date.fromisoformat(supplier["modified_date"]))

    entry = ledger(tenant, "wise_recipients")[supplier["supplier_id"]]
    assert entry.status == "flagged" and entry.target_id is None
    assert entry.reason.startswith("iban: invalid IBAN")
    actions = {e.action for e in audit(tenant, "wise_recipients") if e.source_id == supplier["supplier_id"]}
    assert {"flagged", "alert"} <= actions
    sent = {r["details"]["IBAN"] for r in wise_user(tenant)["recipients"] if r["type"] == "iban"}
    assert supplier["bank_account"]["iban"].replace(" ", "") not in sent


@pytest.fixture
def private_sandbox() -> Iterator[SandboxServer]:
    # Its own simulator: this test moves the Wise clock forward.
    server = SandboxServer(seed=21).start()
    yield server
    server.stop()


def test_expired_quotes_are_renewed_and_paid_invoices_get_none(
    private_sandbox: SandboxServer, connector: Any, request: pytest.FixtureRequest
) -> None:
    tenant = make_tenant(
        private_sandbox, connector, config={"wise_source_currency": "GBP"}, name=tenant_name(request)
    )
    day = today()
    run_day(tenant, day)
    before = {k: e for k, e in ledger(tenant, "wise_quotes").items() if e.status == "done"}
    assert before
    assert {q["sourceCurrency"] for q in wise_user(tenant)["quotes"]} == {"GBP"}

    # Unchanged and still valid: nothing is renewed.
    assert run_day(tenant, day)["wise_quotes"].get("recreated", 0) == 0

    # A paid invoice gets no new quote, even once its old one has expired.
    paid_key = next(iter(before))
    patch_infor(tenant, "ap_invoices", paid_key, {"status": "paid"})
    httpx.post(
        f"{private_sandbox.url}/_sandbox/wise/clock", json={"advance_seconds": 31 * 60}
    ).raise_for_status()
    result = run_day(tenant, day)
    assert result["wise_quotes"]["recreated"] == len(before) - 1

    quotes = {q["id"]: q for q in wise_user(tenant)["quotes"]}
    after = ledger(tenant, "wise_quotes")
    for key, old in before.items():
        if key == paid_key:
            assert after[key].target_id == old.target_id
            continue
        renewed = after[key]
        assert renewed.target_id != old.target_id
        assert renewed.extra["previous_target_ids"] == [old.target_id]
        assert quotes[old.target_id]["status"] == "EXPIRED"
        assert quotes[renewed.target_id]["status"] == "PENDING"
        assert quotes[renewed.target_id]["targetAccount"] == quotes[old.target_id]["targetAccount"]
    paid_audit = [e for e in audit(tenant, "wise_quotes") if e.source_id == paid_key]
    assert (paid_audit[-1].action, paid_audit[-1].reason) == ("skipped", "invoice is paid")

    # Renewed once; the next run keeps the fresh quotes.
    assert run_day(tenant, day)["wise_quotes"].get("recreated", 0) == 0
    assert Counter(q["status"] for q in wise_user(tenant)["quotes"])["PENDING"] == len(before) - 1


QUOTE_READ = "GET /v3/profiles/{profile_id}/quotes/{quote_id}"
QUOTE_WRITES = ("POST /v3/profiles/{profile_id}/quotes", "PATCH /v3/profiles/{profile_id}/quotes/{quote_id}")


def test_a_repoll_judges_quote_expiry_by_the_stored_time_on_wises_clock(
    private_sandbox: SandboxServer, connector: Any, request: pytest.FixtureRequest
) -> None:
    tenant = make_tenant(private_sandbox, connector, name=tenant_name(request))
    day = today()
    run_day(tenant, day)
    quotes = {k: e for k, e in ledger(tenant, "wise_quotes").items() if e.status == "done"}
    assert quotes
    held = {q["id"]: q for q in wise_user(tenant)["quotes"]}
    for entry in quotes.values():  # the expiry Wise gave, kept with the ledger entry
        expires = datetime.fromisoformat(entry.extra["expires_at"])
        assert expires == datetime.fromisoformat(held[entry.target_id]["expirationTime"])

    def quote_calls() -> Counter[str]:
        return Counter({route: n for route, n in wise_user(tenant)["calls"].items() if "/quotes" in route})

    # Unchanged, 30 minutes to go: no quote is read (the profile lookup's Date tells Wise's time).
    before = quote_calls()
    result = run_day(tenant, day)["wise_quotes"]
    sent = quote_calls() - before
    assert sent[QUOTE_READ] == 0 and not any(sent[route] for route in QUOTE_WRITES)
    assert result.get("recreated", 0) == 0

    # 29 minutes later by Wise's clock (this machine's has not moved): near expiry, so each quote is
    # asked about, and kept, since Wise still reads it PENDING.
    clock = f"{private_sandbox.url}/_sandbox/wise/clock"
    httpx.post(clock, json={"advance_seconds": 29 * 60}).raise_for_status()
    before = quote_calls()
    result = run_day(tenant, day)["wise_quotes"]
    sent = quote_calls() - before
    assert sent[QUOTE_READ] == len(quotes) and not any(sent[route] for route in QUOTE_WRITES)
    assert result.get("recreated", 0) == 0

    # Past the expiry: each is read (EXPIRED) and renewed; the renewed quotes are not read again.
    httpx.post(clock, json={"advance_seconds": 2 * 60}).raise_for_status()
    before = quote_calls()
    assert run_day(tenant, day)["wise_quotes"]["recreated"] == len(quotes)
    sent = quote_calls() - before
    assert sent[QUOTE_READ] == len(quotes) and sent[QUOTE_WRITES[0]] == len(quotes)
    renewed = ledger(tenant, "wise_quotes")
    held = {q["id"]: q for q in wise_user(tenant)["quotes"]}
    for key in quotes:
        assert held[renewed[key].target_id]["status"] == "PENDING"
        assert renewed[key].extra["expires_at"] != quotes[key].extra["expires_at"]
    before = quote_calls()
    run_day(tenant, day)
    assert (quote_calls() - before)[QUOTE_READ] == 0


def test_syteline_invoices_get_recipients_made_on_the_spot(
    sandbox_server: SandboxServer, connector: Any, request: pytest.FixtureRequest
) -> None:
    tenant = make_tenant(sandbox_server, connector, product="syteline", name=tenant_name(request))
    day = today()
    run_day(tenant, day)
    suppliers_today = {s["supplier_id"] for s in infor_records(tenant, "suppliers", day)}
    recipients = ledger(tenant, "wise_recipients")
    quotes = ledger(tenant, "wise_quotes")
    on_the_spot = [
        i
        for i in infor_records(tenant, "ap_invoices", day)
        if i["status"] == "open" and i["supplier_id"] not in suppliers_today
    ]
    assert on_the_spot
    for invoice in on_the_spot:
        recipient = recipients[invoice["supplier_id"]]
        if recipient.status == "done":
            assert quotes[invoice_key(invoice)].extra["recipient_id"] == recipient.target_id
        else:
            assert quotes[invoice_key(invoice)].status == "flagged"
    assert any(recipients[i["supplier_id"]].status == "done" for i in on_the_spot)


@pytest.mark.parametrize("product", ["m3", "syteline"])
def test_adapter_reads_one_supplier_whatever_its_date(
    sandbox_server: SandboxServer, connector: Any, product: str, request: pytest.FixtureRequest
) -> None:
    tenant = make_tenant(sandbox_server, connector, product=product, name=tenant_name(request))
    expected = infor_records(tenant, "suppliers")[3]
    with tenant.resources["infor"].adapter(tenant.name) as adapter:
        found = adapter.supplier(expected["supplier_id"])
        missing = adapter.supplier("NO-SUCH-SUPPLIER")
    assert missing is None
    assert found is not None
    assert (found.supplier_id, found.name, found.modified_date.isoformat()) == (
        expected["supplier_id"],
        expected["name"],
        expected["modified_date"],
    )
    assert found.bank_account is not None
    assert found.bank_account.account_holder == expected["bank_account"]["account_holder"]
