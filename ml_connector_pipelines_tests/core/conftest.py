"""Fixtures for the state-layer tests: a migrated store on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ml_connector_pipelines.core.store import StateStore


@pytest.fixture
def state_store(state_db_url: str) -> Iterator[StateStore]:
    store = StateStore(state_db_url)
    store.migrate()
    yield store
    store.dispose()
