"""The Dagster resources open the state store of the environment they run in, every time."""

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ml_connector_pipelines.integrations.resources import StateResource


def test_a_changed_home_opens_its_own_state_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo and the tests run Dagster in-process after other commands: a store cached for the
    # first home would silently receive the second home's ledger and audit rows.
    monkeypatch.delenv("ML_CONNECTOR_DB_URL", raising=False)
    monkeypatch.setenv("ML_CONNECTOR_MASTER_KEY", Fernet.generate_key().decode())
    resource = StateResource()
    urls = []
    for name in ("first", "second"):
        monkeypatch.setenv("ML_CONNECTOR_HOME", str(tmp_path / name))
        (tmp_path / name).mkdir()
        urls.append(str(resource.state().store.engine.url))
    assert urls[0].endswith("first/state.db") and urls[1].endswith("second/state.db")
