"""Cleo records (contracts/cleo.md) and the per-trading-partner settings a tenant configures."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Transport = Literal["rest", "sftp"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class Connection(_Record):
    """A trading-partner connection (``/api/connections``); `href` is its ``_links.self.href``."""

    id: str | None = None
    alias: str
    type: str
    local_name: str | None = Field(None, alias="localName")
    partner_name: str | None = Field(None, alias="partnerName")
    href: str = ""

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Connection:
        return cls.model_validate({**body, "href": body.get("_links", {}).get("self", {}).get("href", "")})

    def body(self) -> dict[str, Any]:
        """The JSON Cleo takes on create / update: only the attributes this connector manages."""
        fields = {"alias": self.alias, "type": self.type, "localName": self.local_name}
        return {key: value for key, value in {**fields, "partnerName": self.partner_name}.items() if value}


class MailboxFile(_Record):
    """One file in a mailbox folder, as listed over REST (cleo.md §6) or SFTP."""

    mailbox: str
    folder: str
    name: str
    size: int | None = None
    modified: str | None = None
    id: str = ""
    href: str = ""  # REST: _links.self.href
    content_href: str = ""  # REST: _links.content.href

    @property
    def path(self) -> str:
        return f"{self.mailbox}/{self.folder}/{self.name}"


class TradingPartner(_Record):
    """Tenant config of one EDI trading partner (key ``cleo_trading_partners``, a list of these).

    `alias` is the Cleo connection alias and names its mailbox. A supplier partner (`supplier_id`)
    gets 850s and sends 810s; a customer partner (`customer_id`) gets 810s. GL account (AIT1) and
    cost centre (AIT2) are what the partner's invoices are booked to in Infor.
    """

    alias: str
    isa_id: str
    isa_qualifier: str = "ZZ"
    supplier_id: str | None = None
    customer_id: str | None = None
    transport: Transport = "rest"
    connection_type: str = "sftp"
    upload_folder: str = "upload"
    download_folder: str = "download"
    gl_account: str | None = None
    cost_centre: str | None = None
    unit: str = "EA"  # X12 unit of measure for order lines; Infor lines carry none here
    division: str | None = None  # Infor division of its AP invoices; default: the tenant's divi


class CleoCredentials(BaseModel):
    """What the vault holds for a tenant's Cleo (``ml-connector tenants add``). https only, except
    plain http to loopback when the sandbox mode allows it (validation context
    ``allow_loopback_http``)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    base_url: str
    username: str
    password: str
    sftp_host: str | None = None
    sftp_port: int = 22
    sftp_username: str | None = None  # default: username
    sftp_password: str | None = None  # default: password
    sftp_host_key: str | None = None  # OpenSSH public key of the server; required for SFTP

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str, info: ValidationInfo) -> str:
        url = urlsplit(value)
        loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
        allowed = url.scheme == "https" or (
            url.scheme == "http" and loopback and bool((info.context or {}).get("allow_loopback_http"))
        )
        if not allowed or not url.hostname:
            raise ValueError("base_url must be an https URL (plain http only for loopback in sandbox mode)")
        return value.rstrip("/")
