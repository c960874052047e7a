"""Schema, migrations, tenants, cursors, audit and settings, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ml_connector_pipelines.core.audit import AuditWriter
from ml_connector_pipelines.core.cursors import Cursors
from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.state import State
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.tables import audit_events, metadata
from ml_connector_pipelines.core.tenants import TenantStore


def test_migrations_match_tables_and_run_twice(state_store: StateStore) -> None:
    state_store.migrate()  # a second run is a no-op
    with state_store.session() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        version = conn.execute(sa.text("select version_num from alembic_version")).scalar_one()
    assert diff == []
    assert version == "0003"


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/nested/state.db")
    store.migrate()
    with store.session() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.dispose()


def test_session_rolls_back_on_error(state_store: StateStore) -> None:
    cursors = Cursors(state_store)
    with pytest.raises(RuntimeError), state_store.session() as conn:
        conn.execute(
            sa.text("insert into cursors (tenant, name, value, updated_at) values ('a', 'n', 'v', :at)"),
            {"at": "2026-01-01 00:00:00"},
        )
        raise RuntimeError("boom")
    assert cursors.get("a", "n") is None


def test_tenants_lifecycle(state_store: StateStore) -> None:
    tenants = TenantStore(state_store)
    tenants.add("acme", "m3", {"company": "100"})
    tenants.add("globex", "syteline")
    with pytest.raises(ValueError, match="already exists"):
        tenants.add("acme", "m3")
    with pytest.raises(ValueError, match="product"):
        tenants.add("initech", "sap")  # type: ignore[arg-type]
    updated = tenants.update_config("acme", {"division": "AAA"})
    assert updated.config == {"company": "100", "division": "AAA"}
    assert tenants.get("acme").config == {"company": "100", "division": "AAA"}
    tenants.remove("globex")
    assert [t.name for t in tenants.list()] == ["acme"]
    assert tenants.get("globex") is None
    assert tenants.get("globex", include_removed=True).removed_at is not None
    assert [t.name for t in tenants.list(include_removed=True)] == ["acme", "globex"]
    with pytest.raises(KeyError):
        tenants.remove("globex")
    assert tenants.add("globex", "m3").removed_at is None  # brought back


def test_cursors(state_store: StateStore) -> None:
    cursors = Cursors(state_store)
    assert cursors.get("acme", "stripe.events") is None
    cursors.set("acme", "stripe.events", "evt_1")
    cursors.set("acme", "stripe.events", "evt_2")
    cursors.set("globex", "stripe.events", "evt_9")
    assert cursors.get("acme", "stripe.events") == "evt_2"
    assert cursors.get("globex", "stripe.events") == "evt_9"


def test_audit_history_filters_and_order(state_store: StateStore) -> None:
    audit = AuditWriter(state_store)
    audit.record("acme", "suppliers", "S1", "created", run_id="r1", partition="p", target_id="T1")
    audit.record("acme", "suppliers", "S2", "flagged", run_id="r1", reason="no bank details")
    audit.record("acme", "invoices", "S1", "skipped", details={"hash": "h"})
    audit.record("globex", "suppliers", "S1", "created")
    assert [(e.flow, e.source_id) for e in audit.history("acme")] == [
        ("suppliers", "S1"),
        ("suppliers", "S2"),
        ("invoices", "S1"),
    ]
    [flagged] = audit.history("acme", "suppliers", "S2")
    assert (flagged.action, flagged.reason, flagged.run_id) == ("flagged", "no bank details", "r1")
    assert audit.history("acme", "invoices")[0].details == {"hash": "h"}
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("acme", "suppliers", "S1", "ignored")


def test_state_open_migrates_and_bundles(state_db_url: str, tmp_path: Path) -> None:
    state = State.open(Settings(home=tmp_path, db_url=state_db_url))
    state.tenants.add("acme", "m3")
    session = state.sync_session(tenant="acme", flow="suppliers", run_id="r1", partition=None)
    result = session.sync("S1", "h1", create=lambda: "T1")
    assert state.ledger.get("acme", "suppliers", "S1").target_id == result.target_id == "T1"
    state.store.dispose()


def test_settings_from_env(tmp_path: Path) -> None:
    defaults = Settings.from_env({"ML_CONNECTOR_HOME": str(tmp_path)})
    assert defaults.db_url == f"sqlite:///{tmp_path}/state.db"
    assert defaults.master_key_file == tmp_path / "master.key"
    assert defaults.master_keys == [] and defaults.allow_loopback_http is False
    custom = Settings.from_env(
        {
            "ML_CONNECTOR_HOME": str(tmp_path),
            "ML_CONNECTOR_DB_URL": "postgresql://postgres@db/state",
            "ML_CONNECTOR_MASTER_KEY": "new-key, old-key",
            "ML_CONNECTOR_MASTER_KEY_FILE": str(tmp_path / "keys"),
            "ML_CONNECTOR_ALLOW_LOOPBACK_HTTP": "1",
        }
    )
    assert custom.db_url == "postgresql://postgres@db/state"
    assert custom.master_keys == ["new-key", "old-key"]
    assert custom.master_key_file == tmp_path / "keys"
    assert custom.allow_loopback_http is True


def test_the_audit_trail_cannot_be_changed_or_deleted(state_store: StateStore) -> None:
    AuditWriter(state_store).record("ACME", "wise_recipients", "S1", "created", target_id="R1")
    for statement in (
        sa.update(audit_events).values(action="skipped"),
        sa.delete(audit_events),
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with state_store.session() as conn:
                conn.execute(statement)
    [event] = AuditWriter(state_store).history("ACME")
    assert (event.action, event.target_id) == ("created", "R1")
