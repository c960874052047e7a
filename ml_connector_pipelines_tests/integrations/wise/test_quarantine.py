"""One bad supplier never stops a tenant-day: it is quarantined and the others reach Wise."""

from __future__ import annotations

from datetime import UTC, datetime

from ml_connector_pipelines_tests.conftest import TenantEnv

from .wise_env import PIPELINE, audit, infor_records, ledger, patch_infor, wise_user


def test_a_supplier_with_an_empty_name_does_not_stop_the_wise_pushes(tenant: TenantEnv) -> None:
    day = datetime.now(UTC).date()
    payees = [s for s in infor_records(tenant, "suppliers") if s.get("bank_account")][:4]
    bad, good = payees[0]["supplier_id"], [s["supplier_id"] for s in payees[1:]]
    patch_infor(tenant, "suppliers", bad, {"name": ""})
    for supplier_id in good:  # changed today too, so they are in the same partition as the bad one
        patch_infor(tenant, "suppliers", supplier_id, {"name": f"Renamed {supplier_id}"})

    result = tenant.materialize(PIPELINE, day)
    assert result.success
    suppliers = result.output_for_node("infor_suppliers")
    assert bad not in set(suppliers["supplier_id"])  # quarantined: not in the extract's frame
    assert set(good) <= set(suppliers["supplier_id"])

    recipients = ledger(tenant, "wise_recipients")
    held = {str(r["id"]) for r in wise_user(tenant)["recipients"]}
    done = [s for s in good if recipients[s].status == "done"]
    assert done, {s: recipients[s].reason for s in good}
    assert all(recipients[s].target_id in held for s in done)  # in the Wise simulator itself
    assert all(recipients[s].status in ("done", "flagged") for s in good)
    # Named and alerted: the record and the field.
    [alert] = [e for e in audit(tenant, "infor_suppliers") if e.source_id == bad]
    assert alert.action == "alert" and "field name" in (alert.reason or "")
