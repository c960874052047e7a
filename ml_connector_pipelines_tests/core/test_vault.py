"""Vault encryption, key files, rotation end to end, and redaction of decrypted secrets in logs."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_connector_pipelines.core import redact
from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.store import StateStore
from ml_connector_pipelines.core.tables import credentials
from ml_connector_pipelines.core.tenants import CredentialStore, TenantStore
from ml_connector_pipelines.core.vault import Vault, VaultError, generate_key

# Values unique to this file: decrypting registers them as secrets for the rest of the process.
IONAPI = {
    "ti": "VAULTTEST_PRD",
    "ci": "VAULTTEST_PRD~client",
    "cs": "client-secret-42",
    "saak": "VAULTTEST_PRD#key",
}


@pytest.fixture
def isolated_redaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Redaction state is process-wide: give this test its own and put the original back after."""
    monkeypatch.setattr(redact, "_secrets", set())
    monkeypatch.setattr(redact, "_pattern", None)
    monkeypatch.setattr(redact, "_installed", False)
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


def test_roundtrip_and_wrong_key() -> None:
    vault = Vault([generate_key()])
    token = vault.encrypt_json(IONAPI)
    assert "client-secret-42" not in token
    assert vault.decrypt_json(token) == IONAPI
    with pytest.raises(VaultError, match="cannot be decrypted") as caught:
        Vault([generate_key()]).decrypt_json(token)
    assert "client-secret-42" not in str(caught.value)
    with pytest.raises(VaultError, match="not a valid Fernet key"):
        Vault(["not-a-key"])
    with pytest.raises(VaultError, match="no master key"):
        Vault([])


def test_credentials_are_stored_as_ciphertext_only(state_store: StateStore) -> None:
    TenantStore(state_store).add("acme", "m3")
    store = CredentialStore(state_store, Vault([generate_key()]))
    store.put("acme", "infor", IONAPI)
    store.put("acme", "wise", {"api_token": "wise-token-123"})
    with state_store.session() as conn:
        stored = " ".join(conn.execute(sa.select(credentials.c.ciphertext)).scalars())
    assert "client-secret-42" not in stored and "wise-token-123" not in stored
    assert store.get("acme", "infor") == IONAPI
    assert store.get("acme", "stripe") is None
    assert store.systems("acme") == ["infor", "wise"]
    TenantStore(state_store).remove("acme")
    assert store.systems("acme") == []  # secrets do not outlive the tenant


def test_rotation_end_to_end(state_store: StateStore) -> None:
    TenantStore(state_store).add("acme", "m3")
    key_a, key_b = generate_key(), generate_key()
    CredentialStore(state_store, Vault([key_a])).put("acme", "infor", IONAPI)
    # New key in front, old key still listed: old ciphertexts stay readable, rotation re-encrypts.
    both = CredentialStore(state_store, Vault([key_b, key_a]))
    assert both.get("acme", "infor") == IONAPI
    assert both.rotate_all(Vault([key_b, key_a])) == 1
    assert both.get("acme", "infor") == IONAPI
    # Old key dropped: still readable, because everything is now under key B.
    assert CredentialStore(state_store, Vault([key_b])).get("acme", "infor") == IONAPI
    with pytest.raises(VaultError):
        CredentialStore(state_store, Vault([key_a])).get("acme", "infor")


def test_from_settings_prefers_env_keys_then_key_file(tmp_path: Path) -> None:
    key = generate_key()
    token = Vault([key]).encrypt_json({"k": "value-1234"})
    assert (
        Vault.from_settings(Settings(home=tmp_path, master_keys=[key])).decrypt_json(token)["k"]
        == "value-1234"
    )
    key_file = tmp_path / "master.key"
    key_file.write_text(f"{generate_key()}\n{key}\n")
    assert Vault.from_settings(Settings(home=tmp_path)).decrypt_json(token)["k"] == "value-1234"


def test_from_settings_creates_a_private_key_file_only_when_asked(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(VaultError, match="no master key"):
        Vault.from_settings(settings)
    vault = Vault.from_settings(settings, create=True)
    assert stat.S_IMODE(settings.master_key_file.stat().st_mode) == 0o600
    token = vault.encrypt_json({"a": "secret-value"})
    # The next process reads the same file instead of making a new key.
    assert Vault.from_settings(settings, create=True).decrypt_json(token) == {"a": "secret-value"}
    assert list(settings.master_key_file.parent.iterdir()) == [settings.master_key_file]


def test_decrypted_secrets_are_masked_in_every_log_record(
    isolated_redaction: None, caplog: pytest.LogCaptureFixture
) -> None:
    redact.install_redaction()
    redact.install_redaction()  # idempotent: no double wrapping
    vault = Vault([generate_key()])
    secret = "sk_live_do-not-log-me"
    vault.decrypt_json(
        vault.encrypt_json({"api_key": secret, "nested": [{"pw": "hunter2-pw"}], "flag": "m3"})
    )
    logger = logging.getLogger("ml_connector.test.redaction")
    with caplog.at_level(logging.INFO):
        logger.info("token is %s", secret)
        logger.info(f"inline {secret} and hunter2-pw")
        try:
            raise RuntimeError(f"auth failed for {secret}")
        except RuntimeError:
            logger.exception("call failed")
        logger.info("product %s stays readable", "m3")
    text = caplog.text
    assert secret not in text and "hunter2-pw" not in text
    assert "token is ***" in text and "inline *** and ***" in text
    assert "auth failed for ***" in text
    assert "product m3 stays readable" in text
    assert redact.redact(f"x {secret} y") == "x *** y"
