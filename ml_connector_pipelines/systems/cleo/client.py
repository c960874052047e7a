"""A typed client for Cleo Integration Cloud / Harmony (contracts/cleo.md): password-grant auth,
trading-partner connections, and mailbox files over REST or SFTP behind one `MailboxTransport`.

    with CleoClient(CleoCredentials(base_url=..., username=..., password=...)) as cleo:
        for file in cleo.transport("rest").list("ACME", "download"): ...

Assumptions (cleo.md marks them [I]): the REST file endpoints are the contract's proposal (§6),
paths relative to ``/api``; tokens are cached until ``expires_in`` (default 3600 s) minus a margin and
renewed on 401; connections are listed 100 at a time. Folder names are per trading partner config.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol, Self
from urllib.parse import quote

from ...core.http import HttpClient, RateLimit, RetryPolicy, paginate
from ...core.redact import register_secret
from .models import CleoCredentials, Connection, MailboxFile, Transport
from .sftp import SftpTransport

SYSTEM = "cleo"
PAGE_SIZE = 100
DEFAULT_TOKEN_SECONDS = 3600.0


class MailboxTransport(Protocol):
    requests_made: int

    def list(self, mailbox: str, folder: str) -> list[MailboxFile]: ...
    def download(self, file: MailboxFile) -> bytes: ...
    def upload(self, mailbox: str, folder: str, name: str, content: bytes) -> MailboxFile: ...
    def delete(self, file: MailboxFile) -> None: ...


class CleoPasswordAuth:
    """AuthHook: ``POST /api/authentication`` with the password grant, bearer token cached."""

    def __init__(self, http: HttpClient, username: str, password: str) -> None:
        self._http = http
        self._form = {"grant_type": "password", "username": username, "password": password}
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def reauthenticate(self) -> None:
        with self._lock:
            self._fetch()

    def _fetch(self) -> None:
        response = self._http.post("/api/authentication", data=self._form, idempotent=True)
        body = response.json()
        self._token = str(body["access_token"])
        register_secret(self._token)
        lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        self._renew_at = time.monotonic() + lifetime - min(60.0, lifetime / 2)


class CleoRestTransport:
    """Mailbox files over the proposed REST endpoints (cleo.md §6), following the listed hrefs."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    @staticmethod
    def _files_path(mailbox: str, folder: str) -> str:
        return f"/api/mailboxes/{quote(mailbox, safe='')}/folders/{quote(folder, safe='')}/files"

    def list(self, mailbox: str, folder: str) -> list[MailboxFile]:
        path = self._files_path(mailbox, folder)

        def page(start: int | None) -> tuple[list[MailboxFile], int | None]:
            start = start or 0
            body = self.http.get(path, params={"startIndex": start, "count": PAGE_SIZE}).json()
            items = [_file(mailbox, folder, item) for item in body.get("resources", [])]
            following = start + len(items)
            return items, following if items and following < int(body.get("totalResults", 0)) else None

        return list(paginate(page, 0))

    def download(self, file: MailboxFile) -> bytes:
        path = file.content_href or f"{self._files_path(file.mailbox, file.folder)}/{quote(file.id)}/content"
        return self.http.get(path).content

    def upload(self, mailbox: str, folder: str, name: str, content: bytes) -> MailboxFile:
        response = self.http.post(
            self._files_path(mailbox, folder),
            params={"name": name},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        return _file(mailbox, folder, response.json())

    def delete(self, file: MailboxFile) -> None:
        self.http.delete(file.href or f"{self._files_path(file.mailbox, file.folder)}/{quote(file.id)}")


def _file(mailbox: str, folder: str, item: dict[str, Any]) -> MailboxFile:
    links = item.get("_links", {})
    return MailboxFile(
        mailbox=mailbox,
        folder=folder,
        name=item["name"],
        id=str(item.get("id") or item["name"]),
        size=item.get("size"),
        modified=item.get("modified"),
        href=links.get("self", {}).get("href", ""),
        content_href=links.get("content", {}).get("href", ""),
    )


class CleoClient:
    def __init__(
        self,
        credentials: CleoCredentials,
        *,
        rate_limit: RateLimit | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
        rate_store: Any = None,
        max_concurrency: int = 4,
    ) -> None:
        self.credentials = credentials
        self.max_concurrency = max_concurrency
        base_url = credentials.base_url.rstrip("/")
        token_http = HttpClient(
            SYSTEM, base_url, credential_id=credentials.username, retry=retry, timeout=timeout
        )
        self._token_http = token_http
        self.auth = CleoPasswordAuth(token_http, credentials.username, credentials.password)
        self.http = HttpClient(
            SYSTEM,
            base_url,
            auth=self.auth,
            credential_id=credentials.username,
            rate_limit=rate_limit,
            retry=retry,
            timeout=timeout,
            max_concurrency=max_concurrency,
            rate_store=rate_store,
        )
        self.rest = CleoRestTransport(self.http)
        self._sftp: SftpTransport | None = None
        self.timeout = timeout

    @property
    def requests_made(self) -> int:
        sftp = self._sftp.requests_made if self._sftp else 0
        return self.http.requests_made + self._token_http.requests_made + sftp

    def transport(self, kind: Transport) -> MailboxTransport:
        """REST or SFTP, as the trading partner is configured; one SFTP connection per client."""
        if kind == "rest":
            return self.rest
        if self._sftp is None:
            c = self.credentials
            if not c.sftp_host:
                raise ValueError("this tenant's Cleo credentials have no sftp_host")
            self._sftp = SftpTransport(
                c.sftp_host,
                c.sftp_port,
                c.sftp_username or c.username,
                c.sftp_password or c.password,
                c.sftp_host_key or "",
                timeout=self.timeout,
            )
        return self._sftp

    # Connections -------------------------------------------------------------------------------

    def connections(self, filter: str | None = None) -> Iterator[Connection]:
        def page(start: int | None) -> tuple[list[Connection], int | None]:
            start = start or 0
            params: dict[str, Any] = {"startIndex": start, "count": PAGE_SIZE}
            if filter:
                params["filter"] = filter
            body = self.http.get("/api/connections", params=params).json()
            items = [Connection.from_api(item) for item in body.get("resources", [])]
            following = start + len(items)
            return items, following if items and following < int(body.get("totalResults", 0)) else None

        return paginate(page, 0)

    def connection(self, alias: str) -> Connection | None:
        quoted = alias.replace('"', "")
        return next(iter(self.connections(f'alias eq "{quoted}"')), None)

    def create_connection(self, connection: Connection) -> Connection:
        return Connection.from_api(self.http.post("/api/connections", json=connection.body()).json())

    def update_connection(self, current: Connection, wanted: Connection) -> Connection:
        return Connection.from_api(self.http.put(current.href, json=wanted.body()).json())

    def ping(self) -> None:
        """Authenticate and read one connection: proves URL and credentials."""
        self.http.get("/api/connections", params={"startIndex": 0, "count": 1})

    def close(self) -> None:
        self.http.close()
        self._token_http.close()
        if self._sftp is not None:
            self._sftp.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
