"""Procurify simulator, written from contracts/procurify.md and Procurify's OpenAPI document only.

Each Procurify customer has its own host (``https://{domain}.procurify.com``); here a domain is the
first path segment: ``{sandbox}/procurify/{domain}/api/...``. A domain is created and seeded on first
use (``seed.py``). What it enforces:

- ``POST /oauth/token``: JSON body with client id/secret, ``audience`` and ``grant_type``; opaque
  bearer tokens living 24 h (``token_lifetime`` per domain via the control route).
- Every API call needs ``Authorization: Bearer`` (401 otherwise) and ``X-Procurify-Client: api``
  (403 otherwise [I]); errors in Django REST Framework's shapes (``{"detail"}`` / ``{"field": [..]}``).
- Only the paths below, GET only (bills are read-only): anything else is 404 or 405. Only the query
  parameters the OpenAPI document lists for the operation; a listed one the simulator does not
  implement is refused (400) rather than silently ignored.
- ``{metadata: {pagination}, data}`` envelopes with absolute ``next`` / ``previous`` URLs, ``page``
  (1-based) and ``page_size`` (default 10 [I]); ``_0`` / ``_1`` range filters, both ends inclusive
  (django-filter); dates compare in UTC [I].
- Optional suspension, as Procurify warns: per domain ``max_page_size`` and
  ``max_requests_per_minute``; past either, every call answers 403 until ``suspended: false``.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..context import SandboxContext
from .render import Json, Renderer
from .seed import DEFAULT_COUNTS, Dataset, Record, generate
from .spec import query_parameters

CLIENT_SECRET = "procurify-sandbox-secret"
AUDIENCE = "https://api.procurify.com/"
TOKEN_LIFETIME = 86400
DEFAULT_PAGE_SIZE = 10  # [I] not documented
DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def client_id_for(domain: str) -> str:
    """[I] The sandbox's client id of a domain (real ones come from Settings -> Integrations -> API)."""
    return f"sandbox-{domain}"


def _detail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _field_errors(errors: dict[str, str]) -> JSONResponse:
    return JSONResponse({name: [message] for name, message in errors.items()}, status_code=400)


def _today() -> date:
    return datetime.now(UTC).date()


def _parse_timestamp(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace(" ", "T"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class DomainConfig:
    token_lifetime: int = TOKEN_LIFETIME
    max_page_size: int | None = None
    max_requests_per_minute: int | None = None
    suspended: str | None = None  # the reason, while suspended


@dataclass
class Domain:
    name: str
    seed: int
    today: date
    counts: dict[str, int] = field(default_factory=dict)
    config: DomainConfig = field(default_factory=DomainConfig)
    requests: int = 0
    recent: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.reseed(self.counts, self.seed, self.today)

    def reseed(self, counts: dict[str, int], seed: int, today: date) -> None:
        self.counts, self.seed, self.today = dict(counts), seed, today
        self.data: Dataset = generate(seed, self.name, today, counts)
        self.render = Renderer(self.data)

    def state(self) -> dict[str, Any]:
        tables = ("currencies", "vendors", "account_codes", "departments", "locations", "accounts")
        out: dict[str, Any] = {name: getattr(self.data, name) for name in tables}
        out["purchase_orders"] = self.data.purchase_orders
        out["bills"] = self.data.bills
        out.update(today=self.today.isoformat(), seed=self.seed, requests=self.requests)
        return json.loads(json.dumps(out, default=str))


# Filters --------------------------------------------------------------------------------------------

Getter = Callable[[Record], Any]


@dataclass(frozen=True)
class Filter:
    """One query filter: how to read the value and how to compare it with the record's."""

    kind: str  # "date" (on a timestamp's UTC date), "datetime", "int", "text", "bool", "icontains"
    field: Getter

    def parse(self, raw: str) -> Any:
        if self.kind == "date":
            return date.fromisoformat(raw)
        if self.kind == "datetime":
            return _parse_timestamp(raw)
        if self.kind == "int":
            return int(raw)
        if self.kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        return raw

    def value(self, record: Record) -> Any:
        value = self.field(record)
        if value is None:
            return None
        if self.kind == "date":
            return _parse_timestamp(value).astimezone(UTC).date()
        if self.kind == "datetime":
            return _parse_timestamp(value)
        return value


INVALID = {"date": "Enter a valid date.", "datetime": "Enter a valid date/time.", "int": "Enter a number."}


@dataclass(frozen=True)
class Listing:
    """A list endpoint: its OpenAPI path, the records it lists, and the filters it implements."""

    spec_path: str
    filters: dict[str, Filter]
    order_fields: dict[str, Getter]
    ranges: tuple[str, ...] = ()  # names of `<name>_0` / `<name>_1` range filters


def _get(name: str) -> Getter:
    return lambda record: record.get(name)


PO_FILTERS = Listing(
    "/api/v2/purchase_orders/{role}/{status}",
    {"pref_vendor": Filter("int", _get("vendor"))},
    {"id": _get("procurify_PO"), "last_modified": _get("last_modified"), "date": _get("date")},
    ranges=("date", "modified_date", "promise_date"),
)
RANGE_FIELDS: dict[str, dict[str, Filter]] = {
    PO_FILTERS.spec_path: {
        "date": Filter("date", _get("date")),
        "modified_date": Filter("date", _get("last_modified")),
        "promise_date": Filter("date", _get("promise_date")),
    },
    "/api/v3/ap/bills": {
        "last_modified_datetime": Filter("datetime", _get("last_modified_datetime")),
        "modified_date": Filter("date", _get("last_modified_datetime")),
        "invoice_date": Filter("date", _get("invoice_date")),
        "due_date": Filter("date", _get("due_date")),
        "submitted_date": Filter("date", _get("submitted_date")),
    },
    "/api/v3/order-items": {"last_modified": Filter("date", _get("last_modified"))},
}
BILL_FILTERS = Listing(
    "/api/v3/ap/bills",
    {
        "vendor": Filter("int", _get("vendor")),
        "currency": Filter("int", _get("currency")),
        "type": Filter("int", _get("type")),
    },
    {"id": _get("id"), "last_modified_datetime": _get("last_modified_datetime")},
    ranges=("last_modified_datetime", "modified_date", "invoice_date", "due_date", "submitted_date"),
)
ORDER_ITEM_FILTERS = Listing(
    "/api/v3/order-items",
    {
        "pref_vendor": Filter("int", _get("vendor")),
        "account_code": Filter("int", _get("account_code")),
        "purchaser": Filter("int", _get("purchaser")),
    },
    {"id": _get("id"), "last_modified": _get("last_modified")},
    ranges=("last_modified",),
)
VENDOR_FILTERS = Listing(
    "/api/v3/vendors",
    {
        "name": Filter("text", _get("name")),
        "external_id": Filter("text", _get("external_id")),
        "type": Filter("int", _get("type")),
        "search": Filter("icontains", _get("name")),
    },
    {"id": _get("id"), "name": _get("name")},
)
ACCOUNT_CODE_FILTERS = Listing(
    "/api/v3/account-codes",
    {
        "code": Filter("text", _get("code")),
        "active": Filter("bool", _get("active")),
        "search": Filter("icontains", lambda r: f"{r['code']} {r['description']}"),
    },
    {"id": _get("id"), "code": _get("code")},
)
DEPARTMENT_FILTERS = Listing(
    "/api/v3/departments",
    {"branch": Filter("int", _get("location")), "search": Filter("icontains", _get("name"))},
    {"id": _get("id"), "name": _get("name")},
)
LOCATION_FILTERS = Listing(
    "/api/v2/locations",
    {
        "active": Filter("bool", lambda r: True),
        "headquarter": Filter("bool", _get("headquarter")),
        "search": Filter("icontains", _get("name")),
    },
    {"id": _get("id"), "name": _get("name")},
)
PAGING = {"page", "page_size", "order_by", "format"}

# PO role/status paths [C contract 3.1] over state codes 0 purchased, 1 cancelled, 3 closed, 4 paid,
# 5 reopened. [I] "purchased" lists every PO; "receivable" the open ones not fully received.
OPEN_STATES = (0, 5)
PO_STATUS: dict[str, Callable[[Record], bool]] = {
    "all": lambda po: True,
    "open": lambda po: po["state"] in OPEN_STATES and po["fulfilment_status"] != "partial",
    "partial": lambda po: po["state"] in OPEN_STATES and po["fulfilment_status"] == "partial",
    "closed": lambda po: po["state"] == 3,
    "cancelled": lambda po: po["state"] == 1,
    "paid": lambda po: po["state"] == 4,
}
PO_ROLE: dict[str, Callable[[Record], bool]] = {
    "purchased": lambda po: True,
    "receivable": lambda po: po["state"] in OPEN_STATES and po["fulfilment_status"] != "full",
}

# The API paths (trailing slash optional, as with DRF's routers) and their OpenAPI operations.
KNOWN_PATHS = [
    re.compile(r"^/api/v2/purchase_orders/[^/]+/[^/]+/?$"),
    re.compile(r"^/api/v2/purchase_orders/[^/]+/?$"),
    re.compile(r"^/api/v3/ap/bills/?$"),
    re.compile(r"^/api/v2/ap/bills/[^/]+/?$"),
    re.compile(r"^/api/v3/order-items/?$"),
    re.compile(r"^/api/v3/vendors/?$"),
    re.compile(r"^/api/v3/account-codes/?$"),
    re.compile(r"^/api/v3/departments/?$"),
    re.compile(r"^/api/v2/locations/?$"),
    re.compile(r"^/api/v3/users/me/?$"),
]


class ProcurifySimulator:
    name = "procurify"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._lock = threading.RLock()
        self._domains: dict[str, Domain] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (domain, expires at)
        self._issued: dict[str, int] = {}

    def domain(self, name: str) -> Domain:
        with self._lock:
            found = self._domains.get(name)
            if found is None:
                found = self._domains[name] = Domain(name, self.ctx.seed, _today())
            return found

    # OAuth --------------------------------------------------------------------------------------------

    async def token_endpoint(self, request: Request) -> Response:
        domain = request.path_params["domain"]
        if not DOMAIN.match(domain):
            return _detail(404, "Not found.")
        if "application/json" not in request.headers.get("content-type", ""):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "The body must be JSON."}, status_code=400
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "The body must be a JSON object."},
                status_code=400,
            )
        if body.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "Use client_credentials."},
                status_code=400,
            )
        if body.get("audience") != AUDIENCE:
            return JSONResponse(
                {"error": "access_denied", "error_description": "Service not found: audience"},
                status_code=403,
            )
        if body.get("client_id") != client_id_for(domain) or body.get("client_secret") != CLIENT_SECRET:
            return JSONResponse(
                {"error": "access_denied", "error_description": "Unauthorized"}, status_code=401
            )
        with self._lock:
            lifetime = self.domain(domain).config.token_lifetime
            token = secrets.token_urlsafe(32)
            self._tokens[token] = (domain, time.time() + lifetime)
            self._issued[domain] = self._issued.get(domain, 0) + 1
        return JSONResponse(
            {
                "access_token": token,
                "scope": f"urn:procurify-api:domain:{domain} urn:procurify-api:email:api@{domain}.example",
                "expires_in": lifetime,
                "token_type": "Bearer",
            }
        )

    # API ----------------------------------------------------------------------------------------------

    def api(self, request: Request) -> Response:
        domain_name = request.path_params["domain"]
        path = "/" + request.path_params["rest"]
        if not DOMAIN.match(domain_name) or not any(p.match(path) for p in KNOWN_PATHS):
            return _detail(404, "Not found.")
        if request.method != "GET":
            return _detail(405, f'Method "{request.method}" not allowed.', {"Allow": "GET, HEAD, OPTIONS"})
        with self._lock:
            refused = self._admit(request, domain_name)
            if refused is not None:
                return refused
            domain = self.domain(domain_name)
            try:
                return self._route(request, domain, path.rstrip("/").split("/")[1:])
            except _Refused as exc:
                return exc.response

    def _admit(self, request: Request, domain_name: str) -> Response | None:
        """Auth, the client header and the suspension rules, in that order."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        grant = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant[0] != domain_name or grant[1] <= time.time():
            return _detail(
                401,
                "Authentication credentials were not provided or are invalid.",
                {"WWW-Authenticate": 'Bearer realm="api"'},
            )
        if request.headers.get("x-procurify-client") != "api":
            return _detail(403, "The X-Procurify-Client: api header is required.")
        domain = self.domain(domain_name)
        domain.requests += 1
        config = domain.config
        if config.suspended:
            return _detail(403, f"API access suspended: {config.suspended}. Contact support@procurify.com.")
        now = time.monotonic()
        domain.recent.append(now)
        while domain.recent and domain.recent[0] < now - 60:
            domain.recent.popleft()
        if config.max_requests_per_minute and len(domain.recent) > config.max_requests_per_minute:
            config.suspended = "too many requests"
        size = request.query_params.get("page_size", "")
        if config.max_page_size and size.isdigit() and int(size) > config.max_page_size:
            config.suspended = "request too large"
        if config.suspended:
            return _detail(403, f"API access suspended: {config.suspended}. Contact support@procurify.com.")
        return None

    def _route(self, request: Request, domain: Domain, parts: list[str]) -> Response:
        data, render = domain.data, domain.render
        # parts: ["api", "v2", "purchase_orders", ...]
        resource = "/".join(parts[2:])
        if parts[2] == "purchase_orders" and len(parts) == 5:
            role, status = parts[3], parts[4]
            self._check(request, PO_FILTERS)
            if role not in PO_ROLE or status not in PO_STATUS:
                return _detail(404, "Not found.")
            orders = [po for po in data.purchase_orders if PO_ROLE[role](po) and PO_STATUS[status](po)]
            page, metadata = self._page(request, PO_FILTERS, orders)
            metadata["counts"] = {r: self._counts(data.purchase_orders, r, len(page)) for r in PO_ROLE}
            return JSONResponse({"metadata": metadata, "data": [render.purchase_order(po) for po in page]})
        if parts[2] == "purchase_orders":
            self._check_single(request, "/api/v2/purchase_orders/{id}")
            key = parts[3]
            po = next((p for p in data.purchase_orders if key in (str(p["procurify_PO"]), p["uuid"])), None)
            if po is None:
                return _detail(404, "Not found.")
            return JSONResponse(
                {
                    "metadata": {"can_edit": True, "can_delete": False},
                    "data": render.purchase_order_detail(po),
                }
            )
        if resource == "ap/bills":
            self._check(request, BILL_FILTERS)
            page, metadata = self._page(request, BILL_FILTERS, data.bills)
            metadata["summary"] = {
                "total_cost": float(sum((render.bill_total(b) for b in page), Decimal(0))),
                "has_multiple_currency": len({b["currency"] for b in page}) > 1,
            }
            metadata["permissions"] = {"can_edit": False, "can_delete": False, "can_approve": False}
            return JSONResponse({"metadata": metadata, "data": [render.simple_bill(b) for b in page]})
        if parts[2] == "ap" and len(parts) == 5:
            self._check_single(request, "/api/v2/ap/bills/{id}")
            key = parts[4]
            # The document's pattern for the id is ^[0-9a-f]+$: a number, or a UUID without dashes.
            if not re.match(r"^[0-9a-f]+$", key):
                return _detail(404, "Not found.")
            bill = next((b for b in data.bills if key in (str(b["id"]), b["uuid"].replace("-", ""))), None)
            if bill is None:
                return _detail(404, "Not found.")
            metadata = {
                "summary": {"total_cost": float(render.bill_total(bill)), "has_multiple_currency": False},
                "permissions": {"can_edit": False, "can_delete": False, "can_approve": False},
            }
            return JSONResponse({"metadata": metadata, "data": render.bill(bill)})
        if resource == "order-items":
            self._check(request, ORDER_ITEM_FILTERS)
            rows = [
                {
                    **line,
                    "po": po,
                    "vendor": po["vendor"],
                    "purchaser": po["purchaser"],
                    "last_modified": po["last_modified"],
                    "account_code": next(
                        a["account_code"] for a in data.accounts if a["id"] == line["account"]
                    ),
                }
                for po in data.purchase_orders
                for line in po["lines"]
            ]
            page, metadata = self._page(request, ORDER_ITEM_FILTERS, rows)
            return JSONResponse({"metadata": metadata, "data": [render.order_item(r["po"], r) for r in page]})
        if resource == "vendors":
            self._check(request, VENDOR_FILTERS)
            page, metadata = self._page(request, VENDOR_FILTERS, data.vendors)
            return JSONResponse({"metadata": metadata, "data": [render.optimized_vendor(v) for v in page]})
        if resource == "account-codes":
            self._check(request, ACCOUNT_CODE_FILTERS)
            page, metadata = self._page(request, ACCOUNT_CODE_FILTERS, data.account_codes)
            return JSONResponse({"metadata": metadata, "data": [render.account_code(c) for c in page]})
        if resource == "departments":
            self._check(request, DEPARTMENT_FILTERS)
            page, metadata = self._page(request, DEPARTMENT_FILTERS, data.departments)
            return JSONResponse({"metadata": metadata, "data": [render.department(d) for d in page]})
        if resource == "locations":
            self._check(request, LOCATION_FILTERS)
            page, metadata = self._page(request, LOCATION_FILTERS, data.locations)
            # The document wraps each page's locations in one LocationViewSerializerList object.
            return JSONResponse(
                {"metadata": metadata, "data": [{"data": [render.location(x) for x in page]}]}
            )
        if resource == "users/me":
            self._check_single(request, "/api/v3/users/me")
            user = data.users[0]
            return JSONResponse(
                {
                    "data": {
                        "id": user["id"],
                        "user": user["id"],
                        "email": user["email"],
                        "firstName": user["firstName"],
                        "lastName": user["lastName"],
                        "systemaccess_cache": {},
                        "is_active": True,
                    }
                }
            )
        return _detail(404, "Not found.")

    # Query parameters, filters and pages -----------------------------------------------------------

    @staticmethod
    def _check_single(request: Request, spec_path: str) -> None:
        allowed = query_parameters(spec_path)
        unknown = [name for name in request.query_params if name not in allowed]
        if unknown:
            raise _Refused(_field_errors({unknown[0]: "Unknown query parameter."}))
        if request.query_params.get("format", "json") != "json":
            raise _Refused(_field_errors({"format": "The simulator serves JSON only."}))

    @staticmethod
    def _check(request: Request, listing: Listing) -> None:
        allowed = query_parameters(listing.spec_path)
        implemented = set(listing.filters) | PAGING | {f"{r}_{n}" for r in listing.ranges for n in (0, 1)}
        for name in request.query_params:
            if name not in allowed:
                raise _Refused(_field_errors({name: "Unknown query parameter."}))
            if name not in implemented:
                raise _Refused(_field_errors({name: "This filter is not implemented by the simulator."}))
        if len(request.query_params.getlist("page")) > 1:
            raise _Refused(_field_errors({"page": "Give one page."}))
        if request.query_params.get("format", "json") != "json":
            raise _Refused(_field_errors({"format": "The simulator serves JSON only."}))

    def _page(self, request: Request, listing: Listing, records: list[Record]) -> tuple[list[Record], Json]:
        params = request.query_params
        rows = list(records)
        errors: dict[str, str] = {}
        for name, flt in listing.filters.items():
            if name not in params:
                continue
            try:
                wanted = flt.parse(params[name])
            except ValueError:
                errors[name] = INVALID.get(flt.kind, "Enter a valid value.")
                continue
            if flt.kind == "icontains":
                rows = [r for r in rows if wanted.lower() in str(flt.value(r) or "").lower()]
            else:
                rows = [r for r in rows if flt.value(r) == wanted]
        for name in listing.ranges:
            flt = RANGE_FIELDS[listing.spec_path][name]
            for end in (0, 1):
                raw = params.get(f"{name}_{end}")
                if raw is None or raw == "":
                    continue
                try:
                    bound = flt.parse(raw)
                except ValueError:
                    errors[f"{name}_{end}"] = INVALID[flt.kind]
                    continue
                keep = (lambda v, b=bound: v >= b) if end == 0 else (lambda v, b=bound: v <= b)
                rows = [r for r in rows if flt.value(r) is not None and keep(flt.value(r))]
        order = params.get("order_by", "id")
        key = listing.order_fields.get(order.lstrip("-"))
        if key is None:
            errors["order_by"] = f"Select a valid choice. {order} is not one of the available choices."
        try:
            page_number = int(params.get("page", "1"))
            size = int(params.get("page_size", str(DEFAULT_PAGE_SIZE)))
            if page_number < 1 or size < 1:
                raise ValueError
        except ValueError:
            errors.setdefault("page", "Invalid page.")
            page_number, size = 1, DEFAULT_PAGE_SIZE
        if errors:
            raise _Refused(_field_errors(errors))
        assert key is not None
        rows.sort(key=lambda r: (key(r) is None, key(r)), reverse=order.startswith("-"))
        pages = max(1, math.ceil(len(rows) / size))
        if page_number > pages:
            raise _Refused(_detail(404, "Invalid page."))
        page = rows[(page_number - 1) * size : page_number * size]

        def link(number: int) -> str | None:
            if number < 1 or number > pages:
                return None
            return str(request.url.include_query_params(page=number))

        pagination = {
            "count": len(rows),
            "next": link(page_number + 1),
            "previous": link(page_number - 1),
            "page_size": size,
            "num_pages": pages,
            "current_page": page_number,
        }
        return page, {"pagination": pagination}

    @staticmethod
    def _counts(orders: list[Record], role: str, page: int) -> dict[str, int]:
        mine = [po for po in orders if PO_ROLE[role](po)]
        counts = {
            status: sum(1 for po in mine if PO_STATUS[status](po))
            for status in ("all", "open", "partial", "closed", "cancelled")
        }
        return {**counts, "page": page}

    # Control routes (no auth, no faults) -----------------------------------------------------------

    async def _control(self, request: Request, work: Callable[[Domain, dict[str, Any]], Any]) -> Response:
        name = request.path_params["domain"]
        if not DOMAIN.match(name):
            return JSONResponse({"error": "invalid domain"}, status_code=400)
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
                    return JSONResponse(json.loads(json.dumps(work(self.domain(name), body), default=str)))
                except (KeyError, ValueError, TypeError, StopIteration) as exc:
                    return JSONResponse(
                        {"error": str(exc).strip("'\"") or type(exc).__name__}, status_code=400
                    )

        return await run_in_threadpool(locked)

    async def control_config(self, request: Request) -> Response:
        """``{"token_lifetime", "max_page_size", "max_requests_per_minute", "suspended": false}``."""

        def work(domain: Domain, body: dict[str, Any]) -> dict[str, Any]:
            config = domain.config
            unknown = set(body) - {"token_lifetime", "max_page_size", "max_requests_per_minute", "suspended"}
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
            if "token_lifetime" in body:
                config.token_lifetime = int(body["token_lifetime"])
            for key in ("max_page_size", "max_requests_per_minute"):
                if key in body:
                    setattr(config, key, int(body[key]) if body[key] is not None else None)
            if body.get("suspended") is False:
                config.suspended = None
                domain.recent.clear()
            return config.__dict__

        return await self._control(request, work)

    async def control_revoke(self, request: Request) -> Response:
        def work(domain: Domain, body: dict[str, Any]) -> dict[str, Any]:
            revoked = [t for t, (d, _) in self._tokens.items() if d == domain.name]
            for token in revoked:
                del self._tokens[token]
            return {"revoked": len(revoked)}

        return await self._control(request, work)

    async def control_seed(self, request: Request) -> Response:
        def work(domain: Domain, body: dict[str, Any]) -> dict[str, Any]:
            unknown = set(body) - set(DEFAULT_COUNTS) - {"seed", "today"}
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
            counts = {n: int(body[n]) for n in DEFAULT_COUNTS if n in body}
            today = date.fromisoformat(body["today"]) if body.get("today") else domain.today
            domain.reseed(counts, int(body.get("seed", domain.seed)), today)
            return {
                "domain": domain.name,
                "today": domain.today.isoformat(),
                "counts": {n: len(getattr(domain.data, n)) for n in DEFAULT_COUNTS},
            }

        return await self._control(request, work)

    async def control_patch(self, request: Request) -> Response:
        """Change fields of one record by id (simulator names) and stamp it modified now."""
        table, key = request.path_params["table"], request.path_params["id"]

        def work(domain: Domain, body: dict[str, Any]) -> Record:
            if table not in PATCHABLE:
                raise ValueError(f"unknown table {table!r}; known: {', '.join(PATCHABLE)}")
            id_field, stamp = PATCHABLE[table]
            record = next(r for r in getattr(domain.data, table) if str(r[id_field]) == key)
            for name in body:
                if name == id_field or name not in record or name == "lines" or name == "items":
                    raise ValueError(f"field {name!r} cannot be patched")
            record.update(body)
            if stamp and stamp not in body:
                record[stamp] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return record

        return await self._control(request, work)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{domain}/oauth/token", self.token_endpoint, methods=["POST"]),
            Route(
                "/{domain}/{rest:path}", self._api_async, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
            ),
        ]

    async def _api_async(self, request: Request) -> Response:
        return await run_in_threadpool(self.api, request)

    def control_routes(self) -> list[BaseRoute]:
        return [
            Route("/tenants/{domain}/config", self.control_config, methods=["PUT"]),
            Route("/tenants/{domain}/revoke_tokens", self.control_revoke, methods=["POST"]),
            Route("/tenants/{domain}/seed", self.control_seed, methods=["PUT"]),
            Route("/tenants/{domain}/records/{table}/{id}", self.control_patch, methods=["PATCH"]),
        ]

    # Host protocol ------------------------------------------------------------------------------------

    def fault_body(self, status: int, message: str) -> bytes:
        return json.dumps({"detail": message}).encode()

    def state(self) -> dict[str, Any]:
        with self._lock:
            domains = {
                name: {**d.state(), "tokens_issued": self._issued.get(name, 0), "config": d.config.__dict__}
                for name, d in self._domains.items()
            }
        return {"tenants": domains}

    def credentials(self) -> dict[str, Any]:
        return {
            "base_url_template": f"{self.ctx.base_url}/procurify/{{domain}}",
            "client_id_template": client_id_for("{domain}"),
            "client_secret": CLIENT_SECRET,
            "audience": AUDIENCE,
            "domains": "any id of letters, digits, '_', '-'; created and seeded on first use",
        }


PATCHABLE: dict[str, tuple[str, str | None]] = {
    "purchase_orders": ("procurify_PO", "last_modified"),
    "bills": ("id", "last_modified_datetime"),
    "vendors": ("id", "dateModified"),
    "account_codes": ("id", None),
    "departments": ("id", None),
}


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response
