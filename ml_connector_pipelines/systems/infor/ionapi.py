"""The `.ionapi` credentials file of an Infor ION API authorized app: parse, validate, build URLs.

The file is JSON downloaded from Infor OS > API Gateway > Authorized Apps (contracts/infor.md §1).
URLs are built exactly as Infor's SDK does: token URL = pu + ot, revoke URL = pu + or (plain string
concatenation, `pu` ends with "/"), API base = iu + "/" + ti.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...core.errors import ConnectorError

# Keys the client needs. `oa` (authorization-code flow), `cn`, `dt`, `ev` and `v` are not used by the
# password grant, so a file without them still works.
REQUIRED_KEYS: dict[str, str] = {
    "ti": "tenant id",
    "ci": "OAuth client id",
    "cs": "OAuth client secret",
    "iu": "ION API gateway URL",
    "pu": "authorization server URL",
    "ot": "token endpoint path",
    "or": "revocation endpoint path",
    "saak": "service account access key",
    "sask": "service account secret key",
}


class IonApiError(ConnectorError):
    """The `.ionapi` content is unusable. The message names the offending key, never its value."""

    def __init__(self, key: str | None, reason: str) -> None:
        self.key = key
        super().__init__(f".ionapi key {key!r}: {reason}" if key else f".ionapi: {reason}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(key: str, url: str, *, allow_loopback_http: bool = False) -> None:
    """https only; plain http is accepted for loopback hosts when the sandbox mode allows it."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise IonApiError(key, "is not an absolute URL")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and allow_loopback_http and _is_loopback(parts.hostname):
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        raise IonApiError(
            key,
            "uses plain http; allowed for loopback hosts only in sandbox mode: add the tenant with "
            "`ml-connector tenants add --sandbox` (that tenant only) "
            "or set ML_CONNECTOR_ALLOW_LOOPBACK_HTTP=1",
        )
    raise IonApiError(key, "must be an https URL")


@dataclass(frozen=True)
class IonApi:
    """Validated credentials of one authorized app. Secrets are kept out of repr()."""

    tenant: str
    client_id: str
    client_secret: str = field(repr=False)
    gateway_url: str
    provider_url: str
    token_path: str
    revoke_path: str
    service_account_key: str = field(repr=False)
    service_account_secret: str = field(repr=False)
    client_name: str | None = None

    @property
    def token_url(self) -> str:
        return self.provider_url + self.token_path

    @property
    def revoke_url(self) -> str:
        return self.provider_url + self.revoke_path

    @property
    def api_base(self) -> str:
        return self.gateway_url.rstrip("/") + "/" + self.tenant

    @property
    def username(self) -> str:
        # `saak` already starts with "<TENANT>#": sent unchanged (the form encoder turns # into %23).
        return self.service_account_key

    def check_urls(self, *, allow_loopback_http: bool = False) -> None:
        check_url("iu", self.gateway_url, allow_loopback_http=allow_loopback_http)
        check_url("pu", self.provider_url, allow_loopback_http=allow_loopback_http)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, allow_loopback_http: bool = False) -> IonApi:
        if not isinstance(data, dict):
            raise IonApiError(None, "must be a JSON object")
        for key, meaning in REQUIRED_KEYS.items():
            value = data.get(key)
            if value is None:
                raise IonApiError(key, f"is missing ({meaning})")
            if not isinstance(value, str) or not value.strip():
                raise IonApiError(key, f"must be a non-empty string ({meaning})")
        if not data["pu"].endswith("/"):
            # The token URL is pu + ot by plain concatenation, so a missing slash gives a wrong URL.
            raise IonApiError("pu", "must end with '/' (e.g. https://host/TENANT/as/)")
        ionapi = cls(
            tenant=data["ti"],
            client_id=data["ci"],
            client_secret=data["cs"],
            gateway_url=data["iu"],
            provider_url=data["pu"],
            token_path=data["ot"],
            revoke_path=data["or"],
            service_account_key=data["saak"],
            service_account_secret=data["sask"],
            client_name=data.get("cn"),
        )
        ionapi.check_urls(allow_loopback_http=allow_loopback_http)
        return ionapi

    @classmethod
    def from_json(cls, text: str | bytes, *, allow_loopback_http: bool = False) -> IonApi:
        try:
            data = json.loads(text)
        except ValueError as exc:
            # No excerpt of the content: it holds secrets.
            raise IonApiError(None, f"is not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
        return cls.from_dict(data, allow_loopback_http=allow_loopback_http)

    @classmethod
    def from_file(cls, path: str | Path, *, allow_loopback_http: bool = False) -> IonApi:
        return cls.from_json(Path(path).read_bytes(), allow_loopback_http=allow_loopback_http)
