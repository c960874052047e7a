"""`make demo` runs `ml-connector demo`: it must keep working after every change."""

import re

import pytest

from ml_connector_pipelines.cli import main


def test_demo_runs_every_flow_and_exits_zero(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ML_CONNECTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("ML_CONNECTOR_MASTER_KEY", raising=False)
    monkeypatch.delenv("ML_CONNECTOR_DB_URL", raising=False)

    code = main(["demo", "--port", "0"])

    out = capsys.readouterr().out
    assert code == 0, out
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^(\w+)\s+(\d+(?:\s+\d+)+)\s*$", out, re.M)}
    for flow in [
        "wise_recipients",
        "wise_quotes",
        "wise_payout_status",
        "stripe_customers",
        "stripe_invoices",
    ]:
        assert flow in rows, out
    assert int(rows["wise_recipients"].split()[0]) > 0  # created
    assert "Wise transfer" in out and "partially refunded" in out
    # run history persisted in the demo's DAGSTER_HOME (SQLite), so it survives restarts
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()
    assert any((tmp_path / "dagster_home").rglob("*.db"))
