"""The Infor CloudSuite entry of the system registry: the system of record, present for every tenant."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from ..spec import ClientContext, CliOption, SystemSpec
from .adapter import DEFAULT_RATE_LIMIT, InforAdapter, open_adapter
from .config import InforConfig
from .ionapi import IonApi


class InforCredentials(BaseModel):
    """The tenant's `.ionapi` file, kept as Infor wrote it; `IonApi` checks every key it needs."""

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _ionapi(cls, data: Any, info: ValidationInfo) -> Any:
        loopback = bool((info.context or {}).get("allow_loopback_http"))
        IonApi.from_dict(data, allow_loopback_http=loopback)  # raises IonApiError naming the key
        return data


def open_infor(credentials: dict[str, Any], context: ClientContext) -> InforAdapter:
    loopback = context.allow_loopback_http
    ionapi = IonApi.from_dict(credentials, allow_loopback_http=loopback)
    return open_adapter(ionapi, context.product, context.config, allow_loopback_http=loopback)


def ping_infor(adapter: InforAdapter) -> None:
    adapter.ping()


SYSTEM = SystemSpec(
    config=InforConfig,
    name="infor",
    title="Infor CloudSuite (M3 / SyteLine, ION API)",
    credentials=InforCredentials,
    open_client=open_infor,
    ping=ping_infor,
    # Infor publishes no default quota (tenant admins set quota policies); 500 requests/min per tenant
    # is the connector's default budget. Tenant config `rate_limit_per_second` sets the adapter's own.
    rate_limit=DEFAULT_RATE_LIMIT,  # 500 requests/min
    cli_options=(
        CliOption("--ionapi", "", "the tenant's .ionapi file", file="json"),
        CliOption("--cono", "cono", "M3 company", default="100", target="config"),
        CliOption("--divi", "divi", "M3 division", default="AAA", target="config"),
        CliOption("--mongoose-config", "mongoose_config", "SyteLine X-Infor-MongooseConfig", target="config"),
    ),
    required=True,
    needs_tenant_config=True,
)
