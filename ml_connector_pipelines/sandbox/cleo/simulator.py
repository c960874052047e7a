"""A Cleo Integration Cloud simulator, written from ``contracts/cleo.md`` and ``contracts/x12.md`` only.

Mounted at ``{base_url}/cleo``; the REST root is ``/cleo/api``. Confirmed parts of the contract are
served as written; the proposed file endpoints (cleo.md §6) as proposed. Sandbox conventions:

Accounts and auth
- Every username is its own Cleo account (connections, mailboxes, files); the password of any
  username is ``SANDBOX_PASSWORD``. ``POST /api/authentication`` (form: grant_type=password, username,
  password) answers ``{access_token, token_type, expires_in}``; the lifetime is ``token_lifetime``
  seconds (default 3600, ``PUT /_sandbox/cleo/settings``). Expired, unknown or revoked tokens: 401.
- Errors are ``{"message": ...}``, injected faults too.

Connections (cleo.md §3-4)
- ``GET /api/connections?startIndex&count&filter``: ``{totalResults, resources}``; ``count`` defaults
  to 20 and is capped at 100 [I]; ``filter`` is ``<attribute> eq "<value>"`` on alias, type,
  localName or partnerName. ``POST`` -> 201; ``PUT``/``DELETE`` on ``_links.self.href`` -> 200 / 204.
  Bodies take only the keys of the contract's example; ``alias`` and ``type`` (as2, sftp, ftp) are
  required; an alias is unique in an account.
- Creating a connection creates its mailbox (named by the alias) with an ``upload`` and a
  ``download`` folder. A new account starts with one connection, ``SANDBOX-SUPPLIER``, whose
  download folder holds one seeded supplier 810 (for a PO no tenant has).

Mailbox files (proposal, cleo.md §6)
- ``GET /api/mailboxes/{m}/folders/{f}/files?startIndex&count`` lists (oldest first), ``GET
  .../files/{id}/content`` downloads, ``POST .../files?name=<file>`` (raw body) uploads -> 201,
  ``DELETE .../files/{id}`` -> 204. The id is the file name. No idempotency: uploading a name that
  exists replaces the file, as over SFTP. Upload folders take uploads and list; download folders
  are downloaded and deleted; anything else is 403. Names: ``[A-Za-z0-9._-]``, 1-200 characters.
- The same folders are served over SFTP (``sftp.py``) on a loopback port; see ``credentials()``.

Partner behaviour
- An 850 or 810 uploaded to a mailbox gets a 997 back in that mailbox's download folder, named
  ``997_<ISA13 acknowledged>_<own ISA13>.x12``: accepted, or rejected with AK3/AK4/AK5/AK9 codes
  when the envelope or the mandatory header segment is bad. A 997 uploaded is not acknowledged.
  Files that are not X12 at all are kept and listed in ``state()["unreadable"]``.
- ``POST /_sandbox/cleo/accounts/{user}/mailboxes/{m}/invoices`` drops a supplier 810 in the
  download folder (body: invoice_number, po_number, lines [{quantity, unit_price, buyer_part,
  vendor_part, description}], charges, currency, vendor_number, net_days, sender_id, receiver_id,
  and ``malformed`` one of ``x12.MALFORMED_KINDS``); ``POST .../files?name=`` drops any raw file.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncssh
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..context import SandboxContext
from . import x12
from .sftp import DOWNLOAD, UPLOAD, MailboxSftpServer

SANDBOX_PASSWORD = "sandbox-cleo-password"
DEFAULT_TOKEN_LIFETIME = 3600
DEFAULT_PAGE, MAX_PAGE = 20, 100
SEEDED_CONNECTION = "SANDBOX-SUPPLIER"
CONNECTION_KEYS = {"alias", "type", "localName", "partnerName", "connect", "outgoing", "incoming", "actions"}
CONNECTION_TYPES = {"as2", "sftp", "ftp"}
FILTERABLE = {"alias", "type", "localName", "partnerName"}
FILTER = re.compile(r'^\s*(\w+)\s+eq\s+"([^"]*)"\s*$')
FILE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class CleoError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


@dataclass
class Token:
    username: str
    expires_at: float
    revoked: bool = False


@dataclass
class Account:
    username: str
    connections: dict[str, dict[str, Any]]
    control_number: int = 0
    unreadable: list[dict[str, str]] | None = None

    def next_control(self) -> int:
        self.control_number += 1
        return self.control_number


class CleoSimulator:
    name = "cleo"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.token_lifetime = DEFAULT_TOKEN_LIFETIME
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, Token] = {}
        self.root = Path(tempfile.mkdtemp(prefix="cleo-sandbox-"))
        atexit.register(shutil.rmtree, self.root, True)  # the host has no stop hook per simulator
        # The SFTP mailbox listens next to the HTTP port when it can, with a host key derived from the
        # seed, so `sandbox credentials` and `sandbox serve` agree on both.
        http_port = urlsplit(ctx.base_url).port or 0
        self.sftp = MailboxSftpServer(
            self.root,
            self._password_ok,
            self._account_dir,
            self._on_sftp_upload,
            port=http_port + 1 if http_port else 0,
            host_key=_host_key(ctx.seed),
        )

    # Accounts -------------------------------------------------------------------------------------

    def _password_ok(self, username: str, password: str) -> bool:
        return bool(USERNAME.match(username)) and secrets.compare_digest(password, SANDBOX_PASSWORD)

    def _account(self, username: str) -> Account:
        with self._lock:
            account = self._accounts.get(username)
            if account is None:
                account = self._accounts[username] = Account(username, {}, unreadable=[])
                (self.root / username).mkdir(parents=True, exist_ok=True)
                self._seed(account)
            return account

    def _account_dir(self, username: str) -> Path:
        self._account(username)
        return self.root / username

    def _seed(self, account: Account) -> None:
        self._create_connection(
            account, {"alias": SEEDED_CONNECTION, "type": "sftp", "partnerName": "Sandbox"}
        )
        spec = {
            "invoice_number": "SEED-INV-1",
            "po_number": "SEED-PO-1",
            "sender_id": SEEDED_CONNECTION,
            "receiver_id": account.username[:15],
            "lines": [
                {"quantity": "2", "unit_price": "10.00", "vendor_part": "SEED-ITEM", "description": "Seed"}
            ],
        }
        self._drop_810(account, SEEDED_CONNECTION, spec)

    def _folder(self, account: Account, mailbox: str, folder: str) -> Path:
        if folder not in (UPLOAD, DOWNLOAD):
            raise CleoError(404, f"folder {folder!r} not found in mailbox {mailbox!r}")
        path = self.root / account.username / mailbox / folder
        if not FILE_NAME.match(mailbox) or not path.is_dir():
            raise CleoError(404, f"mailbox {mailbox!r} not found")
        return path

    # Auth -----------------------------------------------------------------------------------------

    def _authenticate(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "password":
            raise CleoError(400, "grant_type must be password")
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password:
            raise CleoError(400, "username and password are required")
        if not self._password_ok(username, password):
            raise CleoError(401, "invalid username or password")
        self._account(username)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = Token(username, time.time() + self.token_lifetime)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime}

    def _caller(self, request: Request) -> Account:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        with self._lock:
            token = self._tokens.get(value) if scheme.lower() == "bearer" else None
            if token is None or token.revoked or token.expires_at <= time.time():
                raise CleoError(401, "authentication required")
            if self.ctx.faults.revoke_token(self.name):
                token.revoked = True
                raise CleoError(401, "token revoked")
        return self._account(token.username)

    # Connections ----------------------------------------------------------------------------------

    def _href(self, *parts: str) -> str:
        return "/".join([self.ctx.system_url(self.name), "api", *parts])

    def _connection_json(self, connection: dict[str, Any]) -> dict[str, Any]:
        links = {"self": {"href": self._href("connections", connection["id"])}, "actions": []}
        return {**connection, "_links": links}

    @staticmethod
    def _validate_connection(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise CleoError(400, "a connection is a JSON object")
        unknown = sorted(set(body) - CONNECTION_KEYS - {"id", "_links"})
        if unknown:
            raise CleoError(400, f"unknown attribute(s): {', '.join(unknown)}")
        alias = body.get("alias")
        if not isinstance(alias, str) or not FILE_NAME.match(alias):
            raise CleoError(400, "alias is required: letters, digits, '.', '_' or '-'")
        if body.get("type") not in CONNECTION_TYPES:
            raise CleoError(400, f"type must be one of {', '.join(sorted(CONNECTION_TYPES))}")
        for key in ("localName", "partnerName"):
            if key in body and not isinstance(body[key], str):
                raise CleoError(400, f"{key} must be a string")
        return {key: value for key, value in body.items() if key in CONNECTION_KEYS}

    def _create_connection(self, account: Account, body: Any) -> dict[str, Any]:
        fields = self._validate_connection(body)
        with self._lock:
            if any(c["alias"] == fields["alias"] for c in account.connections.values()):
                raise CleoError(400, f"a connection with alias {fields['alias']!r} already exists")
            connection = {"id": uuid.uuid4().hex[:16], **fields}
            account.connections[connection["id"]] = connection
            for folder in (UPLOAD, DOWNLOAD):
                (self.root / account.username / fields["alias"] / folder).mkdir(parents=True, exist_ok=True)
        return connection

    def _list_connections(self, account: Account, query: dict[str, str]) -> dict[str, Any]:
        items = list(account.connections.values())
        if query.get("filter"):
            match = FILTER.match(query["filter"])
            if not match or match.group(1) not in FILTERABLE:
                raise CleoError(400, f"unsupported filter {query['filter']!r}")
            items = [c for c in items if c.get(match.group(1)) == match.group(2)]
        start, count = _paging(query)
        return {
            "totalResults": len(items),
            "resources": [self._connection_json(c) for c in items[start : start + count]],
        }

    def _connection(self, account: Account, connection_id: str) -> dict[str, Any]:
        connection = account.connections.get(connection_id)
        if connection is None:
            raise CleoError(404, f"connection {connection_id} not found")
        return connection

    def _replace_connection(self, account: Account, connection_id: str, body: Any) -> dict[str, Any]:
        fields = self._validate_connection(body)
        with self._lock:
            old = self._connection(account, connection_id)
            if fields["alias"] != old["alias"]:
                raise CleoError(400, "alias cannot be changed: it names the connection's mailbox")
            account.connections[connection_id] = {"id": connection_id, **fields}
            return account.connections[connection_id]

    # Files ----------------------------------------------------------------------------------------

    def _file_json(self, mailbox: str, folder: str, path: Path) -> dict[str, Any]:
        stat = path.stat()
        href = self._href("mailboxes", mailbox, "folders", folder, "files", path.name)
        return {
            "id": path.name,
            "name": path.name,
            "size": stat.st_size,
            "modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
            "_links": {"self": {"href": href}, "content": {"href": href + "/content"}},
        }

    @staticmethod
    def _files(folder_path: Path) -> list[Path]:
        return sorted(
            (p for p in folder_path.iterdir() if p.is_file()), key=lambda p: (p.stat().st_mtime, p.name)
        )

    def _write(self, account: Account, mailbox: str, folder: str, name: str, content: bytes) -> Path:
        if not FILE_NAME.match(name):
            raise CleoError(400, "name is required: letters, digits, '.', '_' or '-', at most 200")
        target = self._folder(account, mailbox, folder) / name
        staging = self.root / account.username / f".{uuid.uuid4().hex}"
        staging.write_bytes(content)
        os.replace(staging, target)  # readers never see half a file
        return target

    def _upload(
        self, account: Account, mailbox: str, folder: str, name: str, content: bytes
    ) -> dict[str, Any]:
        if folder != UPLOAD:
            self._folder(account, mailbox, folder)
            raise CleoError(403, f"{folder} is a download folder: files cannot be uploaded to it")
        with self._lock:
            path = self._write(account, mailbox, folder, name, content)
            self._received(account, mailbox, name, content)
            return self._file_json(mailbox, folder, path)

    def _on_sftp_upload(self, username: str, mailbox: str, folder: str, name: str) -> None:
        account = self._account(username)
        with self._lock:
            path = self.root / username / mailbox / folder / name
            self._received(account, mailbox, name, path.read_bytes())

    def _received(self, account: Account, mailbox: str, name: str, content: bytes) -> None:
        """What the trading partner's translator does with a file we sent: acknowledge it."""
        text = content.decode("utf-8", errors="replace")
        try:
            check = x12.check_interchange(text)
        except x12.Unreadable as exc:
            assert account.unreadable is not None
            account.unreadable.append({"mailbox": mailbox, "name": name, "reason": str(exc)})
            return
        if all(item.set_id == "997" for group in check.groups for item in group.sets) and check.groups:
            return  # a 997 is never acknowledged
        control = account.next_control()
        ack = x12.write_997(check, control, datetime.now(UTC))
        self._write(account, mailbox, DOWNLOAD, f"997_{check.control}_{control:09d}.x12", ack.encode())

    def _drop_810(self, account: Account, mailbox: str, spec: dict[str, Any]) -> dict[str, Any]:
        if not spec.get("invoice_number") or not isinstance(spec.get("lines"), list):
            raise CleoError(400, "invoice_number and lines are required")
        if spec.get("malformed") not in (None, *x12.MALFORMED_KINDS):
            raise CleoError(400, f"malformed must be one of {', '.join(x12.MALFORMED_KINDS)}")
        with self._lock:
            control = account.next_control()
            spec = {"sender_id": mailbox[:15], "receiver_id": account.username[:15], **spec}
            text = x12.write_810(spec, control, datetime.now(UTC))
            name = spec.get("file_name") or f"810_{spec['invoice_number']}_{control:09d}.x12"
            path = self._write(
                account, mailbox, DOWNLOAD, re.sub(r"[^A-Za-z0-9._-]", "_", name), text.encode()
            )
            return self._file_json(mailbox, DOWNLOAD, path)

    # HTTP -----------------------------------------------------------------------------------------

    def fault_body(self, status: int, message: str) -> bytes:
        return json.dumps({"message": message}).encode()

    def _endpoint(self, handler: Any, authenticated: bool = True) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                account = self._caller(request) if authenticated else None
                return await handler(request, account)
            except CleoError as exc:
                return JSONResponse({"message": exc.message}, status_code=exc.status)

        return endpoint

    def routes(self) -> list[BaseRoute]:
        async def authentication(request: Request, _: None) -> Response:
            if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
                raise CleoError(415, "use application/x-www-form-urlencoded")
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            return JSONResponse(self._authenticate(form))

        async def connections(request: Request, account: Account) -> Response:
            if request.method == "GET":
                return JSONResponse(self._list_connections(account, dict(request.query_params)))
            connection = self._create_connection(account, await _json_body(request))
            return JSONResponse(self._connection_json(connection), status_code=201)

        async def connection(request: Request, account: Account) -> Response:
            connection_id = request.path_params["id"]
            if request.method == "GET":
                return JSONResponse(self._connection_json(self._connection(account, connection_id)))
            if request.method == "PUT":
                updated = self._replace_connection(account, connection_id, await _json_body(request))
                return JSONResponse(self._connection_json(updated))
            with self._lock:
                self._connection(account, connection_id)
                del account.connections[connection_id]
            return Response(status_code=204)

        async def files(request: Request, account: Account) -> Response:
            mailbox, folder = request.path_params["mailbox"], request.path_params["folder"]
            if request.method == "POST":
                name = request.query_params.get("name", "")
                body = self._upload(account, mailbox, folder, name, await request.body())
                return JSONResponse(body, status_code=201)
            with self._lock:
                paths = self._files(self._folder(account, mailbox, folder))
                start, count = _paging(dict(request.query_params))
                resources = [self._file_json(mailbox, folder, p) for p in paths[start : start + count]]
            return JSONResponse({"totalResults": len(paths), "resources": resources})

        async def file(request: Request, account: Account) -> Response:
            mailbox, folder, name = (request.path_params[k] for k in ("mailbox", "folder", "id"))
            with self._lock:
                path = self._folder(account, mailbox, folder) / name
                if not FILE_NAME.match(name) or not path.is_file():
                    raise CleoError(404, f"file {name!r} not found in {mailbox}/{folder}")
                if folder != DOWNLOAD:
                    raise CleoError(403, f"{folder} is an upload folder: files cannot be read or deleted")
                if request.method == "DELETE":
                    path.unlink()
                    return Response(status_code=204)
                if not request.url.path.endswith("/content"):
                    return JSONResponse(self._file_json(mailbox, folder, path))
                content = path.read_bytes()
            disposition = f'attachment; filename="{name}"'
            return Response(
                content, media_type="application/octet-stream", headers={"Content-Disposition": disposition}
            )

        async def unknown(request: Request, _: Any) -> Response:
            raise CleoError(404, f"no such resource: {request.url.path}")

        base = "/api/mailboxes/{mailbox}/folders/{folder}/files"
        return [
            Route("/api/authentication", self._endpoint(authentication, False), methods=["POST"]),
            Route("/api/connections", self._endpoint(connections), methods=["GET", "POST"]),
            Route("/api/connections/{id}", self._endpoint(connection), methods=["GET", "PUT", "DELETE"]),
            Route(base, self._endpoint(files), methods=["GET", "POST"]),
            Route(base + "/{id}", self._endpoint(file), methods=["GET", "DELETE"]),
            Route(base + "/{id}/content", self._endpoint(file), methods=["GET"]),
            Route("/{path:path}", self._endpoint(unknown, False), methods=["GET", "POST", "PUT", "DELETE"]),
        ]

    def control_routes(self) -> list[BaseRoute]:
        async def settings(request: Request, _: None) -> Response:
            body = await _json_body(request)
            if "token_lifetime" in body:
                self.token_lifetime = int(body["token_lifetime"])
            return JSONResponse({"token_lifetime": self.token_lifetime})

        async def invoices(request: Request, _: None) -> Response:
            account = self._account(request.path_params["user"])
            mailbox = request.path_params["mailbox"]
            self._folder(account, mailbox, DOWNLOAD)
            return JSONResponse(self._drop_810(account, mailbox, await _json_body(request)), status_code=201)

        async def raw_file(request: Request, _: None) -> Response:
            account = self._account(request.path_params["user"])
            mailbox = request.path_params["mailbox"]
            with self._lock:
                path = self._write(
                    account, mailbox, DOWNLOAD, request.query_params.get("name", ""), await request.body()
                )
                return JSONResponse(self._file_json(mailbox, DOWNLOAD, path), status_code=201)

        prefix = "/accounts/{user}/mailboxes/{mailbox}"
        return [
            Route("/settings", self._endpoint(settings, False), methods=["PUT"]),
            Route(prefix + "/invoices", self._endpoint(invoices, False), methods=["POST"]),
            Route(prefix + "/files", self._endpoint(raw_file, False), methods=["POST"]),
        ]

    def state(self) -> dict[str, Any]:
        with self._lock:
            accounts: dict[str, Any] = {}
            for username, account in self._accounts.items():
                mailboxes: dict[str, Any] = {}
                for mailbox_dir in sorted((self.root / username).iterdir()):
                    if not mailbox_dir.is_dir():
                        continue
                    mailboxes[mailbox_dir.name] = {
                        folder: [
                            {
                                "name": p.name,
                                "size": p.stat().st_size,
                                "content": p.read_text(errors="replace"),
                            }
                            for p in self._files(mailbox_dir / folder)
                        ]
                        for folder in (UPLOAD, DOWNLOAD)
                    }
                accounts[username] = {
                    "connections": [self._connection_json(c) for c in account.connections.values()],
                    "mailboxes": mailboxes,
                    "unreadable": list(account.unreadable or []),
                }
            return {"accounts": accounts}

    def credentials(self) -> dict[str, Any]:
        return {
            "base_url": self.ctx.system_url(self.name),
            "password": SANDBOX_PASSWORD,
            "sftp_host": self.sftp.host,
            "sftp_port": self.sftp.port,
            "sftp_host_key": self.sftp.host_public_key,
        }

    def close(self) -> None:
        self.sftp.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _host_key(seed: int) -> asyncssh.SSHKey:
    raw = hashlib.sha256(f"cleo-sandbox-host-key:{seed}".encode()).digest()
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    return asyncssh.import_private_key(pem)


def _paging(query: dict[str, str]) -> tuple[int, int]:
    try:
        start = int(query.get("startIndex", 0))
        count = int(query.get("count", DEFAULT_PAGE))
    except ValueError as exc:
        raise CleoError(400, "startIndex and count are integers") from exc
    if start < 0 or count < 1:
        raise CleoError(400, "startIndex must be >= 0 and count >= 1")
    return start, min(count, MAX_PAGE)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise CleoError(400, "the body is not valid JSON") from exc
