"""Infor ION API Gateway simulator: OAuth token server, M3 MI REST v2 and SyteLine IDO REST, for any
number of tenants (wire spec: /tmp/mlc/INFOR_SPEC.md, derived from contracts/infor.md).

A tenant is created and seeded on first use. One ``threading.RLock`` guards all state: uvicorn runs
handlers in a thread pool, and every request is short (EXPORTMI pages are O(page) thanks to cached,
sorted views in ``data.py`` / ``query.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..context import SandboxContext
from . import ido, m3
from .data import TenantData
from .seed import DEFAULT_COUNTS

CLIENT_SECRET = "sandbox-client-secret"
SERVICE_ACCOUNT_SECRET = "sandbox-sask"
REFRESH_TOKEN_LIFETIME = 30 * 24 * 3600  # [I] refresh tokens outlive any test or demo run
TENANT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def sandbox_ionapi(base_url: str, tenant: str) -> dict[str, str]:
    """A valid ``.ionapi`` for sandbox ``tenant``; ``base_url`` is the sandbox root (``/infor`` optional)."""
    root = base_url.rstrip("/").removesuffix("/infor")
    return {
        "ti": tenant,
        "cn": f"{tenant}_sandbox",
        "dt": "12",
        "ci": f"{tenant}~sandbox-client",
        "cs": CLIENT_SECRET,
        "iu": f"{root}/infor",
        "pu": f"{root}/infor/{tenant}/as/",
        "oa": "authorization.oauth2",
        "ot": "token.oauth2",
        "or": "revoke_token.oauth2",
        "ev": "SANDBOX",
        "v": "1.0",
        "saak": f"{tenant}#sandbox-saak",
        "sask": SERVICE_ACCOUNT_SECRET,
    }


@dataclass
class Token:
    tenant: str
    kind: str  # "access" or "refresh"
    grant: str  # revoking a refresh token revokes every token of its grant
    expires_at: float
    revoked: bool = False

    def usable(self, kind: str, tenant: str) -> bool:
        return (
            self.kind == kind and self.tenant == tenant and not self.revoked and self.expires_at > time.time()
        )


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _form(request: Request) -> dict[str, str]:
    """An url-encoded form body (parsed here: starlette's form parser needs python-multipart)."""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


def _today() -> date:
    return datetime.now(UTC).date()


class InforSimulator:
    name = "infor"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._lock = threading.RLock()
        self._tenants: dict[str, TenantData] = {}
        self._tokens: dict[str, Token] = {}
        self._issued: dict[str, int] = {}

    # Tenants ------------------------------------------------------------------------------------------

    def tenant(self, tenant: str) -> TenantData:
        with self._lock:
            data = self._tenants.get(tenant)
            if data is None:
                data = self._tenants[tenant] = TenantData(tenant, self.ctx.seed, _today())
            return data

    # Auth ---------------------------------------------------------------------------------------------

    @staticmethod
    def _client(request: Request, form: dict[str, str]) -> tuple[str, str]:
        """Client id/secret from HTTP Basic or, failing that, the form (both are seen in the wild)."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            client_id, _, secret = decoded.partition(":")
            return unquote_plus(client_id), unquote_plus(secret)
        return form.get("client_id", ""), form.get("client_secret", "")

    def _issue(self, tenant: str, grant: str, config_lifetime: int, with_refresh: bool) -> dict[str, Any]:
        now = time.time()
        access = secrets.token_urlsafe(32)
        self._tokens[access] = Token(tenant, "access", grant, now + config_lifetime)
        self._issued[tenant] = self._issued.get(tenant, 0) + 1
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": config_lifetime}
        if with_refresh:
            refresh = secrets.token_urlsafe(32)
            self._tokens[refresh] = Token(tenant, "refresh", grant, now + REFRESH_TOKEN_LIFETIME)
            body["refresh_token"] = refresh
        return body

    async def token_endpoint(self, request: Request) -> Response:
        return await run_in_threadpool(self._token, request, await _form(request))

    def _token(self, request: Request, form: dict[str, str]) -> Response:
        tenant = request.path_params["tenant"]
        client_id, client_secret = self._client(request, form)
        with self._lock:
            if not TENANT_ID.match(tenant):
                return _oauth_error(400, "invalid_request", "unknown tenant")
            data = self.tenant(tenant)
            data.requests += 1
            if not client_id.startswith(f"{tenant}~") or client_secret != CLIENT_SECRET:
                return _oauth_error(401, "invalid_client", "client authentication failed")
            grant_type = form.get("grant_type", "")
            if grant_type == "password":
                if (
                    not form.get("username", "").startswith(f"{tenant}#")
                    or form.get("password") != SERVICE_ACCOUNT_SECRET
                ):
                    return _oauth_error(400, "invalid_grant", "invalid service account credentials")
                grant = secrets.token_hex(8)
            elif grant_type == "refresh_token":
                token = self._tokens.get(form.get("refresh_token", ""))
                if token is None or not token.usable("refresh", tenant):
                    return _oauth_error(400, "invalid_grant", "refresh token is invalid, expired or revoked")
                grant = token.grant  # [I] the old refresh token stays valid: no rotation
            else:
                return _oauth_error(
                    400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
                )
            body = self._issue(tenant, grant, data.auth.token_lifetime, data.auth.issue_refresh_token)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def revoke_endpoint(self, request: Request) -> Response:
        form = {**dict(request.query_params), **(await _form(request))}
        return await run_in_threadpool(self._revoke, request, form)

    def _revoke(self, request: Request, form: dict[str, str]) -> Response:
        tenant = request.path_params["tenant"]
        client_id, client_secret = self._client(request, form)
        with self._lock:
            if not client_id.startswith(f"{tenant}~") or client_secret != CLIENT_SECRET:
                return _oauth_error(401, "invalid_client", "client authentication failed")
            token = self._tokens.get(form.get("token", ""))
            if token is not None and token.tenant == tenant:
                if token.kind == "refresh":
                    for other in self._tokens.values():
                        if other.grant == token.grant:
                            other.revoked = True
                token.revoked = True
        return Response(status_code=200)  # unknown tokens too (RFC 7009)

    def _authorize(self, request: Request, tenant: str) -> TenantData | None:
        """The tenant's data when the bearer token is good for it; counts the request either way."""
        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else ""
        with self._lock:
            if not TENANT_ID.match(tenant):
                return None
            data = self.tenant(tenant)
            data.requests += 1
            token = self._tokens.get(value)
            if token is None or not token.usable("access", tenant):
                return None
            if self.ctx.faults.revoke_token(self.name):
                token.revoked = True
                return None
            return data

    def revoke_all(self, tenant: str) -> int:
        with self._lock:
            count = 0
            for token in self._tokens.values():
                if token.tenant == tenant and not token.revoked:
                    token.revoked = True
                    count += 1
            return count

    # Product endpoints --------------------------------------------------------------------------------

    def m3_execute(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        data = self._authorize(request, tenant)
        if data is None:
            return _unauthorized()
        names: list[str] = []
        options: dict[str, str] = {}
        for segment in request.path_params["rest"].split("/"):  # matrix params: /PGM/TRX;maxrecs=10;cono=100
            name, *params = segment.split(";")
            if name:
                names.append(name)
            for param in params:
                key, _, value = param.partition("=")
                options[key.lower()] = value
        inputs: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            if key in m3.OPTIONS:  # lower-case options; upper-case names (CONO, DIVI) are inputs
                options[key] = value
            else:
                inputs[key.upper()] = value
        program, transaction = (names + ["", ""])[:2] if len(names) <= 2 else ("", "")
        with self._lock:
            status, body = m3.execute(data, program.upper(), transaction, options, inputs)
        return JSONResponse(body, status_code=status)

    def _ido_request(self, request: Request) -> TenantData | Response:
        data = self._authorize(request, request.path_params["tenant"])
        if data is None:
            return _unauthorized()
        if not request.headers.get("x-infor-mongooseconfig", "").strip():
            return JSONResponse(
                {"Message": "MongooseConfig header required", "MessageCode": 400}, status_code=400
            )
        return data

    def ido_load(self, request: Request) -> Response:
        data = self._ido_request(request)
        if isinstance(data, Response):
            return data
        params = {key.lower(): value for key, value in request.query_params.items()}
        try:
            with self._lock:
                body = ido.load(data, request.path_params["ido"], params)
        except ido.IdoError as exc:
            return JSONResponse(
                {"Items": None, "Message": str(exc), "MessageCode": exc.status}, status_code=exc.status
            )
        return JSONResponse(body)

    async def ido_update(self, request: Request) -> Response:
        return await run_in_threadpool(self._ido_update, request, await request.body())

    def _ido_update(self, request: Request, raw: bytes) -> Response:
        data = self._ido_request(request)
        if isinstance(data, Response):
            return data
        try:
            payload = json.loads(raw)
        except ValueError:
            return JSONResponse({"Success": False, "Message": "Body must be JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"Success": False, "Message": "Body must be a JSON object"}, status_code=400)
        with self._lock:
            try:
                return JSONResponse(ido.update(data, request.path_params["ido"], payload))
            except ido.IdoError as exc:
                return JSONResponse({"Success": False, "Message": str(exc)}, status_code=exc.status)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{tenant}/as/token.oauth2", self.token_endpoint, methods=["POST"]),
            Route("/{tenant}/as/revoke_token.oauth2", self.revoke_endpoint, methods=["GET", "POST"]),
            Route("/{tenant}/M3/m3api-rest/v2/execute/{rest:path}", self.m3_execute, methods=["GET"]),
            Route("/{tenant}/CSI/IDORequestService/ido/load/{ido}", self.ido_load, methods=["GET"]),
            Route("/{tenant}/CSI/IDORequestService/ido/update/{ido}", self.ido_update, methods=["POST"]),
        ]

    # Control routes (no auth, no faults) --------------------------------------------------------------

    async def _control(self, request: Request, work: Callable[[TenantData, dict[str, Any]], Any]) -> Response:
        tenant = request.path_params["tenant"]
        if not TENANT_ID.match(tenant):
            return JSONResponse({"error": "invalid tenant id"}, status_code=400)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)

        def locked() -> Response:
            with self._lock:
                try:
                    return JSONResponse(work(self.tenant(tenant), body))
                except (KeyError, ValueError, TypeError) as exc:
                    return JSONResponse({"error": str(exc).strip("'\"")}, status_code=400)

        return await run_in_threadpool(locked)

    async def control_auth(self, request: Request) -> Response:
        def work(data: TenantData, body: dict[str, Any]) -> dict[str, Any]:
            if "token_lifetime" in body:
                data.auth.token_lifetime = int(body["token_lifetime"])
            if "issue_refresh_token" in body:
                data.auth.issue_refresh_token = bool(body["issue_refresh_token"])
            return {
                "token_lifetime": data.auth.token_lifetime,
                "issue_refresh_token": data.auth.issue_refresh_token,
            }

        return await self._control(request, work)

    async def control_revoke(self, request: Request) -> Response:
        return await self._control(request, lambda data, body: {"revoked": self.revoke_all(data.tenant)})

    async def control_seed(self, request: Request) -> Response:
        def work(data: TenantData, body: dict[str, Any]) -> dict[str, Any]:
            unknown = set(body) - set(DEFAULT_COUNTS) - {"seed", "today"}
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
            counts = {name: int(body[name]) for name in DEFAULT_COUNTS if name in body}
            if any(count < 0 for count in counts.values()):
                raise ValueError("counts must not be negative")
            today = date.fromisoformat(body["today"]) if body.get("today") else data.today
            data.reseed(counts, int(body.get("seed", data.seed)), today)
            return {
                "tenant": data.tenant,
                "seed": data.seed,
                "today": data.today_iso,
                "counts": {name: len(getattr(data, name)) for name in DEFAULT_COUNTS},
            }

        return await self._control(request, work)

    async def control_config(self, request: Request) -> Response:
        """[I] ``{"today": "YYYY-MM-DD", "supplier_bank_type": "2", "exportmi": false}``: move the tenant
        clock, set BKTP, lock (or open) EXPORTMI for the tenant."""

        def work(data: TenantData, body: dict[str, Any]) -> dict[str, Any]:
            if body.get("today"):
                data.today = date.fromisoformat(body["today"])
            if body.get("supplier_bank_type"):
                data.supplier_bank_type = str(body["supplier_bank_type"])
                data.changed("suppliers")
            if "exportmi" in body:
                data.exportmi_allowed = bool(body["exportmi"])
            return {
                "today": data.today_iso,
                "supplier_bank_type": data.supplier_bank_type,
                "exportmi": data.exportmi_allowed,
            }

        return await self._control(request, work)

    async def control_patch(self, request: Request) -> Response:
        table, key = request.path_params["table"], request.path_params["key"]
        return await self._control(request, lambda data, body: patch_record(data, table, key, body))

    def control_ionapi(self, request: Request) -> Response:
        return JSONResponse(sandbox_ionapi(self.ctx.base_url, request.path_params["tenant"]))

    def control_routes(self) -> list[BaseRoute]:
        return [
            Route("/tenants/{tenant}/auth", self.control_auth, methods=["PUT"]),
            Route("/tenants/{tenant}/revoke_tokens", self.control_revoke, methods=["POST"]),
            Route("/tenants/{tenant}/seed", self.control_seed, methods=["PUT"]),
            Route("/tenants/{tenant}/config", self.control_config, methods=["PUT"]),
            Route("/tenants/{tenant}/records/{table}/{key:path}", self.control_patch, methods=["PATCH"]),
            Route("/tenants/{tenant}/ionapi", self.control_ionapi, methods=["GET"]),
        ]

    # Host protocol ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        # Serialise under the lock (the host encodes the answer later, while writes may continue).
        with self._lock:
            tenants = {
                name: {**data.state(), "tokens_issued": self._issued.get(name, 0), "requests": data.requests}
                for name, data in self._tenants.items()
            }
            return json.loads(json.dumps({"tenants": tenants}))

    def credentials(self) -> dict[str, Any]:
        return {
            "ionapi_template": sandbox_ionapi(self.ctx.base_url, "{tenant}"),
            "client_secret": CLIENT_SECRET,
            "service_account_secret": SERVICE_ACCOUNT_SECRET,
            "tenants": "any id of letters, digits, '_', '.', '-'; created and seeded on first use",
            "ionapi_function": "ml_connector_pipelines.sandbox.infor.simulator:sandbox_ionapi",
        }


PATCHABLE = {
    "suppliers": ("supplier_id",),
    "customers": ("customer_id",),
    "purchase_orders": ("po_number",),
    "gl_accounts": ("account_id",),
    "ap_invoices": ("division", "supplier_id", "invoice_number", "invoice_year"),
    "ar_invoices": ("division", "customer_id", "invoice_number", "invoice_year"),
}


def patch_record(data: TenantData, table: str, key: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change fields of one record (canonical names) and stamp it modified today, e.g. a new IBAN.

    Invoice keys are ``DIVI/SUPPLIER/NUMBER/YEAR``. A nested ``bank_account`` is merged; its ``kind``
    is re-derived from the fields unless given.
    """
    if table not in PATCHABLE:
        raise ValueError(f"unknown table {table!r}; known: {', '.join(PATCHABLE)}")
    records: dict[Any, dict[str, Any]] = getattr(data, table)
    record = records.get(tuple(key.split("/")) if len(PATCHABLE[table]) > 1 else key)
    if record is None:
        raise ValueError(f"no {table} record {key!r}")
    for name in changes:
        if name in PATCHABLE[table] or name not in record:
            raise ValueError(f"field {name!r} cannot be patched")
    for name, value in changes.items():
        if name == "bank_account" and isinstance(value, dict) and record.get("bank_account"):
            account = {**record["bank_account"], **value}
            if "kind" not in value:
                account["kind"] = (
                    "iban"
                    if account.get("iban")
                    else "email"
                    if account.get("email")
                    else "aba"
                    if account.get("aba_routing")
                    else "sort_code"
                )
            record["bank_account"] = account
        else:
            record[name] = value
    if "modified_date" not in changes:
        record["modified_date"] = data.today_iso
    data.changed(table)
    return record
