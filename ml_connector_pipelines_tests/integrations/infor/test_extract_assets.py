"""The Infor extract assets through Dagster, against the Infor simulator over HTTP.

Each extract for a tenant-day must return exactly the records the simulator holds for that tenant and
day (compared record by record, not counted), typed, with its metadata and passing checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import httpx
import pandas as pd
import pytest

from ml_connector_pipelines.integrations.frames import columns
from ml_connector_pipelines.integrations.infor.assets import EXTRACTS, infor_extracts
from ml_connector_pipelines.integrations.infor.definitions import defs
from ml_connector_pipelines.integrations.partitions import TENANT_DAY
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.seed import DEFAULT_COUNTS as ENTITIES_SEED_COUNTS
from ml_connector_pipelines_tests.conftest import TenantEnv, make_tenant

from .conftest import ENTITIES, extracted, held, seeded_days, today

# dtype pandas must give each python type of a canonical model field
DTYPES = {str: "string", date: "datetime64[s]", int: "Int64"}
SUPPLIERS = next(asset for asset in infor_extracts if asset.key == dg.AssetKey("infor_suppliers"))


def materialize_all(env: TenantEnv, day: date) -> dg.ExecuteInProcessResult:
    result = env.materialize(infor_extracts, day)
    assert result.success, f"{env.name} {day}: run failed"
    return result


def test_every_extract_is_a_tenant_day_asset_in_group_infor_on_pool_infor() -> None:
    assert sorted(spec.asset_name for spec in EXTRACTS) == sorted(ENTITIES)
    assert sorted(key.to_user_string() for a in defs.assets for key in a.keys) == sorted(ENTITIES)
    for asset in infor_extracts:
        assert asset.group_names_by_key[asset.key] == "infor"
        assert asset.partitions_def == TENANT_DAY
        assert asset.op.pool == "infor"
        blocking = {spec.name: spec.blocking for spec in asset.check_specs}
        # Only a broken extract blocks; a record missing a field is quarantined (issue 16 item 4).
        assert blocking["unique_keys"] and blocking["source_schema"] and not blocking["required_fields"]
        assert not blocking.get("valid_currencies") and not blocking.get("non_negative_amounts")
    checks_of = {a.key.to_user_string(): {s.name for s in a.check_specs} for a in infor_extracts}
    assert "valid_currencies" in checks_of["infor_suppliers"]
    assert "non_negative_amounts" in checks_of["infor_ap_invoices"]
    assert "non_negative_amounts" in checks_of["infor_ar_invoices"]


@pytest.mark.parametrize("product", ["m3", "syteline"])
def test_each_extract_returns_exactly_the_records_the_simulator_holds_for_the_day(
    sandbox_server: SandboxServer, connector: Any, product: str
) -> None:
    env = make_tenant(sandbox_server, connector, product=product)
    days = seeded_days()
    results = {day: materialize_all(env, day) for day in days[:4] + days[-1:]}
    state = env.infor_state()  # read after the first call, which seeds the tenant
    seen = dict.fromkeys(ENTITIES, 0)
    for day, result in results.items():
        for name, (_, model, _) in ENTITIES.items():
            frame: pd.DataFrame = result.asset_value(name)
            expected = held(state, name, day, product)
            assert extracted(frame, name) == expected, f"{product} {name} {day}"
            seen[name] += len(expected)
            for column, python_type in columns(model).items():
                if python_type in DTYPES:
                    assert str(frame[column].dtype) == DTYPES[python_type], f"{name}.{column}"
        for check in result.get_asset_check_evaluations():
            assert check.passed, f"{check.asset_key.to_user_string()} {check.check_name} on {day}"
    # Every entity had records on some of these days, so the equality above proved something.
    assert all(seen.values()), seen


@pytest.mark.parametrize("product", ["m3", "syteline"])
def test_extracts_carry_row_count_sample_table_and_requests_used(
    sandbox_server: SandboxServer, connector: Any, product: str
) -> None:
    env = make_tenant(sandbox_server, connector, product=product)
    # Enough records that every entity has some on today's date (the default seed spreads 30 POs
    # over 10 days, so a random tenant can have none today).
    seed = {entity: 300 for entity in ENTITIES_SEED_COUNTS}
    httpx.put(f"{sandbox_server.url}/_sandbox/infor/tenants/{env.name}/seed", json=seed).raise_for_status()
    day = today()
    result = materialize_all(env, day)
    materializations = {
        event.asset_key.to_user_string(): event.materialization
        for event in result.get_asset_materialization_events()
    }
    assert sorted(materializations) == sorted(ENTITIES)
    for name, materialization in materializations.items():
        frame: pd.DataFrame = result.asset_value(name)
        metadata = materialization.metadata
        assert materialization.partition == f"{day.isoformat()}|{env.name}"
        assert metadata["row_count"].value == len(frame) > 0
        assert metadata["requests_used"].value >= 2, name  # a token and at least one read
        # A markdown table: header, separator, then up to ten records.
        sample = metadata["sample"].value.splitlines()
        assert len(sample) == 2 + min(len(frame), 10), name
        # Every column but a supplier's bank details (only its kind, currency and country show).
        hidden = {c for c in frame.columns if c.startswith("bank_account.")} - {
            "bank_account.kind",
            "bank_account.currency",
            "bank_account.country",
        }
        header = [cell.strip() for cell in sample[0].strip("|").split("|")]
        assert header == [column for column in frame.columns if column not in hidden], name
    # Each asset opened its own adapter on a fresh tenant: together they made every call the
    # simulator saw for this tenant (token calls included), no more, no less.
    used = sum(m.metadata["requests_used"].value for m in materializations.values())
    assert used == env.infor_state()["requests"]
    invoices: pd.DataFrame = result.asset_value("infor_ap_invoices")
    assert all(isinstance(amount, Decimal) for amount in invoices["amount"])
    assert "bank_account.iban" in result.asset_value("infor_suppliers").columns


def test_each_tenant_gets_its_own_data_from_its_own_vault_credentials(
    sandbox_server: SandboxServer, connector: Any
) -> None:
    m3 = make_tenant(sandbox_server, connector, product="m3")
    syteline = make_tenant(sandbox_server, connector, product="syteline")
    # The resource builds each adapter from that tenant's `.ionapi` and product in the vault.
    infor = m3.resources["infor"]
    day = today()
    for env, product in ((m3, "m3"), (syteline, "syteline")):
        with infor.adapter(env.name) as adapter:
            assert adapter.product == product
            customers = sorted(
                (c.model_dump() for c in adapter.customers(day)), key=lambda c: c["customer_id"]
            )
        assert customers == held(env.infor_state(), "infor_customers", day, product)
    with pytest.raises(dg.Failure, match="unknown tenant"):
        infor.adapter("NOBODY")

    frames = {}
    for env, product in ((m3, "m3"), (syteline, "syteline")):
        result = env.materialize([SUPPLIERS], day)
        assert result.success
        frames[env.name] = result.asset_value("infor_suppliers")
        expected = held(env.infor_state(), "infor_suppliers", day, product)
        assert extracted(frames[env.name], "infor_suppliers") == expected
    # Seeds differ per tenant, so a mix-up of credentials would show as the other tenant's names.
    names = [set(frame["name"]) for frame in frames.values()]
    assert names[0] != names[1]


@pytest.fixture
def storm_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(seed=11, faults="storm") as server:
        yield server


def test_extracts_survive_a_429_storm_with_exactly_the_simulators_records(
    storm_sandbox: SandboxServer, connector: Any
) -> None:
    env = make_tenant(storm_sandbox, connector, product="m3")
    day = today()
    result = materialize_all(env, day)
    state = env.infor_state()
    for name in ENTITIES:
        assert extracted(result.asset_value(name), name) == held(state, name, day, "m3"), name
    # The storm really happened: a good share of the calls were refused and retried.
    injected = storm_sandbox.ctx.faults.injected
    assert injected.get("rate_limit", 0) + injected.get("rate_limit_no_header", 0) >= 5, injected
