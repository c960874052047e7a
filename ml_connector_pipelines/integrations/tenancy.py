"""Registering tenants: validate credentials, store them encrypted, add the Dagster partition.

Used by `ml-connector tenants ...`, the demo and the tests, so there is one way to add a tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

from ..core.redact import install_redaction
from ..core.settings import Settings
from ..core.store import State
from ..core.tenants import CredentialStore
from ..core.vault import Vault
from ..core.webhooks import UnknownTenant, Verifier
from ..systems.infor.adapter import open_adapter
from ..systems.infor.ionapi import IonApi
from ..systems.stripe.client import StripeGateway, StripeWebhookVerifier
from ..systems.wise.client import WiseClient
from ..systems.wise.signature import (
    WISE_LIVE_PUBLIC_KEY_PEM,
    WISE_SANDBOX_PUBLIC_KEY_PEM,
    WiseWebhookVerifier,
)
from .partitions import TENANTS

SYSTEMS = ("infor", "wise", "stripe")


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
        return cls(settings, state, CredentialStore(state.store, vault))


def register_tenant(
    connector: Connector,
    name: str,
    *,
    ionapi: dict[str, Any],
    product: str = "m3",
    config: dict[str, Any] | None = None,
    wise: dict[str, Any] | None = None,
    stripe: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> None:
    """Validate and store a tenant. Raises IonApiError (naming the bad key) before storing anything."""
    IonApi.from_dict(ionapi, allow_loopback_http=connector.settings.allow_loopback_http)
    tenants = connector.state.tenants
    if tenants.get(name) is None:
        tenants.add(name, product, config or {})  # type: ignore[arg-type]
    else:
        tenants.update(name, product=product, config_patch=config or {})  # type: ignore[arg-type]
    connector.credentials.put(name, "infor", ionapi)
    if wise:
        connector.credentials.put(name, "wise", wise)
    if stripe:
        connector.credentials.put(name, "stripe", stripe)
    if instance is not None and not instance.has_dynamic_partition(TENANTS.name, name):
        instance.add_dynamic_partitions(TENANTS.name, [name])


def remove_tenant(connector: Connector, name: str, instance: dg.DagsterInstance | None = None) -> None:
    """Soft delete: credentials stop being used, the ledger and audit history stay."""
    connector.state.tenants.remove(name)
    if instance is not None and instance.has_dynamic_partition(TENANTS.name, name):
        instance.delete_dynamic_partition(TENANTS.name, name)


def check_tenant(connector: Connector, name: str) -> dict[str, str]:
    """Ping each configured system with the tenant's credentials: 'OK' or the error."""
    tenant = connector.state.tenants.get(name)
    if tenant is None:
        return {"tenant": f"unknown tenant {name!r}"}
    results: dict[str, str] = {}
    for system in connector.credentials.systems(name):
        creds = connector.credentials.get(name, system) or {}
        try:
            if system == "infor":
                ionapi = IonApi.from_dict(creds, allow_loopback_http=connector.settings.allow_loopback_http)
                adapter = open_adapter(
                    ionapi,
                    tenant.product,
                    tenant.config,
                    allow_loopback_http=connector.settings.allow_loopback_http,
                )
                try:
                    adapter.ping()
                finally:
                    adapter.close()
            elif system == "wise":
                with wise_client(creds) as client:
                    client.profiles()
            elif system == "stripe":
                stripe_gateway(creds).ping()
            results[system] = "OK"
        except Exception as exc:  # report every failure, keep checking the other systems
            results[system] = f"{type(exc).__name__}: {exc}"
    return results


def wise_client(creds: dict[str, Any]) -> WiseClient:
    return WiseClient(
        creds["base_url"],
        token=creds.get("token"),
        client_id=creds.get("client_id"),
        client_secret=creds.get("client_secret"),
        profile_id=creds.get("profile_id"),
    )


def stripe_gateway(creds: dict[str, Any]) -> StripeGateway:
    return StripeGateway(creds["api_key"], creds["base_url"])


WISE_SANDBOX_HOSTS = frozenset(
    {"api.wise-sandbox.com", "api.sandbox.transferwise.tech", "api-mtls.sandbox.transferwise.tech"}
)
WISE_LIVE_HOSTS = frozenset({"api.wise.com", "api.transferwise.com", "api-mtls.transferwise.com"})


def wise_builtin_keys(base_url: str) -> list[str]:
    """Wise's own webhook key for the environment the tenant talks to, and only that one: anyone can
    sign events with a Wise sandbox account, so a live tenant must never trust the sandbox key."""
    host = urlsplit(base_url).hostname or ""
    if host in WISE_LIVE_HOSTS:
        return [WISE_LIVE_PUBLIC_KEY_PEM]
    if host in WISE_SANDBOX_HOSTS:
        return [WISE_SANDBOX_PUBLIC_KEY_PEM]
    return []  # our simulator or a proxy: only the keys configured for the tenant


def webhook_verifiers(connector: Connector) -> dict[str, Verifier]:
    """Signature verifiers for the webhook receiver, reading each tenant's keys from the vault."""

    def creds_for(system: str) -> Callable[[str], dict[str, Any]]:
        def lookup(tenant: str) -> dict[str, Any]:
            creds = connector.credentials.get(tenant, system)
            if creds is None or connector.state.tenants.get(tenant) is None:
                raise UnknownTenant(f"no {system} credentials for tenant {tenant!r}")
            return creds

        return lookup

    wise_creds = creds_for("wise")
    stripe_creds = creds_for("stripe")

    def wise_keys(tenant: str) -> list[str]:
        creds = wise_creds(tenant)
        return [*wise_builtin_keys(creds.get("base_url", "")), *creds.get("webhook_public_keys", [])]

    def wise_profile(tenant: str) -> int | None:
        # Without a configured profile_id, wise_payout_status matches each transfer to the tenant's
        # own invoices instead (anything else is skipped, audited as "not one of ours").
        return wise_creds(tenant).get("profile_id")

    return {
        # An event about another Wise profile than the tenant's is refused at the door.
        "wise": WiseWebhookVerifier(wise_keys, wise_profile),
        "stripe": StripeWebhookVerifier(lambda tenant: stripe_creds(tenant)["webhook_secret"]),
    }
