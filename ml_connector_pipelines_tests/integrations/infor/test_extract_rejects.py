"""Rows Infor holds that cannot become canonical records: skipped and named, never a failed run.

Records are broken in the simulator over its control route, then extracted through Dagster.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines_tests.conftest import make_tenant

from .conftest import extracted, held, patch_record, seeded_days, today

AP_AMOUNT = {"m3": "EPCUAM", "syteline": "InvAmt"}
AP_DATE = {"m3": "EPIVDT", "syteline": "InvDate"}


def _by_name(*names: str) -> list[dg.AssetsDefinition]:
    return [asset for asset in infor_extracts if asset.key.to_user_string() in names]


def _key(invoice: dict[str, Any]) -> str:
    return "/".join(str(invoice[f]) for f in ("division", "supplier_id", "invoice_number", "invoice_year"))


@pytest.mark.parametrize("product", ["m3", "syteline"])
def test_a_bad_field_rejects_only_its_record_and_names_it(
    sandbox_server: SandboxServer, connector: Any, product: str
) -> None:
    env = make_tenant(sandbox_server, connector, product=product)
    # A separator-like character inside a value must not break the row apart (M3 EXPORTMI).
    patch_record(env, "customers", "C00003", name="Smith; Jones & Co")  # also seeds the tenant
    first, second = env.infor_state()["ap_invoices"][:2]
    bad_amount, bad_date = _key(first), _key(second)
    patch_record(env, "ap_invoices", bad_amount, amount="12,50")
    patch_record(env, "ap_invoices", bad_date, invoice_date="")

    result = env.materialize(_by_name("infor_ap_invoices", "infor_customers"), today())

    assert result.success
    state = env.infor_state()
    good = [i for i in state["ap_invoices"] if _key(i) not in {bad_amount, bad_date}]
    expected = held({**state, "ap_invoices": good}, "infor_ap_invoices", today(), product)
    assert extracted(result.asset_value("infor_ap_invoices"), "infor_ap_invoices") == expected
    customers = extracted(result.asset_value("infor_customers"), "infor_customers")
    assert customers == held(state, "infor_customers", today(), product)
    assert {"customer_id": "C00003", "name": "Smith; Jones & Co"}.items() <= next(
        c for c in customers if c["customer_id"] == "C00003"
    ).items()

    [materialization] = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("infor_ap_invoices")
    ]
    rejected = materialization.materialization.metadata["rejected_records"].value
    by_record = {r["record"]: r for r in rejected}
    assert sorted(by_record) == sorted([bad_amount, bad_date])
    assert by_record[bad_amount]["field"] == AP_AMOUNT[product]
    assert "12,50" in by_record[bad_amount]["reason"]
    assert by_record[bad_date]["field"] == AP_DATE[product]

    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    parseable = checks[("infor_ap_invoices", "parseable_records")]
    assert not parseable.passed
    assert parseable.severity == dg.AssetCheckSeverity.WARN
    assert sorted(parseable.metadata["failing_records"].value) == sorted([bad_amount, bad_date])
    assert AP_AMOUNT[product] in (parseable.description or "")
    assert checks[("infor_customers", "parseable_records")].passed

    alerts = [e for e in connector.state.audit.history(env.name) if e.action == "alert"]
    assert sorted(e.source_id for e in alerts) == sorted([bad_amount, bad_date])
    assert all(e.flow == "infor_ap_invoices" and e.run_id == result.run_id for e in alerts)
    assert any(AP_AMOUNT[product] in (e.reason or "") for e in alerts)


def test_the_sample_never_shows_bank_account_numbers(tenant: Any) -> None:
    days = seeded_days()[:3]
    result = tenant.materialize(_by_name("infor_suppliers"), days[0])
    for day in days[1:]:
        result = tenant.materialize(_by_name("infor_suppliers"), day)
        if len(result.asset_value("infor_suppliers")):
            break
    frame = result.asset_value("infor_suppliers")
    assert len(frame), "no suppliers on the first seeded days"
    [materialization] = result.get_asset_materialization_events()
    sample = materialization.materialization.metadata["sample"].value
    secrets = [
        value
        for column in ("bank_account.iban", "bank_account.account_number", "bank_account.sort_code")
        for value in frame[column].dropna().head(10)
    ]
    assert secrets, "the sampled suppliers hold bank details"
    assert not [value for value in secrets if value in sample]
    assert "bank_account.kind" in sample and "supplier_id" in sample
