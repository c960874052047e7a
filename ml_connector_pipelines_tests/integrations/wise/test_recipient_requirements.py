"""Done-when for issue 9 (Wise): a supplier paid in each of the seed's currencies becomes a Wise
recipient built from Wise's account requirements, or is flagged naming the requirement at fault."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.wise.client import WiseClient
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant
from ml_connector_pipelines_tests.integrations.wise.wise_env import (
    infor_records,
    ledger,
    patch_infor,
    run_day,
    tenant_name,
)

SEED_CURRENCIES = {
    "EUR", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "GBP", "USD", "AUD", "CAD", "JPY", "NZD", "SGD",
}  # fmt: skip
# A flag names the Infor field, then the Wise requirement key it could not fill.
REQUIREMENT_FLAG = re.compile(
    r"^\w+: (invalid \w+: .*\(Wise requirement (?P<a>[\w.]+)\)|Wise requirement (?P<b>[\w.]+) )"
)


@pytest.fixture
def tenant(sandbox_server: SandboxServer, connector: Any, request: pytest.FixtureRequest) -> TenantEnv:
    return make_tenant(sandbox_server, connector, name=tenant_name(request))


def test_a_supplier_in_every_seed_currency_becomes_a_recipient_or_names_the_requirement(
    tenant: TenantEnv,
) -> None:
    today = datetime.now(UTC).date()
    by_currency: dict[str, dict[str, Any]] = {}
    for supplier in infor_records(tenant, "suppliers"):
        by_currency.setdefault(supplier["bank_account"]["currency"], supplier)
    assert set(by_currency) == SEED_CURRENCIES
    # Touch one supplier per currency so today's partition carries them all; and two routes the old
    # mapping could not express: USD to a German bank (Swift), and a German IBAN paid in GBP.
    for supplier in by_currency.values():
        patch_infor(tenant, "suppliers", supplier["supplier_id"], {"name": supplier["name"]})
    german = [
        s for s in infor_records(tenant, "suppliers") if (s["bank_account"]["iban"] or "").startswith("DE")
    ]
    usd_abroad, gbp_iban = german[0], german[1]
    patch_infor(tenant, "suppliers", usd_abroad["supplier_id"], {"bank_account": {"currency": "USD"}})
    patch_infor(tenant, "suppliers", gbp_iban["supplier_id"], {"bank_account": {"currency": "GBP"}})

    run_day(tenant, today)
    entries = ledger(tenant, "wise_recipients")
    with WiseClient(f"{tenant.sandbox.url}/wise", token=tenant.wise_token) as wise:
        for currency, supplier in by_currency.items():
            entry = entries[supplier["supplier_id"]]
            if entry.status == "flagged":
                assert REQUIREMENT_FLAG.match(entry.reason or ""), (currency, entry.reason)
                continue
            assert entry.status == "done", (currency, entry.status, entry.reason)
            recipient = wise.get_recipient(int(entry.target_id or 0))  # over HTTP, as Wise holds it
            assert recipient.active and recipient.currency == currency
            assert recipient.account_holder_name == supplier["bank_account"]["account_holder"]

        swift = wise.get_recipient(int(entries[usd_abroad["supplier_id"]].target_id or 0))
        assert swift.type == "SwiftCode" and swift.currency == "USD" and swift.country == "DE"
        assert swift.details["accountNumber"] == usd_abroad["bank_account"]["iban"]
        assert swift.details["swiftCode"] == usd_abroad["bank_account"]["bic"]
    refused = entries[gbp_iban["supplier_id"]]
    assert refused.status == "flagged" and refused.target_id is None
    assert (refused.reason or "").startswith("iban: Wise requirement IBAN of iban recipients in GBP")


# Wise's local recipient type per currency, and the Infor fields its codes come from (docs/wise.md).
LOCAL_ROUTES = {
    "AUD": ("australian", {"bsbCode": "bank_code"}),
    "CAD": ("canadian", {"institutionNumber": "bank_code", "transitNumber": "branch_code"}),
    "JPY": ("japanese", {"bankCode": "bank_code", "branchCode": "branch_code"}),
    "NZD": ("newzealand", {}),
    "SGD": ("singapore", {"bankCode": "bank_code"}),
}


def test_m3_local_bank_payees_become_local_wise_recipients_and_us_payees_carry_their_address(
    tenant: TenantEnv,
) -> None:
    """Bank and branch codes come from CRS692MI (BKNO / BBRN), a USD payee's address from its
    supplier address (CRS620MI/LstAddresses): asserted on what the Wise simulator holds."""
    today = datetime.now(UTC).date()
    suppliers = infor_records(tenant, "suppliers")
    local = {}
    for supplier in suppliers:
        if supplier["bank_account"]["kind"] == "local":
            local.setdefault(supplier["bank_account"]["currency"], supplier)
    assert set(local) == set(LOCAL_ROUTES)
    us_payee = next(s for s in suppliers if s["bank_account"]["kind"] == "aba" and s["status"] == "active")
    for supplier in [*local.values(), us_payee]:
        patch_infor(
            tenant, "suppliers", supplier["supplier_id"], {"name": supplier["name"], "status": "active"}
        )

    run_day(tenant, today)
    entries = ledger(tenant, "wise_recipients")
    with WiseClient(f"{tenant.sandbox.url}/wise", token=tenant.wise_token) as wise:
        for currency, (wise_type, codes) in LOCAL_ROUTES.items():
            account = local[currency]["bank_account"]
            entry = entries[local[currency]["supplier_id"]]
            assert entry.status == "done", (currency, entry.reason)
            recipient = wise.get_recipient(int(entry.target_id or 0))
            assert recipient.type.replace("_", "").lower() == wise_type and recipient.currency == currency
            assert recipient.details["accountNumber"].replace("-", "") == account["account_number"].replace(
                "-", ""
            )
            for key, field in codes.items():
                assert recipient.details[key] == account[field], (currency, key)
        us = wise.get_recipient(int(entries[us_payee["supplier_id"]].target_id or 0))
        address = us.details["address"]
        assert address["city"] == us_payee["bank_account"]["city"]
        assert address["firstLine"] == us_payee["bank_account"]["address_line"]
        assert address["postCode"] == us_payee["bank_account"]["post_code"]
        assert address["state"] == us_payee["bank_account"]["state"]
