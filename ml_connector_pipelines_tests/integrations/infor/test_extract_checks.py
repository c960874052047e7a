"""Data-quality checks on real bad data: records broken in the Infor simulator, then extracted.

A failed blocking check (duplicate keys, a source schema change) must stop every downstream asset of
the same run; a record missing a required field is quarantined (left out, named, alerted) and the
rest flows on; a failed warning check (currency, negative amount) is reported and lets the data flow on.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
import pytest

from ml_connector_pipelines.integrations.infor.assets import infor_extracts
from ml_connector_pipelines.integrations.partitions import TENANT_DAY
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines_tests.conftest import make_tenant

from .conftest import patch_record, today


# Stand-ins for push assets: each reads one extract, as a real push asset does.
@dg.asset(partitions_def=TENANT_DAY)
def push_customers(infor_customers: pd.DataFrame) -> int:
    return len(infor_customers)


@dg.asset(partitions_def=TENANT_DAY)
def push_suppliers(infor_suppliers: pd.DataFrame) -> int:
    return len(infor_suppliers)


@dg.asset(partitions_def=TENANT_DAY)
def push_ap_invoices(infor_ap_invoices: pd.DataFrame) -> int:
    return len(infor_ap_invoices)


def _by_name(infor_assets: list[str]) -> list[dg.AssetsDefinition]:
    return [asset for asset in infor_extracts if asset.key.to_user_string() in infor_assets]


@pytest.mark.parametrize("product", ["m3", "syteline"])
def test_bad_records_fail_their_checks_and_are_quarantined_while_the_rest_flows(
    sandbox_server: SandboxServer, connector: Any, product: str
) -> None:
    env = make_tenant(sandbox_server, connector, product=product)
    patch_record(env, "suppliers", "S00001", currency="XQZ")
    patch_record(env, "customers", "C00002", name="")
    invoice = env.infor_state()["ap_invoices"][0]
    invoice_key = "/".join(
        str(invoice[f]) for f in ("division", "supplier_id", "invoice_number", "invoice_year")
    )
    patch_record(env, "ap_invoices", invoice_key, amount="-125.00")

    extracts = _by_name(["infor_suppliers", "infor_customers", "infor_ap_invoices"])
    result = env.materialize([*extracts, push_customers, push_suppliers, push_ap_invoices], today())

    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}

    def failing(asset: str, check: str) -> list[str]:
        evaluation = checks[(asset, check)]
        assert not evaluation.passed, f"{asset} {check} should fail"
        return evaluation.metadata["failing_records"].value

    assert failing("infor_suppliers", "valid_currencies") == ["S00001"]
    assert failing("infor_customers", "required_fields") == ["C00002"]
    assert failing("infor_ap_invoices", "non_negative_amounts") == [invoice_key]
    # Only the broken checks fail; the rest of each extract is fine.
    assert {key for key, c in checks.items() if not c.passed} == {
        ("infor_suppliers", "valid_currencies"),
        ("infor_customers", "required_fields"),
        ("infor_ap_invoices", "non_negative_amounts"),
    }
    assert checks[("infor_customers", "required_fields")].severity == dg.AssetCheckSeverity.WARN
    assert checks[("infor_suppliers", "valid_currencies")].severity == dg.AssetCheckSeverity.WARN

    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    # The customer with an empty name is quarantined: named, alerted, not in the frame; the rest flows.
    assert {"push_customers", "push_suppliers", "push_ap_invoices"} <= materialized
    customers = result.output_for_node("infor_customers")
    assert "C00002" not in set(customers["customer_id"]) and len(customers) > 0
    [extract] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "infor_customers"
    ]
    quarantined = extract.materialization.metadata["quarantined_records"].value
    assert quarantined == [{"record": "C00002", "field": "name", "reason": "required field is empty"}]
    alerts = env.connector.state.audit.history(env.name, flow="infor_customers", record="C00002")
    assert [e.action for e in alerts] == ["alert"] and "field name" in (alerts[0].reason or "")
    assert result.success


def test_a_clean_extract_lets_its_push_run(tenant: Any) -> None:
    """The same graph with nothing broken: the blocking check is what stopped the push above."""
    result = tenant.materialize([*_by_name(["infor_customers"]), push_customers], today())
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"infor_customers", "push_customers"}
    assert all(c.passed for c in result.get_asset_check_evaluations())
