"""The SFTP transport to Cleo partner mailboxes (contracts/cleo.md §5, confirmed), with asyncssh.

The same operations as the REST transport, synchronous for callers: one SSH connection per
transport, driven on a private event loop thread. The server's host key must be configured; it is
always verified. A put whose connection breaks may have written the file: `OutcomeUnknown`.
"""

from __future__ import annotations

import asyncio
import posixpath
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncssh

from ...core.errors import ConnectorError, OutcomeUnknown, TargetRejected
from .models import MailboxFile

SYSTEM = "cleo"
T = TypeVar("T")


class SftpTransport:
    def __init__(
        self, host: str, port: int, username: str, password: str, host_key: str, *, timeout: float = 60.0
    ) -> None:
        if not host_key:
            raise ValueError("Cleo SFTP needs sftp_host_key (the server's OpenSSH public key)")
        self._options = {
            "host": host,
            "port": port,
            "username": username,
            "password": password,
            "known_hosts": ([asyncssh.import_public_key(host_key)], [], []),
            "connect_timeout": timeout,
        }
        self.timeout = timeout
        self.requests_made = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="cleo-sftp-client")
        self._thread.start()
        self._lock = threading.Lock()
        self._connection: Any = None
        self._sftp: Any = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            self.requests_made += 1
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout * 2)

    async def _client(self) -> Any:
        if self._sftp is None:
            try:
                self._connection = await asyncssh.connect(**self._options)
                self._sftp = await self._connection.start_sftp_client()
            except (OSError, asyncssh.Error) as exc:
                raise ConnectorError(f"cleo SFTP connect to {self._options['host']} failed: {exc}") from exc
        return self._sftp

    async def _reset(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = self._sftp = None

    def _rejected(self, method: str, path: str, exc: Exception) -> TargetRejected:
        return TargetRejected(SYSTEM, method, f"sftp:/{path}", None, str(exc))

    def list(self, mailbox: str, folder: str) -> list[MailboxFile]:
        path = f"/{mailbox}/{folder}"

        async def work() -> list[MailboxFile]:
            sftp = await self._client()
            names = await sftp.readdir(path)
            files = [
                MailboxFile(
                    mailbox=mailbox,
                    folder=folder,
                    name=entry.filename,
                    id=entry.filename,
                    size=entry.attrs.size,
                    modified=datetime.fromtimestamp(entry.attrs.mtime or 0, UTC).isoformat(),
                )
                for entry in names
                if entry.filename not in (".", "..") and entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
            ]
            return sorted(files, key=lambda f: (f.modified or "", f.name))

        return self._call("LIST", path, work)

    def download(self, file: MailboxFile) -> bytes:
        path = "/" + file.path

        async def work() -> bytes:
            sftp = await self._client()
            async with sftp.open(path, "rb") as handle:
                return await handle.read()

        return self._call("GET", path, work)

    def upload(self, mailbox: str, folder: str, name: str, content: bytes) -> MailboxFile:
        path = posixpath.join("/", mailbox, folder, name)

        async def work() -> MailboxFile:
            sftp = await self._client()
            async with sftp.open(path, "wb") as handle:
                await handle.write(content)
            return MailboxFile(mailbox=mailbox, folder=folder, name=name, id=name, size=len(content))

        return self._call("PUT", path, work, idempotent=False)

    def delete(self, file: MailboxFile) -> None:
        path = "/" + file.path

        async def work() -> None:
            sftp = await self._client()
            await sftp.remove(path)

        self._call("DELETE", path, work)

    def _call(self, method: str, path: str, work: Any, idempotent: bool = True) -> Any:
        """One operation; a dropped connection is retried once for reads, never for a put."""
        for attempt in (1, 2):
            try:
                return self._run(work())
            except asyncssh.SFTPError as exc:
                raise self._rejected(method, path, exc) from exc
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                self._run(self._reset())
                if not idempotent:
                    raise OutcomeUnknown(SYSTEM, method, f"sftp:{path}", None, str(exc)) from exc
                if attempt == 2:
                    raise ConnectorError(f"cleo SFTP {method} {path} failed: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        try:
            self._run(self._reset())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
