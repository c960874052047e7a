"""Registering tenants: validate credentials, store them encrypted, add the Dagster partition.

Used by `ml-connector tenants ...`, the demo and the tests, so there is one way to add a tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from ..core.redact import install_redaction
from ..core.settings import Settings
from ..core.state import State
from ..core.tenants import CredentialStore, Tenant, UnknownTenantError, check_tenant_name
from ..core.vault import Vault
from ..core.webhooks import UnknownTenant, Verifier, cached_per_tenant
from ..systems.registry import SYSTEMS
from ..systems.spec import ClientContext, CredentialsLookup
from ..systems.stripe.client import StripeGateway
from ..systems.tenant_config import validate_config
from ..systems.wise.client import WiseClient
from .alert_routing import TenantAlertRouter
from .partitions import TENANTS


@dataclass
class Connector:
    """The state store plus the vault: what every command needs."""

    settings: Settings
    state: State
    credentials: CredentialStore

    @classmethod
    def open(cls, settings: Settings | None = None, *, create_key: bool = False) -> Connector:
        # Every process that can decrypt a credential comes through here (CLI, resources, webhook
        # receiver): from now on any log record that contains a decrypted secret shows "***".
        install_redaction()
        settings = settings or Settings.from_env()
        state = State.open(settings)
        vault = Vault.from_settings(settings, create=create_key)
        # The vault is rebuilt from the settings when a ciphertext no key opens: a running process
        # (daemon, code server) picks up `keys rotate`'s new key file on its own.
        reload = lambda: Vault.from_settings(settings)  # noqa: E731
        credentials = CredentialStore(state.store, vault, reload=reload)
        # Every alert also reaches the tenant's own channels (Slack, email).
        state.alerts.router = TenantAlertRouter(state.tenants, credentials)
        return cls(settings, state, credentials)

    def allows_loopback_http(self, config: dict[str, Any] | None = None) -> bool:
        """Plain http to loopback hosts: in sandbox mode (the environment), or for a sandbox tenant."""
        return self.settings.allow_loopback_http or bool((config or {}).get("sandbox"))

    def client_context(self, record: Tenant) -> ClientContext:
        return ClientContext(
            record.product,
            record.config,
            self.allows_loopback_http(record.config),
            rate_store=self.state.store,
        )


class TenantExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"tenant {name!r} already exists; add it again with --replace to change its product, "
            "options and credentials, or change its config with `ml-connector tenants config`"
        )


def ping_system(system: str, credentials: dict[str, Any], context: ClientContext) -> None:
    """One authenticated call with these credentials; raises what the system said."""
    client = SYSTEMS[system].open_client(credentials, context)
    try:
        SYSTEMS[system].ping(client)
    finally:
        client.close()


def register_tenant(
    connector: Connector,
    name: str,
    *,
    ionapi: dict[str, Any] | None = None,
    product: str = "m3",
    config: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
    check: bool = False,
    **credentials: dict[str, Any] | None,
) -> None:
    """Validate and store a tenant: `ionapi=` is its Infor credentials, and each other system of the
    registry is a keyword of its own (`wise={...}`, `stripe={...}`); None or {} means not used.

    The name, the config (`systems/tenant_config.py`) and every system's credentials are validated,
    and with `check` each system is pinged with them, before anything is stored; errors name the bad
    key, never its value. An existing tenant is updated: its product, the given config keys and the
    given systems' credentials change, the rest stays (a pair's demo adds its system this way); the CLI
    asks for `--replace` first (`TenantExists`)."""
    check_tenant_name(name)
    unknown = sorted(set(credentials) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    tenants = connector.state.tenants
    existing = tenants.get(name)
    config = validate_config({**(existing.config if existing else {}), **(config or {})})
    given = {system: creds for system, creds in {"infor": ionapi, **credentials}.items() if creds}
    loopback = connector.allows_loopback_http(config)
    for spec in SYSTEMS.values():
        if spec.required and spec.name not in given:
            raise ValueError(f"tenant {name!r} needs {spec.name} credentials")
        if spec.name in given:
            spec.validate(given[spec.name], allow_loopback_http=loopback)
    if check:
        context = ClientContext(product, config, loopback)
        for system, creds in given.items():
            try:
                ping_system(system, creds, context)
            except Exception as exc:  # the system's own words, then nothing is stored
                raise ValueError(
                    f"tenant {name!r}: checking {system} failed ({type(exc).__name__}: {exc}); "
                    "nothing stored (--no-check stores them unchecked)"
                ) from None
    if existing is None:
        tenants.add(name, product, config)  # type: ignore[arg-type]
    else:
        tenants.update(name, product=product, config_patch=config)  # type: ignore[arg-type]
    for system, creds in given.items():
        connector.credentials.put(name, system, creds)
    if instance is not None and not instance.has_dynamic_partition(TENANTS.name, name):
        instance.add_dynamic_partitions(TENANTS.name, [name])


def set_config(
    connector: Connector, name: str, updates: dict[str, Any], unset: list[str] | None = None
) -> Tenant:
    """Change some of a tenant's config keys, validated as a whole before anything is stored."""
    record = connector.state.tenants.get(name)
    if record is None:
        raise UnknownTenantError(name)
    merged = {k: v for k, v in {**record.config, **updates}.items() if k not in (unset or [])}
    validated = validate_config(merged)
    return connector.state.tenants.update(name, config_patch=validated, unset=unset, replace_config=True)


def skip_reason(connector: Connector, tenant: str, system: str | None = None) -> str | None:
    """Why an asset, sensor or schedule must leave this tenant (partition) alone, or None.

    A partition with no tenant record (e.g. added with the UI's "Add a partition") has no
    credentials; a paused tenant waits (its inbox keeps its events); a tenant without credentials
    for `system` does not use it."""
    record = connector.state.tenants.get(tenant)
    if record is None:
        return (
            f"partition {tenant!r} has no tenant record: add the tenant with `ml-connector tenants add` "
            "(a partition added in the Dagster UI is not a tenant)"
        )
    if record.config.get("paused"):
        why = record.config.get("paused_reason") or "no reason given"
        return f"tenant {tenant} is paused ({why}); `ml-connector tenants resume {tenant}` resumes it"
    if system is not None and system not in connector.credentials.systems(tenant):
        return f"tenant {tenant} has no {system} credentials: nothing to sync"
    return None


def remove_tenant(connector: Connector, name: str, instance: dg.DagsterInstance | None = None) -> None:
    """Soft delete: credentials stop being used, the ledger and audit history stay."""
    connector.state.tenants.remove(name)
    if instance is not None and instance.has_dynamic_partition(TENANTS.name, name):
        instance.delete_dynamic_partition(TENANTS.name, name)


def open_client(connector: Connector, tenant: str, system: str) -> Any:
    """A client for one tenant's system, from its stored credentials (close it after use)."""
    record = connector.state.tenants.get(tenant)
    creds = connector.credentials.get(tenant, system)
    if record is None or creds is None:
        raise UnknownTenant(f"no {system} credentials for tenant {tenant!r}")
    return SYSTEMS[system].open_client(creds, connector.client_context(record))


def check_tenant(connector: Connector, name: str) -> dict[str, str]:
    """Ping each configured system with the tenant's credentials: 'OK' or the error."""
    if connector.state.tenants.get(name) is None:
        raise UnknownTenantError(name)
    results: dict[str, str] = {}
    for system in connector.credentials.systems(name):
        try:
            client = open_client(connector, name, system)
            try:
                SYSTEMS[system].ping(client)
            finally:
                client.close()
            results[system] = "OK"
        except Exception as exc:  # report every failure, keep checking the other systems
            results[system] = f"{type(exc).__name__}: {exc}"
    return results


def wise_client(creds: dict[str, Any]) -> WiseClient:
    return SYSTEMS["wise"].open_client(creds, ClientContext())


def stripe_gateway(creds: dict[str, Any]) -> StripeGateway:
    return SYSTEMS["stripe"].open_client(creds, ClientContext())


def webhook_verifiers(connector: Connector) -> dict[str, Verifier]:
    """Signature verifiers for the webhook receiver, one per system that sends webhooks, reading each
    tenant's keys from the vault."""

    def creds_for(system: str) -> CredentialsLookup:
        def lookup(tenant: str) -> dict[str, Any]:
            creds = connector.credentials.get(tenant, system)
            if creds is None or connector.state.tenants.get(tenant) is None:
                raise UnknownTenant(f"no {system} credentials for tenant {tenant!r}")
            return creds

        # Cached briefly: the vault is not read per event; a rotated secret applies within the TTL.
        return cached_per_tenant(lookup)

    return {
        spec.name: spec.webhook_verifier(creds_for(spec.name))
        for spec in SYSTEMS.values()
        if spec.webhook_verifier is not None
    }
