"""The SFTP partner mailbox: a real SSH/SFTP server (asyncssh) on a loopback port over the same
folders the REST API serves (contracts/cleo.md §5: SFTP partner mailboxes are confirmed).

Each login is chrooted to its account's mailboxes, ``/<mailbox>/upload`` and ``/<mailbox>/download``.
Upload folders take new files (and list); download folders are read and deleted; nothing else
(no mkdir, rename or writes to a download folder). A file written to an upload folder is handed to
the simulator when the client closes it, as CIC routes a file once its transfer completes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.sftp import FXF_WRITE

UPLOAD, DOWNLOAD = "upload", "download"


class MailboxSftpServer:
    """Runs the SSH server in its own thread and event loop until `close()`."""

    def __init__(
        self,
        root: Path,
        check_password: Callable[[str, str], bool],
        account_dir: Callable[[str], Path],
        on_upload: Callable[[str, str, str], None],
        host: str = "127.0.0.1",
        port: int = 0,
        host_key: asyncssh.SSHKey | None = None,
    ) -> None:
        self.host = host
        self._preferred_port = port
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self.host_public_key = self.host_key.export_public_key().decode().strip()
        self._check_password = check_password
        self._account_dir = account_dir
        self._on_upload = on_upload
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True, name="cleo-sftp")
        self._thread.start()
        if not started.wait(15) or self._server is None:
            raise RuntimeError("the Cleo sandbox SFTP server did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        outer = self

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return outer._check_password(username, password)

        def sftp_factory(chan: Any) -> asyncssh.SFTPServer:
            return _MailboxSftp(chan, outer._account_dir, outer._on_upload)

        async def listen(port: int) -> Any:
            return await asyncssh.listen(
                self.host,
                port,
                server_host_keys=[self.host_key],
                server_factory=Server,
                sftp_factory=sftp_factory,
                allow_scp=False,
            )

        async def start() -> None:
            try:
                self._server = await listen(self._preferred_port)
            except OSError:  # the preferred port is taken: any free one (credentials() tells which)
                self._server = await listen(0)

        try:
            self._loop.run_until_complete(start())
        finally:
            started.set()
        self._loop.run_forever()

    def close(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class _MailboxSftp(asyncssh.SFTPServer):
    def __init__(self, chan: Any, account_dir: Callable[[str], Path], on_upload: Callable[..., None]) -> None:
        self.username = chan.get_extra_info("username")
        root = account_dir(self.username)
        super().__init__(chan, chroot=str(root).encode())
        self._on_upload = on_upload
        self._writing: dict[int, tuple[str, str, str]] = {}

    def _parts(self, path: bytes) -> list[str]:
        mapped = self.map_path(path).decode()
        relative = os.path.relpath(mapped, self._chroot.decode() if self._chroot else "/")
        return [] if relative == "." else relative.split(os.sep)

    def _denied(self, reason: str) -> asyncssh.SFTPPermissionDenied:
        return asyncssh.SFTPPermissionDenied(reason)

    def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
        parts = self._parts(path)
        if len(parts) != 3:
            raise asyncssh.SFTPNoSuchFile("files live in /<mailbox>/<upload|download>/")
        mailbox, folder, name = parts
        writing = bool(pflags & FXF_WRITE)
        if writing and folder != UPLOAD:
            raise self._denied(f"{folder} is not an upload folder")
        if not writing and folder != DOWNLOAD:
            raise self._denied(f"{folder} is not a download folder")
        file_obj = super().open(path, pflags, attrs)
        if writing:
            self._writing[id(file_obj)] = (mailbox, folder, name)
        return file_obj

    def close(self, file_obj: Any) -> None:
        super().close(file_obj)
        target = self._writing.pop(id(file_obj), None)
        if target is not None:
            self._on_upload(self.username, *target)

    def remove(self, path: bytes) -> None:
        parts = self._parts(path)
        if len(parts) != 3 or parts[1] != DOWNLOAD:
            raise self._denied("only files in a download folder can be deleted")
        super().remove(path)

    def mkdir(self, path: bytes, attrs: Any) -> None:
        raise self._denied("mailbox folders are set up in Cleo")

    def rmdir(self, path: bytes) -> None:
        raise self._denied("mailbox folders are set up in Cleo")

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._denied("rename is not allowed in a partner mailbox")

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._denied("rename is not allowed in a partner mailbox")

    def setstat(self, path: bytes, attrs: Any) -> None:
        return None  # clients set times after a put; the mailbox keeps its own

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._denied("links are not allowed in a partner mailbox")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._denied("links are not allowed in a partner mailbox")
