"""Issue 9: Infor suppliers become Wise recipients on an M3 tenant that locks EXPORTMI (CRS620MI,
CRS692MI, MDBREADMI list reads) as on one that leaves it open, asserted on what the Wise simulator
holds. Quotes need the AP ledger, which only EXPORTMI lists (docs/infor.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.integrations.wise.assets import wise_recipients
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.wise.client import WiseClient
from ml_connector_pipelines_tests.conftest import make_tenant
from ml_connector_pipelines_tests.integrations.wise.wise_env import (
    infor_records,
    ledger,
    patch_infor,
    tenant_name,
)

SUPPLIERS = next(a for a in infor_extracts if a.key.to_user_string() == "infor_suppliers")


@pytest.mark.parametrize("exportmi", ["open", "locked"])
def test_suppliers_become_wise_recipients_with_exportmi_open_or_locked(
    sandbox_server: SandboxServer, connector: Any, request: pytest.FixtureRequest, exportmi: str
) -> None:
    locked = exportmi == "locked"
    tenant = make_tenant(
        sandbox_server, connector, name=tenant_name(request), config={"m3_exportmi": False} if locked else {}
    )
    suppliers = infor_records(tenant, "suppliers")  # seeds the Infor tenant
    url = f"{tenant.sandbox.url}/_sandbox/infor/tenants/{tenant.name}/config"
    httpx.put(url, json={"exportmi": not locked}, timeout=30).raise_for_status()
    # Today's partition: one active supplier of each payee kind (IBAN, sort code, ABA, email, local).
    picked = {}
    for supplier in suppliers:
        if supplier["status"] == "active":
            picked.setdefault(supplier["bank_account"]["kind"], supplier)
    assert set(picked) == {"iban", "sort_code", "aba", "email", "local"}
    for supplier in picked.values():
        patch_infor(tenant, "suppliers", supplier["supplier_id"], {"name": supplier["name"]})
    before = tenant.infor_state()["m3_calls"]

    assert tenant.materialize([SUPPLIERS, wise_recipients], datetime.now(UTC).date()).success

    calls = tenant.infor_state()["m3_calls"]
    exported = calls.get("EXPORTMI/Select", 0) - before.get("EXPORTMI/Select", 0)
    assert exported == 0 if locked else exported > 0
    entries = ledger(tenant, "wise_recipients")
    with WiseClient(f"{tenant.sandbox.url}/wise", token=tenant.wise_token) as wise:
        for kind, supplier in picked.items():
            entry = entries[supplier["supplier_id"]]
            if kind == "iban" and entry.status == "flagged":  # the seed breaks a few IBANs on purpose
                assert (entry.reason or "").startswith("iban"), entry.reason
                continue
            assert entry.status == "done", (kind, entry.reason)
            recipient = wise.get_recipient(int(entry.target_id or 0))
            assert recipient.currency == supplier["bank_account"]["currency"]
            assert recipient.account_holder_name == supplier["bank_account"]["account_holder"]
            if kind == "email":
                assert recipient.details["email"] == supplier["bank_account"]["email"]
