"""The Dagster UI, in chromium, on the demo's instance: what an operator sees and clicks.

Asset names are looked up by substring in the table below, so renamed or prefixed keys
(`wise/wise_recipients`) still match; everything else comes from the code location itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import dagster as dg
import pytest

from ml_connector_pipelines.definitions import defs

from .conftest import DagsterUI

# The only asset names this module relies on (matched as substrings of the asset key).
NAMES = {
    "extract": "infor_suppliers",  # an Infor extract, partitioned tenant x date
    # The push whose check the demo fails: the quote for S00033's invoice, whose Wise recipient has an
    # invalid IBAN. (The recipient itself is synced on the spot by wise_quotes, not in a wise_recipients
    # run, so wise_recipients' own check passes.)
    "flagged_push": "wise_quotes",
    "flagged_check": "no_flagged_records",  # the push's check that fails on flagged records
}
PAIR_GROUPS = {"infor", "wise", "stripe"}  # asset groups that must exist; others may be added
LOCATION = "ml_connector_pipelines"
TENANT = "DEMO"


def asset_key(substring: str) -> dg.AssetKey:
    keys = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if substring in k.to_user_string()]
    assert len(keys) == 1, f"{substring!r} should name exactly one asset, matches {keys}"
    return keys[0]


def asset_path(key: dg.AssetKey, view: str, partition: str = "") -> str:
    path = f"/assets/{'/'.join(quote(part) for part in key.path)}?view={view}"
    return path + (f"&partition={quote(partition)}" if partition else "")


def shown(page: Any, text: str) -> Any:
    """The visible element showing exactly `text` (the UI also keeps hidden copies to measure names)."""
    return page.get_by_text(text, exact=True).filter(visible=True).first


def named(page: Any, name: str) -> Any:
    """The visible element naming `name` in full in its tooltip: the UI middle-truncates long names
    (`procurify / proc…_purchase_orders`), so the shown text alone may not hold the whole name."""
    return page.get_by_title(name, exact=True).filter(visible=True).first


def groups() -> set[str]:
    graph = defs.resolve_asset_graph()
    return {graph.get(key).group_name for key in graph.get_all_asset_keys()}


def test_the_code_location_loads(page: Any, dagster_ui: DagsterUI) -> None:
    page.goto("/locations")
    shown(page, LOCATION).wait_for()
    shown(page, "Loaded").wait_for()
    dagster_ui.shot(page, "code-location")


def test_one_asset_group_per_pair(page: Any) -> None:
    expected = groups()
    assert PAIR_GROUPS <= expected
    for group in sorted(expected):
        page.goto(f"/locations/{LOCATION}/asset-groups/{group}/list")
        # Every asset of the group is listed on the group's page, by its full key (`cin7 / cin7_invoices`).
        graph = defs.resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            if graph.get(key).group_name == group:
                named(page, " / ".join(key.path)).wait_for()


def test_the_tenant_by_date_partitions(page: Any, dagster_ui: DagsterUI) -> None:
    today = datetime.now(UTC).date().isoformat()
    page.goto(asset_path(asset_key(NAMES["extract"]), "partitions"))
    page.get_by_placeholder("Filter by date").wait_for()
    page.get_by_placeholder("Filter by tenant").wait_for()
    page.get_by_text(today, exact=True).first.wait_for()
    page.get_by_text(TENANT, exact=True).first.wait_for()
    # The demo materialized today's partition for its tenant.
    page.get_by_text(re.compile(r"Materialized \([1-9]\d*\)")).wait_for()
    dagster_ui.shot(page, "partitions")


def test_a_partition_materialized_from_the_ui_shows_its_metadata_and_checks(
    page: Any, dagster_ui: DagsterUI
) -> None:
    """Yesterday's partition (the demo ran today's) launched from the Materialize dialog."""
    key = asset_key(NAMES["extract"])
    day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    page.goto(asset_path(key, "partitions"))
    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    dates = dialog.get_by_placeholder("ex: ", exact=False)
    dates.fill(day)
    dates.press("Enter")
    # The tenant dimension: its "All" button (the first "All" is the date dimension's).
    dialog.get_by_role("button", name="All", exact=True).nth(1).click()
    dialog.get_by_text("1 partition", exact=True).wait_for()
    dialog.get_by_role("button", name="Launch 1 run").click()

    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    toast.wait_for()
    match = re.search(r"[0-9a-f]{8}", toast.inner_text())
    assert match
    run_prefix = match.group(0)
    # The daemon dequeues the run and a run worker executes it; the run page follows it to the end.
    page.goto("/runs")
    shown(page, run_prefix).click()
    page.wait_for_url(re.compile(f"/runs/{run_prefix}"))
    shown(page, "Success").wait_for(timeout=150_000)

    # The partition's latest materialization, with the asset's metadata table.
    page.goto(asset_path(key, "partitions", f"{day}|{TENANT}"))
    shown(page, f"{day}|{TENANT}").wait_for()
    for entry in ("row_count", "requests_used", "sample", "rejected_records"):
        shown(page, entry).wait_for()
    shown(page, run_prefix).wait_for()
    dagster_ui.shot(page, "materialized-partition")

    # Its asset checks, each evaluated by that run.
    checks = [k.name for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key == key]
    assert checks
    page.goto(asset_path(key, "checks"))
    for name in checks:
        shown(page, name).wait_for()
    shown(page, "Succeeded").wait_for()
    dagster_ui.shot(page, "asset-checks")


def test_a_run_with_flagged_records_shows_its_check_failing(page: Any, dagster_ui: DagsterUI) -> None:
    """The demo's main run flags a Wise quote (its recipient's IBAN is invalid): its push check fails."""
    push = asset_key(NAMES["flagged_push"])
    failing = [
        k for k in defs.resolve_asset_graph().asset_check_keys
        if k.asset_key == push and NAMES["flagged_check"] in k.name
    ]  # fmt: skip
    if not failing:
        pytest.skip(
            f"{push.to_user_string()} has no *{NAMES['flagged_check']} check yet "
            "(it comes with the push-asset checks of the integration kit)"
        )
    (check,) = failing
    page.goto(asset_path(push, "checks"))
    named(page, check.name).click()
    # The demo's first main run flagged the record; its evaluation is in the check's history
    # whatever the replay run that followed concluded.
    shown(page, "Execution history").click()
    shown(page, "Failed").wait_for()
    page.get_by_text(re.compile(r"flagged: .*S00033.*invalid IBAN")).filter(visible=True).first.wait_for()
    dagster_ui.shot(page, "flagged-check")
