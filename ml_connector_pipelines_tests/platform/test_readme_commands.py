"""The README's Dagster commands and `make ui`, run as an operator would: in a subprocess, without a TTY,
against a fresh DAGSTER_HOME; one code location name everywhere."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ml_connector_pipelines.core.vault import generate_key
from ml_connector_pipelines.demo import LOCATION_NAME, write_workspace
from ml_connector_pipelines.integrations.partitions import TENANTS

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def readme_dagster_commands() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / "README.md").read_text().splitlines()
        if re.match(r"\s*\.venv/bin/(dg|dagster) ", line)
    ]


def test_one_location_name_everywhere(tmp_path: Path) -> None:
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["location_name"] == LOCATION_NAME
    demo = yaml.safe_load(write_workspace(tmp_path).read_text())
    assert demo == workspace


def test_make_ui_takes_its_port_from_ui_port() -> None:
    dry = subprocess.run(
        ["make", "-n", "ui", "UI_PORT=3456"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "ml-connector demo --ui --ui-port 3456" in dry.stdout


def test_readme_dagster_commands_run_without_a_tty_or_a_supersession_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = readme_dagster_commands()
    assert len(commands) == 2, commands
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    home.mkdir()
    dagster_home.mkdir()
    (home / "master.key").write_text(generate_key() + "\n")
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "ML_CONNECTOR_HOME": str(home)}
    env.pop("ML_CONNECTOR_DB_URL", None)
    env.pop("ML_CONNECTOR_MASTER_KEY", None)
    # The partition as the UI's "Add a partition" makes it: no tenant record, so every asset skips it.
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(TENANTS.name, ["ACME"])
    for command in commands:
        argv = shlex.split(command)
        argv[0] = str(BIN / Path(argv[0]).name)
        done = subprocess.run(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, (command, output[-3000:])
        assert "SupersessionWarning" not in output and "DeprecationWarning" not in output, command
        if " launch " in command:
            assert "partition 'ACME' has no tenant record" in output
    # `dg launch` ran the asset in process (it skipped the partition, saying why); the backfill is
    # recorded for the daemon to run.
    launched = [run for run in instance.get_runs() if "dagster/backfill" not in run.tags]
    assert [run.status for run in launched] == [dg.DagsterRunStatus.SUCCESS]
    assert len(instance.get_backfills()) == 1
