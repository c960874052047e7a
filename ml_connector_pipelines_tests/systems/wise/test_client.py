"""WiseClient against the Wise simulator over real HTTP: recipients, quotes, transfers, paging."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.core.errors import AuthenticationFailed, TargetRejected
from ml_connector_pipelines.core.http import RetryPolicy
from ml_connector_pipelines.integrations.wise.mapping import (
    quote_request,
    recipient_payload,
    transfer_customer_transaction_id,
)
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.wise.simulator import WiseSimulator
from ml_connector_pipelines.systems.infor.models import APInvoice, BankAccount, Supplier
from ml_connector_pipelines.systems.wise.client import WiseClient

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_total=2.0)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(simulators=[WiseSimulator]) as server:
        yield server


@pytest.fixture
def wise(sandbox: SandboxServer) -> Iterator[WiseClient]:
    with WiseClient(f"{sandbox.url}/wise", token="wise-sandbox-test", retry=FAST_RETRY) as client:
        yield client


def sandbox_holds(sandbox: SandboxServer, kind: str) -> list[dict[str, Any]]:
    """Every object of one kind ("recipients", "quotes", "transfers") the simulator holds."""
    users = sandbox.get_state("wise")["users"].values()
    return [item for user in users for item in user[kind]]


def gb_supplier(supplier_id: str, holder: str = "Northwind Ltd") -> Supplier:
    account = BankAccount(
        kind="sort_code",
        currency="GBP",
        account_holder=holder,
        sort_code="40-47-84",
        account_number="70872490",
    )
    return Supplier(
        supplier_id=supplier_id,
        name=holder,
        currency="GBP",
        status="20",
        country="GB",
        bank_account=account,
        modified_date=date(2026, 11, 20),
    )


def eu_supplier(supplier_id: str, holder: str) -> Supplier:
    account = BankAccount(kind="iban", currency="EUR", account_holder=holder, iban="DE89370400440532013000")
    return Supplier(
        supplier_id=supplier_id,
        name=holder,
        currency="EUR",
        status="20",
        country="DE",
        bank_account=account,
        modified_date=date(2026, 11, 20),
    )


def ap_invoice(number: str, amount: str = "250.00") -> APInvoice:
    return APInvoice(
        division="100",
        supplier_id="S1",
        invoice_number=number,
        invoice_year=2026,
        invoice_date=date(2026, 11, 1),
        currency="GBP",
        amount=Decimal(amount),
        status="open",
        modified_date=date(2026, 11, 20),
    )


def test_business_profile(wise: WiseClient) -> None:
    profiles = wise.profiles()
    business = [profile for profile in profiles if profile.type == "BUSINESS"]
    assert business, profiles
    assert wise.business_profile_id() == business[0].id


def test_recipient_lifecycle(sandbox: SandboxServer, wise: WiseClient) -> None:
    profile_id = wise.business_profile_id()
    created = wise.create_recipient(
        recipient_payload(gb_supplier("S1"), profile_id, wise.account_requirements)
    )
    assert created.active and created.currency == "GBP"

    held = wise.get_recipient(created.id)
    assert held.account_holder_name == "Northwind Ltd"
    assert held.profile_id == profile_id and held.active
    assert created.id in {recipient.id for recipient in wise.list_recipients("GBP")}

    wise.delete_recipient(created.id)
    assert not wise.get_recipient(created.id).active
    [stored] = [item for item in sandbox_holds(sandbox, "recipients") if item["id"] == created.id]
    assert stored["active"] is False and stored["details"]["sortCode"] == "404784"
    assert created.id not in {recipient.id for recipient in wise.list_recipients("GBP")}
    # Deleting again: Wise answers 403 for an inactive recipient, which means done.
    wise.delete_recipient(created.id)


def test_list_recipients_pages_through_everything(wise: WiseClient) -> None:
    profile_id = wise.business_profile_id()
    created = {
        wise.create_recipient(
            recipient_payload(
                eu_supplier(f"E{n}", f"Lieferant Nummer{chr(65 + n)}"), profile_id, wise.account_requirements
            )
        ).id
        for n in range(25)
    }
    before = wise.requests_made
    listed = [recipient.id for recipient in wise.list_recipients("EUR")]
    assert len(listed) == len(set(listed))  # no page boundary repeats a recipient
    assert created <= set(listed)
    assert wise.requests_made - before >= 2  # more than one page of 20
    assert all(recipient.currency == "EUR" for recipient in wise.list_recipients("EUR"))


def test_rejected_recipient_carries_wise_message(wise: WiseClient) -> None:
    payload = recipient_payload(gb_supplier("S2"), wise.business_profile_id(), wise.account_requirements)
    payload["details"]["sortCode"] = "12"  # what the mapping would never send
    with pytest.raises(TargetRejected) as caught:
        wise.create_recipient(payload)
    assert caught.value.status in (400, 422)
    assert caught.value.target_message


def test_quote_recipient_transfer(sandbox: SandboxServer, wise: WiseClient) -> None:
    recipient = wise.create_recipient(
        recipient_payload(gb_supplier("S3"), wise.business_profile_id(), wise.account_requirements)
    )
    invoice = ap_invoice("INV-900")
    quote = wise.create_quote(**quote_request(invoice, "GBP"))
    uuid.UUID(quote.id)
    assert quote.target_amount == Decimal("250.00") and quote.target_currency == "GBP"
    assert quote.status == "PENDING" and not quote.blocked

    attached = wise.attach_recipient(quote.id, recipient.id)
    assert attached.id == quote.id
    assert wise.get_quote(quote.id).id == quote.id

    key = transfer_customer_transaction_id("acme", invoice.invoice_key)
    transfer = wise.create_transfer(recipient.id, quote.id, key, "INV-900")
    assert transfer.status == "incoming_payment_waiting"
    assert transfer.target_account == recipient.id and transfer.quote_uuid == quote.id
    assert transfer.customer_transaction_id == key

    # A retry with the same customerTransactionId is the same transfer, not a second payment.
    again = wise.create_transfer(recipient.id, quote.id, key, "INV-900")
    assert again.id == transfer.id
    held = wise.get_transfer(transfer.id)
    assert held.details.get("reference") == "INV-900" and held.created is not None
    assert [t.id for t in wise.list_transfers() if t.customer_transaction_id == key] == [transfer.id]
    assert transfer.id in {t.id for t in wise.list_transfers(status="incoming_payment_waiting")}
    assert transfer.id not in {t.id for t in wise.list_transfers(status=["cancelled", "funds_refunded"])}
    # What Wise holds: one transfer for the key, and the quote carries the recipient.
    transfers = sandbox_holds(sandbox, "transfers")
    assert [t["id"] for t in transfers if t["customerTransactionId"] == key] == [transfer.id]
    [stored_quote] = [q for q in sandbox_holds(sandbox, "quotes") if q["id"] == quote.id]
    assert stored_quote["targetAccount"] == recipient.id


def test_oauth_client_credentials(sandbox: SandboxServer) -> None:
    credentials = httpx.get(f"{sandbox.url}/_sandbox/credentials").json()["wise"]
    base_url = f"{sandbox.url}/wise"
    with WiseClient(
        base_url,
        client_id=credentials["client_id"],
        client_secret=credentials["client_secret"],
        retry=FAST_RETRY,
    ) as app_client:
        assert app_client.business_profile_id() > 0
        # The token is fetched once and reused: two API calls, one token request.
        app_client.profiles()
        assert app_client.requests_made == 3
    with WiseClient(
        base_url, client_id=credentials["client_id"], client_secret="wrong", retry=FAST_RETRY
    ) as bad:
        with pytest.raises(AuthenticationFailed):
            bad.profiles()


def test_list_transfers_pages_past_100(wise: WiseClient) -> None:
    recipient = wise.create_recipient(
        recipient_payload(gb_supplier("S4"), wise.business_profile_id(), wise.account_requirements)
    )
    created = set()
    for n in range(105):
        quote = wise.create_quote("GBP", "GBP", target_amount=Decimal("10.00"), target_account=recipient.id)
        key = transfer_customer_transaction_id("paging", f"INV-{n}")
        created.add(wise.create_transfer(recipient.id, quote.id, key, f"INV-{n}").id)
    listed = [transfer.id for transfer in wise.list_transfers()]
    assert len(listed) == len(set(listed))
    assert created <= set(listed)


def test_errors_are_typed(sandbox: SandboxServer, wise: WiseClient) -> None:
    with pytest.raises(TargetRejected) as caught:
        wise.get_transfer(987654321)
    assert caught.value.status == 404
    with pytest.raises(ValueError):
        wise.create_quote("GBP", "EUR", target_amount=Decimal(1), source_amount=Decimal(1))
    with WiseClient(f"{sandbox.url}/wise", token="not-a-sandbox-token", retry=FAST_RETRY) as stranger:
        with pytest.raises(AuthenticationFailed):
            stranger.profiles()


def test_account_requirements_are_read_once_per_route(wise: WiseClient) -> None:
    before = wise.requests_made
    gbp = wise.account_requirements("GBP")
    assert [requirement.type for requirement in gbp] == ["sort_code", "iban", "email"]
    sort_code = gbp[0]
    # Fields come flattened out of Wise's groups, with v1.1's name field.
    assert [field.key for field in sort_code.fields][:4] == [
        "legalType",
        "accountHolderName",
        "sortCode",
        "accountNumber",
    ]
    account_number = sort_code.field("accountNumber")
    assert account_number is not None and account_number.required and account_number.validation_regexp
    assert account_number.problem("7087249") and account_number.problem("70872490") is None
    legal_type = sort_code.field("legalType")
    assert legal_type is not None and {v.key for v in legal_type.values_allowed or []} == {
        "PRIVATE",
        "BUSINESS",
    }
    assert wise.account_requirements("GBP") is gbp  # cached: no second call
    assert wise.requests_made - before == 1
    wise.account_requirements("GBP", source_currency="USD")
    assert wise.requests_made - before == 2
    with pytest.raises(TargetRejected) as caught:
        wise.account_requirements("KRW")
    assert caught.value.status == 422 and "KRW" in caught.value.target_message
