"""Dagster resources: thin `ConfigurableResource` wrappers that build plain clients from the vault.

Every client is usable without Dagster; these only know where credentials and tenant config live.
Pointing a tenant at real endpoints is a credentials change (`ml-connector tenants add`), never a code
change: the sandbox is just another set of base URLs.
"""

from functools import cache

import dagster as dg

from ..core.settings import Settings
from ..core.state import State
from ..systems.infor.adapter import InforAdapter, open_adapter
from ..systems.infor.ionapi import IonApi
from ..systems.stripe.client import StripeGateway
from ..systems.wise.client import WiseClient
from .tenancy import Connector, stripe_gateway, wise_client


@cache
def _open_connector(db_url: str) -> Connector:
    settings = Settings.from_env()
    if db_url:
        settings = settings.model_copy(update={"db_url": db_url})
    return Connector.open(settings)


class StateResource(dg.ConfigurableResource):
    """The state store and vault: tenants, encrypted credentials, ledger, audit, inbox, cursors."""

    db_url: str = ""  # empty: ML_CONNECTOR_DB_URL, else SQLite under ML_CONNECTOR_HOME

    def connector(self) -> Connector:
        return _open_connector(self.db_url)

    def state(self) -> State:
        return self.connector().state

    def credentials(self, tenant: str, system: str) -> dict:
        secret = self.connector().credentials.get(tenant, system)
        if secret is None:
            raise dg.Failure(
                f"tenant {tenant!r} has no {system} credentials; add them with `ml-connector tenants add`"
            )
        return secret

    def configured(self, tenant: str, system: str) -> bool:
        """Whether the tenant uses this system at all: its push assets skip quietly when not."""
        return system in self.connector().credentials.systems(tenant)

    def tenant_config(self, tenant: str) -> dict:
        found = self.state().tenants.get(tenant)
        if found is None:
            raise dg.Failure(f"unknown tenant {tenant!r}; add it with `ml-connector tenants add`")
        return found.config


class InforResource(dg.ConfigurableResource):
    """One Infor adapter per tenant, built from the tenant's `.ionapi` in the vault."""

    state: StateResource

    def adapter(self, tenant: str) -> InforAdapter:
        record = self.state.state().tenants.get(tenant)
        if record is None:
            raise dg.Failure(f"unknown tenant {tenant!r}")
        loopback = self.state.connector().settings.allow_loopback_http
        ionapi = IonApi.from_dict(self.state.credentials(tenant, "infor"), allow_loopback_http=loopback)
        return open_adapter(ionapi, record.product, record.config, allow_loopback_http=loopback)


class WiseResource(dg.ConfigurableResource):
    state: StateResource

    def client(self, tenant: str) -> WiseClient:
        return wise_client(self.state.credentials(tenant, "wise"))


class StripeResource(dg.ConfigurableResource):
    state: StateResource

    def gateway(self, tenant: str) -> StripeGateway:
        return stripe_gateway(self.state.credentials(tenant, "stripe"))


def not_configured(context: dg.AssetExecutionContext, tenant: str, system: str) -> dg.MaterializeResult:
    """The result of a push asset for a tenant that does not use its target system."""
    reason = f"tenant {tenant} has no {system} credentials: nothing to sync"
    context.log.info(reason + " (add them with `ml-connector tenants add` to start)")
    return dg.MaterializeResult(metadata={"configured": False, "reason": reason})
