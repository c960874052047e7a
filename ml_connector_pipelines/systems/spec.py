"""`SystemSpec`: everything the connector knows about one external system, in one place.

A spec is data plus a few functions; it imports no Dagster. `systems/registry.py` lists one spec per
system, and tenancy, the CLI, the webhook receiver, the Dagster resources and the test fixtures
loop over that list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ..core.http import RateLimit
from ..core.webhooks import Verifier

# tenant -> that tenant's stored credentials for the system (raises UnknownTenant when it has none).
CredentialsLookup = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class ClientContext:
    """What a client factory may need besides the credentials."""

    product: str = "m3"
    config: Mapping[str, Any] = field(default_factory=dict)
    allow_loopback_http: bool = False
    # The state store (anything with `lease_tokens`): given, a system's rate budget per credential
    # holds across every run and process; None keeps the per-process bucket (scripts, tests).
    rate_store: Any = None


@dataclass(frozen=True)
class CliOption:
    """One option of `ml-connector tenants add`.

    `target` says where the value goes: a key of the system's credentials, or of the tenant config.
    `file`: the value is a path and the file's text is stored ("json": the file's JSON is the whole
    credentials). `repeat`: the option may be given several times (a list).
    """

    flag: str
    key: str
    help: str = ""
    default: str | None = None
    target: Literal["credentials", "config"] = "credentials"
    file: Literal["", "text", "json"] = ""
    repeat: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class SystemSpec:
    """One external system.

    - `credentials`: the pydantic model the stored credentials must validate against (validated with
      context {"allow_loopback_http": bool}); errors never echo the input (`hide_input_in_errors`).
    - `open_client(credentials, context)`: a ready client; close it (or use `with`) after use.
    - `ping(client)`: one cheap authenticated call; raises on failure (`tenants check`).
    - `rate_limit`: the default budget per credential (a tenant config may lower it, see the client).
    - `webhook_verifier(lookup)`: the receiver's verifier for `/webhooks/<name>/<tenant>`, if any.
    - `cli_options`: what `tenants add` offers for this system.
    - `required`: every tenant has this system (Infor, the system of record).
    - `needs_tenant_config`: the client reads the tenant config (company, division, product...).
    - `sandbox_credentials(base_url, tenant)`: the credentials tenant `tenant` uses on the sandbox
      served at `base_url` (test fixtures, demo); None when the sandbox hands them out itself.
    - `config`: the pydantic model of the system's tenant config keys, defaults and meanings.
    """

    name: str
    title: str
    credentials: type[BaseModel]
    open_client: Callable[[dict[str, Any], ClientContext], Any]
    ping: Callable[[Any], None]
    rate_limit: RateLimit
    cli_options: tuple[CliOption, ...] = ()
    webhook_verifier: Callable[[CredentialsLookup], Verifier] | None = None
    required: bool = False
    needs_tenant_config: bool = False
    sandbox_credentials: Callable[[str, str], dict[str, Any]] | None = None
    # The system's tenant config keys: a `config_fields.SystemConfig` subclass (systems/tenant_config.py).
    config: type[BaseModel] | None = None

    def validate(self, credentials: Mapping[str, Any], *, allow_loopback_http: bool = False) -> BaseModel:
        return self.credentials.model_validate(
            dict(credentials), context={"allow_loopback_http": allow_loopback_http}
        )


def per_minute(calls: int) -> RateLimit:
    """A limit documented per minute, as a bucket that never exceeds it in any 60 s window."""
    return RateLimit(per_second=calls / 60, burst=1)
