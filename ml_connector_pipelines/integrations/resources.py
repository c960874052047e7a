"""Dagster resources: thin `ConfigurableResource` wrappers that build plain clients from the vault.

Every client is usable without Dagster; these only know where credentials and tenant config live.
Pointing a tenant at real endpoints is a credentials change (`ml-connector tenants add`), never a code
change: the sandbox is just another set of base URLs.
"""

import json
from functools import cache
from typing import Any

import dagster as dg

from ..core.settings import Settings
from ..core.state import State
from ..systems.infor.adapter import InforAdapter
from ..systems.registry import SYSTEMS
from ..systems.stripe.client import StripeGateway
from ..systems.wise.client import WiseClient
from .tenancy import Connector, skip_reason


def _open_connector(db_url: str) -> Connector:
    settings = Settings.from_env()
    if db_url:
        settings = settings.model_copy(update={"db_url": db_url})
    # Keyed by the whole settings, not the resource field alone: a process that changes its
    # environment (a test, the demo after another command) must not reuse another home's store.
    return _connector_for(settings.model_dump_json())


@cache
def _connector_for(settings_json: str) -> Connector:
    return Connector.open(Settings.model_validate(json.loads(settings_json)))


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

    def skip_reason(self, tenant: str, system: str | None = None) -> str | None:
        """Why this tenant's partition is left alone (no tenant record, paused, system not used)."""
        return skip_reason(self.connector(), tenant, system)

    def tenant_config(self, tenant: str) -> dict:
        found = self.state().tenants.get(tenant)
        if found is None:
            raise dg.Failure(f"unknown tenant {tenant!r}; add it with `ml-connector tenants add`")
        return found.config


class SystemResource(dg.ConfigurableResource):
    """Clients of one registry system (`systems/registry.py`), per tenant, from the vault."""

    state: StateResource
    system: str

    def open(self, tenant: str) -> Any:
        record = self.state.state().tenants.get(tenant)
        if record is None:
            raise dg.Failure(f"unknown tenant {tenant!r}")
        credentials = self.state.credentials(tenant, self.system)
        return SYSTEMS[self.system].open_client(credentials, self.state.connector().client_context(record))


class InforResource(SystemResource):
    """One Infor adapter per tenant, built from the tenant's `.ionapi` in the vault."""

    system: str = "infor"

    def adapter(self, tenant: str) -> InforAdapter:
        return self.open(tenant)


class WiseResource(SystemResource):
    system: str = "wise"

    def client(self, tenant: str) -> WiseClient:
        return self.open(tenant)


class StripeResource(SystemResource):
    system: str = "stripe"

    def gateway(self, tenant: str) -> StripeGateway:
        return self.open(tenant)


# Typed helpers for the systems whose assets call `adapter()` / `client()` / `gateway()`; any other
# registry system gets a plain SystemResource under its name.
_TYPED: dict[str, type[SystemResource]] = {
    "infor": InforResource,
    "wise": WiseResource,
    "stripe": StripeResource,
}


def build_resources(db_url: str = "") -> dict[str, dg.ConfigurableResource]:
    """`state` plus one resource per registry system, keyed by the system's name."""
    state = StateResource(db_url=db_url)
    systems = {name: _TYPED.get(name, SystemResource)(state=state, system=name) for name in SYSTEMS}
    return {"state": state, **systems}


def not_configured(
    context: dg.AssetExecutionContext, tenant: str, system: str, reason: str | None = None
) -> dg.MaterializeResult:
    """The result of an asset that leaves this tenant alone: `reason` (default: it does not use
    `system`) is logged and kept in the metadata, so the UI says why nothing happened."""
    reason = reason or f"tenant {tenant} has no {system} credentials: nothing to sync"
    context.log.info(f"skipped: {reason}")
    return dg.MaterializeResult(metadata={"configured": False, "skipped": True, "reason": reason})
