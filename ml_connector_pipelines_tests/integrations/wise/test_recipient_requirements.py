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
