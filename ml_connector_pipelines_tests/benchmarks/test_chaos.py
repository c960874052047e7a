"""The short variant of `make chaos`: a Wise push killed with SIGKILL mid-push, two processes racing one
partition on Postgres, and the door checks. Counted at the simulators; the full suite has every flow
and fault profile."""

from __future__ import annotations

import pytest

from ml_connector_pipelines.benchmarks.chaos import run_chaos


def test_short_chaos_run_is_clean(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_CONNECTOR_TEST_PG", postgres_server)
    rows, door = run_chaos(["wise"], ("kill -9", "race (pg)"))
    by_scenario = {row.scenario: row for row in rows}
    assert set(by_scenario) == {"kill -9", "race (pg)"}
    assert by_scenario["kill -9"].note == "killed holding a claim"  # the kill really hit mid-push
    for row in rows:
        assert row.clean, row
    for check in door:
        assert check.clean, check
