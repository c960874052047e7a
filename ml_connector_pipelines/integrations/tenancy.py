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
from ..core.tenants import CredentialStore
from ..core.vault import Vault
from ..core.webhooks import UnknownTenant, Verifier, cached_per_tenant
from ..systems.registry import SYSTEMS
from ..systems.spec import ClientContext, CredentialsLookup
from ..systems.stripe.client import StripeGateway
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
        credentials = CredentialStore(state.store, vault)
        # Every alert also reaches the tenant's own channels (Slack, email).
        state.alerts.router = TenantAlertRouter(state.tenants, credentials)
        return cls(settings, state, credentials)


def register_tenant(
    connector: Connector,
    name: str,
    *,
    ionapi: dict[str, Any] | None = None,
    product: str = "m3",
    config: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
    **credentials: dict[str, Any] | None,
) -> None:
    """Validate and store a tenant: `ionapi=` is its Infor credentials, and each other system of the
    registry is a keyword of its own (`wise={...}`, `stripe={...}`); None or {} means not used.
    Raises (naming the bad key, never its value) before storing anything."""
    unknown = sorted(set(credentials) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    given = {system: creds for system, creds in {"infor": ionapi, **credentials}.items() if creds}
    loopback = connector.settings.allow_loopback_http
    for spec in SYSTEMS.values():
        if spec.required and spec.name not in given:
            raise ValueError(f"tenant {name!r} needs {spec.name} credentials")
        if spec.name in given:
            spec.validate(given[spec.name], allow_loopback_http=loopback)
    tenants = connector.state.tenants
    if tenants.get(name) is None:
        tenants.add(name, product, config or {})  # type: ignore[arg-type]
    else:
        tenants.update(name, product=product, config_patch=config or {})  # type: ignore[arg-type]
    for system, creds in given.items():
        connector.credentials.put(name, system, creds)
    if instance is not None and not instance.has_dynamic_partition(TENANTS.name, name):
        instance.add_dynamic_partitions(TENANTS.name, [name])


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
    context = ClientContext(record.product, record.config, connector.settings.allow_loopback_http)
    return SYSTEMS[system].open_client(creds, context)


def check_tenant(connector: Connector, name: str) -> dict[str, str]:
    """Ping each configured system with the tenant's credentials: 'OK' or the error."""
    if connector.state.tenants.get(name) is None:
        return {"tenant": f"unknown tenant {name!r}"}
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
