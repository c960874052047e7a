"""Encrypts credentials with Fernet keys from the environment or a key file.

MultiFernet: the first key encrypts, every listed key decrypts. Rotating is: put a new key
first, run `CredentialStore.rotate_all`, then drop the old key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ml_connector_pipelines.core.errors import ConnectorError
from ml_connector_pipelines.core.redact import register_secret
from ml_connector_pipelines.core.settings import Settings


class VaultError(ConnectorError):
    """No usable key, or a ciphertext none of the keys can open. Never carries key or secret text."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class Vault:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise VaultError("no master key configured (ML_CONNECTOR_MASTER_KEY or a key file)")
        try:
            self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])
        except (ValueError, UnicodeEncodeError):
            raise VaultError("a master key is not a valid Fernet key (32 url-safe base64 bytes)") from None

    @classmethod
    def from_settings(cls, settings: Settings, create: bool = False) -> Vault:
        """Keys from settings.master_keys, else from the key file.

        create=True writes a new key file (mode 0600) when there is none, except in production:
        see ensure_master_key.
        """
        if settings.master_keys:
            return cls(settings.master_keys)
        path = settings.master_key_file
        if create:
            ensure_master_key(settings)
        if not path.exists():
            raise VaultError(f"no master key: set ML_CONNECTOR_MASTER_KEY or create {path}")
        return cls(read_key_file(path))

    def encrypt_json(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode("utf-8")).decode("ascii")

    def decrypt_json(self, token: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode("ascii")))
        except InvalidToken:
            raise VaultError("credential cannot be decrypted with the configured master keys") from None
        _register_strings(value)
        return value

    def rotate(self, token: str) -> str:
        """Re-encrypt a token with the primary key (it must be readable with one of the keys)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise VaultError("credential cannot be decrypted with the configured master keys") from None


def ensure_master_key(settings: Settings) -> str | None:
    """First use: create the key file when no key is configured. Returns what to tell the user when
    this call created it, else None.

    Production (settings.production) never gets a key written next to its data: without
    ML_CONNECTOR_MASTER_KEY (or an existing key file) it refuses, so a misconfigured deployment
    fails loudly instead of encrypting with a key nobody backed up.
    """
    path = settings.master_key_file
    if settings.master_keys or path.exists():
        return None
    if settings.production:
        raise VaultError(
            "no master key: production (ML_CONNECTOR_ENV=production or a Postgres state store) never "
            "creates one; set ML_CONNECTOR_MASTER_KEY (generate one with `ml-connector keys generate`)"
        )
    if not _write_key_file(path, generate_key()):
        return None  # another process created it first
    return (
        f"first use: created a new master key in {path} (mode 0600). It decrypts every stored "
        "credential: back it up. For production, move it to ML_CONNECTOR_MASTER_KEY and delete the file."
    )


# Credential fields that are addresses or names, not secrets: masking them would blank tenant ids and
# URLs out of every log line. Everything else in a credential (unknown keys included) is masked.
PUBLIC_FIELDS = frozenset(
    {"ti", "cn", "dt", "iu", "pu", "oa", "ot", "or", "ev", "v"}  # .ionapi ids and URLs
    | {"base_url", "profile_id", "webhook_public_keys"}  # target endpoints and public keys
)


def _register_strings(value: Any) -> None:
    if isinstance(value, str):
        register_secret(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in PUBLIC_FIELDS:
                _register_strings(item)
    elif isinstance(value, list):
        for item in value:
            _register_strings(item)


def _write_key_file(path: Path, key: str) -> bool:
    """True when this call created the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside then hard-linked into place: two processes starting at once end up sharing
    # one complete key file, never reading a half-written one or each using their own key.
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    try:
        os.link(scratch, path)
        return True
    except FileExistsError:
        return False
    finally:
        scratch.unlink()


def read_key_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically (mode 0600): readers see the old list or the new, never half."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, path)
