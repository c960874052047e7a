"""Replaying a flagged record of an extract-driven flow reruns the partition it came from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ml_connector_pipelines.cli import main
from ml_connector_pipelines_tests.conftest import TenantEnv

from .wise_env import infor_records, ledger, patch_infor, wise_user

VALID_IBAN = "DE89370400440532013000"
BROKEN_IBAN = "DE00370400440532013000"  # checksum digits wrong


def test_a_fixed_supplier_is_replayed_by_rerunning_its_partition(
    tenant: TenantEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    day = datetime.now(UTC).date()
    supplier = next(
        s for s in infor_records(tenant, "suppliers") if (s.get("bank_account") or {}).get("kind") == "iban"
    )
    supplier_id = supplier["supplier_id"]
    patch_infor(tenant, "suppliers", supplier_id, {"bank_account": {"iban": BROKEN_IBAN}})
    assert tenant.run("wise_payouts", day).success
    assert ledger(tenant, "wise_recipients")[supplier_id].status == "flagged"

    patch_infor(tenant, "suppliers", supplier_id, {"bank_account": {"iban": VALID_IBAN}})
    assert main(["replay", tenant.name, "--flow", "wise_recipients", "--record", supplier_id]) == 0

    entry = ledger(tenant, "wise_recipients")[supplier_id]
    assert entry.status == "done"
    [recipient] = [r for r in wise_user(tenant)["recipients"] if str(r["id"]) == entry.target_id]
    assert VALID_IBAN in str(recipient)
    [replayed] = [
        e
        for e in tenant.connector.state.audit.history(tenant.name, flow="wise_recipients", record=supplier_id)
        if e.action == "replayed"
    ]
    assert replayed.partition is not None and day.isoformat() in replayed.partition
