"""The `.ionapi` credentials file of an Infor ION API authorized app: parse, validate, build URLs.

The file is JSON downloaded from Infor OS > API Gateway > Authorized Apps (contracts/infor.md §1).
URLs are built exactly as Infor's SDK does: token URL = pu + ot, revoke URL = pu + or (plain string
concatenation, `pu` ends with "/"), API base = iu + "/" + ti.

Validation is strict, because every value ends up in a URL or a header: the file is at most
MAX_FILE_BYTES and MAX_JSON_DEPTH deep (parsed without recursion risk), every value at most
MAX_VALUE_CHARS; `ti` is one plain path segment (letters, digits, `_`, `-`, `.`; never `..`); no value
holds control characters (CR/LF would split a header or a request line); URLs carry no
`user:password@` (credentials belong in `ci`/`cs`/`saak`/`sask`, and would leak into every log line
that names the URL). Every error names the key, never the value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...core.bounded_json import JsonTooComplex, loads_bounded
from ...core.errors import ConnectorError

# A real .ionapi is about 1-2 KB, flat, with values of at most a few hundred characters.
MAX_FILE_BYTES = 64_000
MAX_JSON_DEPTH = 4
MAX_VALUE_CHARS = 4_096
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

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
    if _CONTROL.search(url) or " " in url:
        raise IonApiError(key, "contains whitespace or control characters (CR, LF, ...)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise IonApiError(key, "is not a valid URL") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise IonApiError(key, "must not carry a user or password (user:password@host)")
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
        for key, value in data.items():
            if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
                raise IonApiError(key, f"is longer than {MAX_VALUE_CHARS} characters")
            if key in REQUIRED_KEYS and _CONTROL.search(value):
                raise IonApiError(key, "contains control characters (CR, LF, ...)")
        if not TENANT_ID.fullmatch(data["ti"]) or ".." in data["ti"]:
            raise IonApiError(
                "ti", "must be one plain path segment: letters, digits, '_', '-', '.' (e.g. ACME_PRD)"
            )
        for key in ("ot", "or"):
            if any(c in data[key] for c in " \\?#@"):
                raise IonApiError(key, "must be a plain path (e.g. token.oauth2)")
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
        return cls.from_dict(parse_ionapi_json(text), allow_loopback_http=allow_loopback_http)

    @classmethod
    def from_file(cls, path: str | Path, *, allow_loopback_http: bool = False) -> IonApi:
        return cls.from_json(Path(path).read_bytes(), allow_loopback_http=allow_loopback_http)


def parse_ionapi_json(text: str | bytes, source: str | None = None) -> Any:
    """The JSON of a `.ionapi` file, bounded in size and depth. IonApiError (naming `source`, e.g. the
    file name, and the line) when it is too big, too deep or not JSON; never an excerpt: it holds
    secrets."""
    where = f"{source} " if source else ""
    try:
        return loads_bounded(text, max_bytes=MAX_FILE_BYTES, max_depth=MAX_JSON_DEPTH)
    except JsonTooComplex as exc:
        raise IonApiError(None, f"{where}is {exc}; a .ionapi file is a small flat JSON object") from None
    except ValueError as exc:
        raise IonApiError(None, f"{where}is not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
