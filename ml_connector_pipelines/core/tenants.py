"""Tenants (one customer each, with its Infor product) and their encrypted credentials."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

import sqlalchemy as sa

from ml_connector_pipelines.core.tables import credentials, tenants, upsert, utcnow
from ml_connector_pipelines.core.vault import Vault, VaultError

if TYPE_CHECKING:
    from ml_connector_pipelines.core.store import StateStore

Product = Literal["m3", "syteline"]

# A tenant name is a Dagster partition key and part of `date|tenant` keys, URLs and run keys.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TENANT_NAME_RULE = "1 to 64 letters, digits, '_' or '-', starting with a letter or digit"


def check_tenant_name(name: str) -> str:
    """The name, or ValueError saying the rule (no '|', spaces or empty names)."""
    if not TENANT_NAME.fullmatch(name):
        raise ValueError(f"tenant name {name!r} is not valid: use {TENANT_NAME_RULE}")
    return name


class UnknownTenantError(KeyError, ValueError):
    """No live tenant of that name (a ValueError too: the CLI reports it as bad input)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no tenant {self.name!r} (see `ml-connector tenants list`)"


@dataclass
class Tenant:
    name: str
    product: Product
    config: dict[str, Any]
    created_at: datetime
    removed_at: datetime | None


class TenantStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def add(self, name: str, product: Product, config: dict[str, Any] | None = None) -> Tenant:
        """Create a tenant. Adding a removed tenant again brings it back with the new config."""
        check_tenant_name(name)
        if product not in get_args(Product):
            raise ValueError(f"product must be one of {get_args(Product)}, not {product!r}")
        existing = self.get(name, include_removed=True)
        if existing is not None and existing.removed_at is None:
            raise ValueError(f"tenant {name!r} already exists")
        values = {"product": product, "config": config or {}, "created_at": utcnow(), "removed_at": None}
        with self.store.session() as conn:
            upsert(conn, tenants, {"name": name, **values}, ["name"])
        return Tenant(name=name, **values)

    def get(self, name: str, include_removed: bool = False) -> Tenant | None:
        query = sa.select(tenants).where(tenants.c.name == name)
        if not include_removed:
            query = query.where(tenants.c.removed_at.is_(None))
        with self.store.session() as conn:
            row = conn.execute(query).mappings().first()
        return Tenant(**row) if row else None

    def list(self, include_removed: bool = False) -> list[Tenant]:
        query = sa.select(tenants).order_by(tenants.c.name)
        if not include_removed:
            query = query.where(tenants.c.removed_at.is_(None))
        with self.store.session() as conn:
            return [Tenant(**row) for row in conn.execute(query).mappings()]

    def remove(self, name: str) -> None:
        """Soft delete: the tenant row, its ledger and its audit trail stay for later questions;
        its credentials are deleted, since nothing may use them any more."""
        with self.store.session() as conn:
            result = conn.execute(
                sa.update(tenants)
                .where(tenants.c.name == name, tenants.c.removed_at.is_(None))
                .values(removed_at=utcnow())
            )
            if result.rowcount == 0:
                raise UnknownTenantError(name)
            conn.execute(sa.delete(credentials).where(credentials.c.tenant == name))

    def update_config(self, name: str, patch: dict[str, Any]) -> Tenant:
        """Shallow merge: keys in `patch` replace those in the stored config."""
        return self.update(name, config_patch=patch)

    def update(
        self,
        name: str,
        *,
        product: Product | None = None,
        config_patch: dict[str, Any] | None = None,
        unset: list[str] | None = None,
        replace_config: bool = False,
    ) -> Tenant:
        """Change a live tenant's product and/or shallow-merge `config_patch` into its config (or
        replace it with `replace_config`); keys in `unset` are removed (back to their default)."""
        if product is not None and product not in get_args(Product):
            raise ValueError(f"product must be one of {get_args(Product)}, not {product!r}")
        query = sa.select(tenants).where(tenants.c.name == name, tenants.c.removed_at.is_(None))
        with self.store.session() as conn:
            # Read and write in one locked step, so two concurrent patches both survive.
            row = conn.execute(query.with_for_update()).mappings().first()
            if row is None:
                raise UnknownTenantError(name)
            base = {} if replace_config else row["config"]
            config = {k: v for k, v in {**base, **(config_patch or {})}.items() if k not in (unset or [])}
            values = {"product": product or row["product"], "config": config}
            conn.execute(sa.update(tenants).where(tenants.c.name == name).values(**values))
        return Tenant(**{**row, **values})


class CredentialStore:
    """Secrets per (tenant, system), stored as Fernet ciphertext only."""

    def __init__(self, store: StateStore, vault: Vault, reload: Callable[[], Vault] | None = None) -> None:
        self.store = store
        self.vault = vault
        # Rebuilds the vault from its key source: called when no key opens a ciphertext, since
        # `keys rotate` in another process may have put a new key first in the key file.
        self._reload = reload

    def put(self, tenant: str, system: str, secret: dict[str, Any]) -> None:
        values = {"tenant": tenant, "system": system, "ciphertext": self.vault.encrypt_json(secret)}
        with self.store.session() as conn:
            upsert(conn, credentials, {**values, "updated_at": utcnow()}, ["tenant", "system"])

    def get(self, tenant: str, system: str) -> dict[str, Any] | None:
        query = sa.select(credentials.c.ciphertext).where(
            credentials.c.tenant == tenant, credentials.c.system == system
        )
        with self.store.session() as conn:
            token = conn.execute(query).scalar_one_or_none()
        if token is None:
            return None
        try:
            return self.vault.decrypt_json(token)
        except VaultError:
            if self._reload is None:
                raise
            self.vault = self._reload()
            return self.vault.decrypt_json(token)

    def delete(self, tenant: str, system: str) -> None:
        with self.store.session() as conn:
            conn.execute(
                sa.delete(credentials).where(credentials.c.tenant == tenant, credentials.c.system == system)
            )

    def systems(self, tenant: str) -> list[str]:
        query = sa.select(credentials.c.system).where(credentials.c.tenant == tenant).order_by("system")
        with self.store.session() as conn:
            return list(conn.execute(query).scalars())

    def rotate_all(self, vault: Vault) -> int:
        """Re-encrypt every credential with `vault`'s primary key, in one transaction.

        `vault` must still list the old keys; once this returns, they can be dropped.
        Returns the number of credentials re-encrypted.
        """
        with self.store.session() as conn:
            rows = conn.execute(
                sa.select(credentials.c.tenant, credentials.c.system, credentials.c.ciphertext)
            ).all()
            for row in rows:
                conn.execute(
                    sa.update(credentials)
                    .where(credentials.c.tenant == row.tenant, credentials.c.system == row.system)
                    .values(ciphertext=vault.rotate(row.ciphertext), updated_at=utcnow())
                )
        self.vault = vault
        return len(rows)
