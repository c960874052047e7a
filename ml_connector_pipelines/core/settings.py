"""Where the connector keeps its state and keys, read from the environment.

Every process (CLI, Dagster code server, run workers, webhook receiver) builds the same `Settings`
from the same variables, so they all open the same state store with the same keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

DEFAULT_HOME = Path(".ml-connector")


class Settings(BaseModel):
    home: Path = DEFAULT_HOME
    db_url: str
    # First key encrypts, every key decrypts (MultiFernet), so a new key can be put in front.
    master_keys: list[str] = Field(default_factory=list)
    # Used only when master_keys is empty; one key per line, first = primary.
    master_key_file: Path
    # Plain http is accepted only for loopback hosts, and only when this is on (sandbox mode).
    allow_loopback_http: bool = False
    # ML_CONNECTOR_ENV: "production" never creates a master key file on first use.
    environment: str = "development"

    @property
    def production(self) -> bool:
        """ML_CONNECTOR_ENV=production, or a Postgres state store (what production runs on)."""
        return self.environment == "production" or self.db_url.startswith("postgresql")

    @model_validator(mode="before")
    @classmethod
    def _derive_from_home(cls, data: Any) -> Any:
        # db_url and the key file default to locations under home, whichever home was given.
        if isinstance(data, dict):
            home = Path(data.get("home") or DEFAULT_HOME)
            data = {**data, "home": home}
            data.setdefault("db_url", f"sqlite:///{home / 'state.db'}")
            data.setdefault("master_key_file", home / "master.key")
        return data

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        # Resolved once so run workers started in another directory still find the same files.
        data: dict[str, Any] = {
            "home": Path(env.get("ML_CONNECTOR_HOME") or DEFAULT_HOME).expanduser().resolve()
        }
        if env.get("ML_CONNECTOR_DB_URL"):
            data["db_url"] = env["ML_CONNECTOR_DB_URL"]
        if env.get("ML_CONNECTOR_MASTER_KEY"):
            data["master_keys"] = [k.strip() for k in env["ML_CONNECTOR_MASTER_KEY"].split(",") if k.strip()]
        if env.get("ML_CONNECTOR_MASTER_KEY_FILE"):
            data["master_key_file"] = Path(env["ML_CONNECTOR_MASTER_KEY_FILE"]).expanduser()
        if env.get("ML_CONNECTOR_ENV"):
            data["environment"] = env["ML_CONNECTOR_ENV"].strip().lower()
        data["allow_loopback_http"] = env.get("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP", "") in ("1", "true", "yes")
        return cls(**data)
