"""The Infor -> Wise mapping: payload shapes, and every validation rule flagging the right field."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ml_connector_pipelines.core.errors import TargetRejected, ValidationFailed
from ml_connector_pipelines.integrations.wise.mapping import (
    PAYOUT_STATUS_BY_STATE,
    bank_details_hash,
    payout_status_for,
    quote_request,
    recipient_payload,
    transfer_customer_transaction_id,
)
from ml_connector_pipelines.sandbox.wise.requirements import requirements_json
from ml_connector_pipelines.systems.infor.models import APInvoice, BankAccount, Supplier
from ml_connector_pipelines.systems.wise.models import AccountRequirement

PROFILE = 14575282


def wise_requirements(currency: str) -> list[AccountRequirement]:
    """What the Wise simulator serves for EUR -> `currency` (v1.1), as the client reads it."""
    return [
        AccountRequirement.model_validate(item)
        for item in requirements_json("EUR", currency, address=False, names=True)
    ]


def supplier(**bank: Any) -> Supplier:
    account = {
        "kind": "iban",
        "currency": "EUR",
        "account_holder": "Acme GmbH",
        "iban": "DE89370400440532013000",
    }
    account.update(bank)
    return Supplier(
        supplier_id="S100",
        name="Acme",
        currency=account["currency"],
        status="20",
        country="DE",
        bank_account=BankAccount(**account),
        modified_date=date(2026, 11, 20),
    )


def us_supplier(**bank: Any) -> Supplier:
    account = {
        "kind": "aba",
        "currency": "USD",
        "account_holder": "Widgets Inc.",
        "aba_routing": "026009593",
        "account_number": "12345678",
        "account_type": "CHECKING",
        "country": "US",
        "city": "New York",
        "post_code": "10001",
        "address_line": "1 Main St",
        "state": "NY",
    }
    account.update(bank)
    return supplier(**account)


def flagged_field(record: Supplier) -> str:
    with pytest.raises(ValidationFailed) as caught:
        recipient_payload(record, PROFILE, wise_requirements)
    assert caught.value.record_id == "S100"
    return caught.value.field


def test_iban_payload() -> None:
    payload = recipient_payload(
        supplier(iban="de89 3704 0044 0532 0130 00", bic="cobadeffxxx"), PROFILE, wise_requirements
    )
    assert payload == {
        "profile": PROFILE,
        "currency": "EUR",
        "type": "iban",
        "accountHolderName": "Acme GmbH",
        "ownedByCustomer": False,
        "details": {"legalType": "BUSINESS", "IBAN": "DE89370400440532013000", "BIC": "COBADEFFXXX"},
    }


def test_sort_code_payload() -> None:
    record = supplier(
        kind="sort_code", currency="GBP", iban=None, sort_code="40-47-84", account_number="7087 2490"
    )
    details = recipient_payload(record, PROFILE, wise_requirements)["details"]
    assert details == {"legalType": "BUSINESS", "sortCode": "404784", "accountNumber": "70872490"}


def test_aba_payload_carries_the_address() -> None:
    payload = recipient_payload(us_supplier(), PROFILE, wise_requirements)
    assert payload["type"] == "aba"
    assert payload["details"] == {
        "legalType": "BUSINESS",
        "abartn": "026009593",
        "accountNumber": "12345678",
        "accountType": "CHECKING",
        "address": {
            "country": "US",
            "city": "New York",
            "postCode": "10001",
            "firstLine": "1 Main St",
            "state": "NY",
        },
    }


def test_email_payload() -> None:
    record = supplier(kind="email", iban=None, email=" pay@acme.example ")
    assert recipient_payload(record, PROFILE, wise_requirements)["details"] == {
        "legalType": "BUSINESS",
        "email": "pay@acme.example",
    }


@pytest.mark.parametrize(
    ("bank", "field"),
    [
        ({"iban": "DE89370400440532013001"}, "iban"),  # checksum
        ({"iban": "DE8937040044053201300"}, "iban"),  # length
        ({"iban": None}, "iban"),
        ({"bic": "COBAXXFF"}, "bic"),  # no such country
        ({"bic": "COB"}, "bic"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"account_holder": "   "}, "account_holder"),
        ({"account_holder": "Acme & Sons"}, "account_holder"),
        ({"account_holder": "1234"}, "account_holder"),
        (
            {"kind": "sort_code", "currency": "GBP", "sort_code": "40478", "account_number": "70872490"},
            "sort_code",
        ),
        (
            {"kind": "sort_code", "currency": "GBP", "sort_code": "4047AB", "account_number": "70872490"},
            "sort_code",
        ),
        (
            {"kind": "sort_code", "currency": "GBP", "sort_code": "404784", "account_number": "7087249"},
            "account_number",
        ),
        (
            {"kind": "sort_code", "currency": "EUR", "sort_code": "404784", "account_number": "70872490"},
            "currency",
        ),
        ({"kind": "email", "email": "not-an-email"}, "email"),
        ({"kind": "email", "email": "a@b"}, "email"),
        ({"city": "Berlin", "country": "XX"}, "country"),  # an address given must be a real one
    ],
)
def test_bad_details_are_flagged_on_their_field(bank: dict[str, Any], field: str) -> None:
    assert flagged_field(supplier(**bank)) == field


@pytest.mark.parametrize(
    ("bank", "field"),
    [
        ({"aba_routing": "026009594"}, "aba_routing"),  # checksum
        ({"aba_routing": "02600959"}, "aba_routing"),
        ({"account_number": "12"}, "account_number"),
        ({"account_type": None}, "account_type"),
        ({"city": None}, "city"),
        ({"post_code": ""}, "post_code"),
        ({"address_line": None}, "address_line"),
        ({"state": "ZZ"}, "state"),
        ({"currency": "EUR"}, "currency"),
    ],
)
def test_bad_us_details_are_flagged_on_their_field(bank: dict[str, Any], field: str) -> None:
    assert flagged_field(us_supplier(**bank)) == field


def test_address_falls_back_to_the_supplier_country_and_is_required_for_usd_iban() -> None:
    # A USD payout to an IBAN account (a swift_code recipient, so with a BIC) needs an address (§5.1).
    assert flagged_field(supplier(currency="USD", bic="COBADEFFXXX")) == "city"
    record = supplier(
        currency="USD", bic="COBADEFFXXX", city="Berlin", post_code="10115", address_line="Unter den Linden 1"
    )
    address = recipient_payload(record, PROFILE, wise_requirements)["details"]["address"]
    assert address == {
        "country": "DE",
        "city": "Berlin",
        "postCode": "10115",
        "firstLine": "Unter den Linden 1",
    }


def test_missing_bank_details_are_flagged() -> None:
    record = supplier().model_copy(update={"bank_account": None})
    assert flagged_field(record) == "bank_account"


def test_bank_details_hash_ignores_formatting_but_not_content() -> None:
    base = bank_details_hash(supplier())
    assert base == bank_details_hash(supplier(iban="DE89 3704 0044 0532 0130 00"))
    assert base == bank_details_hash(supplier(account_holder="Acme  GmbH "))
    assert base == bank_details_hash(supplier().model_copy(update={"name": "Acme renamed"}))
    changed = [
        supplier(iban="GB33BUKB20201555555555"),
        supplier(account_holder="Acme AG"),
        supplier(currency="CHF"),
        supplier(bic="COBADEFFXXX"),
        supplier().model_copy(update={"bank_account": None}),
    ]
    digests = {bank_details_hash(record) for record in changed}
    assert len(digests) == len(changed) and base not in digests


def invoice(**changes: Any) -> APInvoice:
    fields = {
        "division": "100",
        "supplier_id": "S100",
        "invoice_number": "INV-42",
        "invoice_year": 2026,
        "invoice_date": date(2026, 11, 1),
        "currency": "EUR",
        "amount": Decimal("1234.56"),
        "status": "open",
        "modified_date": date(2026, 11, 20),
    }
    fields.update(changes)
    return APInvoice(**fields)


def test_quote_request_pays_the_invoice_amount_in_its_currency() -> None:
    assert quote_request(invoice(), "gbp") == {
        "source_currency": "GBP",
        "target_currency": "EUR",
        "target_amount": Decimal("1234.56"),
    }


@pytest.mark.parametrize(
    ("changes", "source", "field"),
    [
        ({"status": "paid"}, "GBP", "status"),
        ({"amount": Decimal("0")}, "GBP", "amount"),
        ({"amount": Decimal("-5")}, "GBP", "amount"),
        ({"currency": "EUX"}, "GBP", "currency"),
        ({}, "POUNDS", "source_currency"),
    ],
)
def test_quote_request_rejects(changes: dict[str, Any], source: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        quote_request(invoice(**changes), source)
    assert caught.value.field == field
    assert caught.value.record_id == "100/S100/INV-42/2026"


def test_customer_transaction_id_is_a_deterministic_uuid_per_tenant_and_invoice() -> None:
    key = invoice().invoice_key
    first = transfer_customer_transaction_id("acme", key)
    assert first == transfer_customer_transaction_id("acme", key)
    assert uuid.UUID(first).version == 5
    assert first != transfer_customer_transaction_id("globex", key)
    assert first != transfer_customer_transaction_id("acme", invoice(invoice_number="INV-43").invoice_key)


def test_payout_status_for_every_documented_state() -> None:
    documented = [
        "incoming_payment_waiting",
        "incoming_payment_initiated",
        "waiting_recipient_input_to_proceed",
        "processing",
        "funds_converted",
        "outgoing_payment_sent",
        "cancelled",
        "funds_refunded",
        "bounced_back",
        "charged_back",
    ]
    assert sorted(PAYOUT_STATUS_BY_STATE) == sorted(documented)
    assert payout_status_for("outgoing_payment_sent") == "paid"
    assert payout_status_for("incoming_payment_waiting") == "awaiting_funds"
    assert payout_status_for("bounced_back") == "bounced"
    assert payout_status_for("funds_refunded") == "refunded"
    assert payout_status_for("unknown") == "unknown"
    assert payout_status_for("some_future_state") == "unknown"


# Account requirements --------------------------------------------------------------------------


def test_usd_to_a_bank_abroad_is_a_swift_code_recipient_with_an_address() -> None:
    record = supplier(
        currency="USD", bic="COBADEFFXXX", city="Berlin", post_code="10115", address_line="Unter den Linden 1"
    )
    payload = recipient_payload(record, PROFILE, wise_requirements)
    assert payload["type"] == "swift_code"
    assert payload["details"] == {
        "legalType": "BUSINESS",
        "swiftCode": "COBADEFFXXX",
        "accountNumber": "DE89370400440532013000",
        "address": {
            "country": "DE",
            "city": "Berlin",
            "postCode": "10115",
            "firstLine": "Unter den Linden 1",
        },
    }


def test_a_flag_names_the_infor_field_and_the_wise_requirement() -> None:
    with pytest.raises(ValidationFailed) as german_in_gbp:
        recipient_payload(supplier(currency="GBP"), PROFILE, wise_requirements)
    assert german_in_gbp.value.field == "iban"
    assert german_in_gbp.value.reason.startswith("Wise requirement IBAN of iban recipients in GBP")
    bad_sort_code = supplier(kind="sort_code", currency="GBP", sort_code="4047", account_number="70872490")
    with pytest.raises(ValidationFailed) as short:
        recipient_payload(bad_sort_code, PROFILE, wise_requirements)
    assert short.value.field == "sort_code" and "Wise requirement sortCode" in short.value.reason
    with pytest.raises(ValidationFailed) as long_name:
        recipient_payload(supplier(account_holder="Acme " * 40), PROFILE, wise_requirements)
    assert long_name.value.field == "account_holder" and "accountHolderName" in long_name.value.reason
    with pytest.raises(ValidationFailed) as no_type:
        recipient_payload(supplier(currency="AUD"), PROFILE, wise_requirements)
    assert no_type.value.field == "currency" and "offered: australian, email" in no_type.value.reason


def test_requirements_are_asked_only_for_records_that_passed_their_own_checks() -> None:
    asked: list[str] = []

    def lookup(currency: str) -> list[AccountRequirement]:
        asked.append(currency)
        return wise_requirements(currency)

    with pytest.raises(ValidationFailed):
        recipient_payload(supplier(iban="DE89370400440532013001"), PROFILE, lookup)
    assert asked == []
    recipient_payload(supplier(), PROFILE, lookup)
    assert asked == ["EUR"]


def test_a_route_wise_refuses_is_flagged_on_the_currency() -> None:
    def refusing(currency: str) -> list[AccountRequirement]:
        raise TargetRejected(
            "wise", "GET", "/v1/account-requirements", 422, f"We don't support EUR-{currency}: not supported"
        )

    with pytest.raises(ValidationFailed) as caught:
        recipient_payload(supplier(), PROFILE, refusing)
    assert caught.value.field == "currency" and "not supported" in caught.value.reason


def test_bank_details_hash_is_unchanged_by_the_local_code_fields_when_empty() -> None:
    """Digests stored before bank_code / branch_code / clearing_number existed still match, so the
    upgrade recreates no Wise recipient; a local account's codes do count."""
    digest = bank_details_hash(supplier())
    assert digest == _digest_without_local_fields(supplier())
    local = {"kind": "local", "currency": "AUD", "iban": None, "account_number": "12345678"}
    assert bank_details_hash(supplier(**local, bank_code="062000")) != bank_details_hash(
        supplier(**local, bank_code="063000")
    )


def _digest_without_local_fields(record: Supplier) -> str:
    """The digest as computed before the local-code fields were added to BankAccount."""
    import hashlib
    import json

    assert record.bank_account is not None
    dumped = record.bank_account.model_dump(mode="json")
    canonical = {
        field: (value.replace(" ", "") if field in ("iban", "bic", "account_number") and value else value)
        for field, value in dumped.items()
        if field not in ("bank_code", "branch_code", "clearing_number")
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()
