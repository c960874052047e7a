"""Fixtures for the platform tests: the `ml-connector` CLI run in-process against a fresh home."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ml_connector_pipelines.cli import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@dataclass
class CliEnv:
    """A fresh ML_CONNECTOR_HOME and DAGSTER_HOME, configured through the environment like production."""

    home: Path
    dagster_home: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> CliResult:
        self.capsys.readouterr()  # drop whatever an earlier step printed
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    def write_ionapi(self, ionapi: dict[str, Any], name: str = "tenant.ionapi") -> Path:
        path = self.home.parent / name
        path.write_text(json.dumps(ionapi))
        return path

    def instance(self) -> Any:
        import dagster as dg

        return dg.DagsterInstance.get()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CliEnv:
    """Runs `ml-connector` with a key file in a tmp home (created by the fixture, as an operator would)."""
    from ml_connector_pipelines.core.vault import generate_key

    home = tmp_path / "home"
    home.mkdir()
    (home / "master.key").write_text(generate_key() + "\n")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # local SQLite storage
    monkeypatch.setenv("ML_CONNECTOR_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP", "1")
    for name in ("ML_CONNECTOR_MASTER_KEY", "ML_CONNECTOR_MASTER_KEY_FILE", "ML_CONNECTOR_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    return CliEnv(home, dagster_home, capsys)
