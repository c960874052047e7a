"""A stateful Cin7 Core External API v2 simulator, written from contracts/cin7.md and Cin7's own
API description (``cin7-openapi.yaml``, see ``spec.py``) only.

Mounted at ``{base_url}/cin7``: a client's base URL is ``http://HOST:PORT/cin7/ExternalApi/v2``.
Paths below ``/ExternalApi/v2/`` are matched case-insensitively (Cin7's docs spell them both ways),
query parameter names too.

Authentication
- Every call needs ``api-auth-accountid`` and ``api-auth-applicationkey``; otherwise 403. The sandbox
  accepts a pair when the key is the one derived from the account id (``sandbox_credentials(name)``
  gives a tenant its pair; ``POST /_sandbox/cin7/accounts {"name"}`` does the same over HTTP). Each
  account is its own company with a seeded chart of accounts, tax rules, payment terms, one
  location; no products until a test or the demo adds some.

Errors: a JSON list ``[{"ErrorCode": <status>, "Exception": "..."}]`` (contract section 2):
400 validation (every problem found), 403 auth, 404 unknown endpoint or id, 405 method, 500 a
body that is not JSON, 503 the rate limit.

Rate limit: 60 calls per rolling minute per application key (contract: per API Application),
answered ``503 "You reached 60 calls per minute API limit"`` with no Retry-After. ``PUT
/_sandbox/cin7/rate_limit {"per_minute": N, "status": 503|429, "window_seconds": 60}`` changes it
(tests and benchmarks run at scaled limits or a shorter window). Only answered calls count.

Strictness (the document's schemas, made strict in ``spec.py``): unknown body fields, unknown query
parameters and wrong JSON types are rejected with 400; each response carries only the fields its
operation's response schema lists. On top of the schemas, the field tables' rules: required fields,
lengths, unique supplier ``Name`` (case-insensitive [I]) and account ``Code``, references that must
exist (tax rule, payment term, account, supplier, product, location).

Purchases (simple purchase) follow the task state machine: header (``Approach`` ``INVOICE`` or
``STOCK``, default INVOICE [I]) -> ``purchase/order`` (only while the order is NOT AVAILABLE or
DRAFT; ``DRAFT`` or ``AUTHORISED``) -> ``purchase/invoice`` (order AUTHORISED; with STOCK only after
stock is received) and ``purchase/stock`` (order AUTHORISED; with INVOICE only after the invoice).
A POST to a stage replaces its lines. A line's ``Total`` must equal Quantity x Price less Discount
(to the cent [I]).

Decided here ([I]): ``PUT supplier`` and ``PUT ref/account`` change only the fields sent (``ID``
resp. ``Code`` required); ``Limit`` above 1000 or below 1 is a 400; purchase numbers are
``PO-00001`` upward per account; invoice numbers, when not given, ``INV-<order number>``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..context import SandboxContext
from . import spec

PREFIX = "externalapi/v2/"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
DEFAULT_PER_MINUTE = 60
_NAMESPACE = uuid.UUID("6f1c3c57-1d53-4c36-9a54-0c7d3c1b7e21")

TAX_RULES = {
    "Tax on Purchases": Decimal("10"),
    "Tax Exempt": Decimal("0"),
    "Sales Tax on Imports": Decimal("0"),
}
PAYMENT_TERMS = ("30 days", "COD", "14 days", "60 days")
LOCATIONS = ("Main Warehouse",)
# Types from the "Chart of Accounts" field table plus those its examples use (CURRENT, EXPENSE).
ACCOUNT_TYPES = frozenset(
    {
        "BANK",
        "CURRLIAB",
        "LIABILITY",
        "TERMLIA",
        "PAYGLIABILITY",
        "SUPERANNUATIONLIABILITY",
        "WAGESPAYABLELIABILITY",
        "CURRENT",
        "EXPENSE",
    }
)
ACCOUNT_CLASSES = frozenset({"ASSET", "LIABILITY", "EXPENSE", "EQUITY", "REVENUE"})
ACCOUNT_STATUSES = frozenset({"ACTIVE", "ARCHIVED"})
SEED_CHART = (
    ("090", "Business Bank Account", "BANK", "ASSET", None),
    ("630", "Inventory", "CURRENT", "ASSET", None),
    ("715", "Inventory Purchases", "CURRENT", "ASSET", None),
    ("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "CREDITORS"),
    ("820", "Sales Tax", "CURRLIAB", "LIABILITY", "GST"),
    ("429", "General Expenses", "EXPENSE", "EXPENSE", None),
)
STAGE_STATUSES = ("DRAFT", "AUTHORISED")
SUPPLIER_STATUSES = ("Active", "Deprecated")
# Every field of the supplier table is in every answer; unset ones are null (Discount 0).
SUPPLIER_DEFAULTS: dict[str, Any] = {
    "Discount": 0,
    "Comments": None,
    "TaxNumber": None,
    "AttributeSet": None,
    **{f"AdditionalAttribute{i}": None for i in range(1, 11)},
}


def sandbox_credentials(name: str) -> dict[str, str]:
    """The account id and application key the sandbox accepts for a tenant called ``name``."""
    account_id = str(uuid.uuid5(_NAMESPACE, f"account:{name}"))
    return {"account_id": account_id, "application_key": _application_key(account_id)}


def _application_key(account_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"key:{account_id.lower()}"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT00:00:00")


def _is_guid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class ApiError(Exception):
    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(f"{status}: {'; '.join(messages)}")
        self.status = status
        self.messages = messages or ("error",)


def error_body(status: int, *messages: str) -> list[dict[str, Any]]:
    return [{"ErrorCode": status, "Exception": message} for message in messages]


@dataclass
class Company:
    """One Cin7 account (one customer's Cin7 company)."""

    account_id: str
    suppliers: dict[str, dict[str, Any]] = field(default_factory=dict)
    chart: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    purchases: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_order_number: int = 1


@dataclass
class Call:
    company: Company
    query: dict[str, str]
    body: Any


class Cin7Simulator:
    name = "cin7"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._lock = threading.RLock()
        self._companies: dict[str, Company] = {}
        self.per_minute = DEFAULT_PER_MINUTE
        self.throttle_status = 503
        self.window_seconds = 60.0
        self._calls: dict[str, deque[float]] = {}
        self.throttled = 0
        self._handlers: dict[tuple[str, str], Callable[[Call], Any]] = {
            ("GET", "supplier"): self._list_suppliers,
            ("POST", "supplier"): self._create_supplier,
            ("PUT", "supplier"): self._update_supplier,
            ("GET", "product"): self._list_products,
            ("POST", "purchase"): self._create_purchase,
            ("GET", "purchase"): self._get_purchase,
            ("POST", "purchase/order"): self._post_order,
            ("POST", "purchase/invoice"): self._post_invoice,
            ("POST", "purchase/stock"): self._post_stock,
            ("GET", "purchaselist"): self._list_purchases,
            ("GET", "ref/account"): self._list_accounts,
            ("POST", "ref/account"): self._create_account,
            ("PUT", "ref/account"): self._update_account,
            ("DELETE", "ref/account"): self._delete_account,
        }

    # ----------------------------------------------------------------- Simulator protocol

    def routes(self) -> list[BaseRoute]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            return await run_in_threadpool(self._handle, request, body)

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return [Route("/{path:path}", endpoint, methods=methods)]

    def control_routes(self) -> list[BaseRoute]:
        async def accounts(request: Request) -> Response:
            body = await request.json()
            credentials = sandbox_credentials(str(body["name"]))
            self._company(credentials["account_id"])
            return JSONResponse(credentials)

        async def products(request: Request) -> Response:
            body = await request.json()
            with self._lock:
                company = self._company(request.path_params["account_id"])
                added = [self._add_product(company, item) for item in body.get("products", [])]
            return JSONResponse({"products": added})

        async def rate_limit(request: Request) -> Response:
            body = await request.json()
            with self._lock:
                if "per_minute" in body:
                    self.per_minute = int(body["per_minute"])
                if "window_seconds" in body:
                    self.window_seconds = float(body["window_seconds"])
                if "status" in body:
                    if int(body["status"]) not in (429, 503):
                        return JSONResponse({"error": "status must be 429 or 503"}, status_code=400)
                    self.throttle_status = int(body["status"])
                self._calls.clear()
            return JSONResponse(self._rate_limit_json())

        return [
            Route("/accounts", accounts, methods=["POST"]),
            Route("/accounts/{account_id}/products", products, methods=["POST"]),
            Route("/rate_limit", rate_limit, methods=["PUT"]),
        ]

    def fault_body(self, status: int, message: str) -> bytes:
        return json.dumps(error_body(status, message)).encode()

    def credentials(self) -> dict[str, Any]:
        return {
            "base_path": "/cin7/ExternalApi/v2",
            "how": "POST /_sandbox/cin7/accounts {'name': ...} returns account_id and application_key",
            "example": sandbox_credentials("demo"),
        }

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate_limit": self._rate_limit_json(),
                "throttled": self.throttled,
                "accounts": {
                    company.account_id: {
                        "suppliers": [self._supplier_json(s) for s in company.suppliers.values()],
                        "chart": list(company.chart.values()),
                        "products": list(company.products.values()),
                        "purchases": [json.loads(json.dumps(p)) for p in company.purchases.values()],
                    }
                    for company in self._companies.values()
                },
            }

    def _rate_limit_json(self) -> dict[str, Any]:
        return {
            "per_minute": self.per_minute,
            "status": self.throttle_status,
            "window_seconds": self.window_seconds,
        }

    # ----------------------------------------------------------------- plumbing

    def _company(self, account_id: str) -> Company:
        key = account_id.lower()
        company = self._companies.get(key)
        if company is None:
            company = self._companies[key] = Company(key)
            for code, name, type_, class_, system in SEED_CHART:
                company.chart[code] = _account(code, name, type_, class_, "ACTIVE", "", system)
        return company

    def _handle(self, request: Request, raw: bytes) -> Response:
        try:
            return self._dispatch(request, raw)
        except ApiError as exc:
            return JSONResponse(error_body(exc.status, *exc.messages), status_code=exc.status)

    def _dispatch(self, request: Request, raw: bytes) -> Response:
        path = request.path_params["path"].strip("/")
        if not path.lower().startswith(PREFIX):
            raise ApiError(404, f"endpoint /{path} does not exist")
        endpoint = path[len(PREFIX) :].lower()
        account_id = request.headers.get("api-auth-accountid", "")
        key = request.headers.get("api-auth-applicationkey", "")
        if not _is_guid(account_id) or not _is_guid(key) or key.lower() != _application_key(account_id):
            raise ApiError(403, "Incorrect credentials: check api-auth-accountid and api-auth-applicationkey")
        handler = self._handlers.get((request.method, endpoint))
        if handler is None:
            if spec.known_path(endpoint) and spec.operation(request.method, endpoint) is None:
                raise ApiError(405, f"method {request.method} is not allowed on /{endpoint}")
            raise ApiError(404, f"endpoint /{endpoint} does not exist in the sandbox")
        with self._lock:
            self._take_call(key.lower())
            company = self._company(account_id)
            call = Call(company, self._query(request, endpoint), self._body(request, endpoint, raw))
            return JSONResponse(handler(call))

    def _take_call(self, key: str) -> None:
        window = self._calls.setdefault(key, deque())
        now = time.monotonic()
        while window and window[0] <= now - self.window_seconds:
            window.popleft()
        if len(window) >= self.per_minute:
            self.throttled += 1
            raise ApiError(self.throttle_status, f"You reached {self.per_minute} calls per minute API limit")
        window.append(now)

    def _query(self, request: Request, endpoint: str) -> dict[str, str]:
        known = {name.lower(): name for name in spec.query_parameters(request.method, endpoint)}
        query: dict[str, str] = {}
        unknown = []
        for name, value in request.query_params.multi_items():
            if name.lower() not in known:
                unknown.append(f"unknown query parameter {name}")
            else:
                query[known[name.lower()]] = value
        if unknown:
            raise ApiError(400, *unknown)
        return query

    def _body(self, request: Request, endpoint: str, raw: bytes) -> Any:
        schema = spec.request_schema(request.method, endpoint)
        if schema is None:
            if raw.strip():
                raise ApiError(400, f"{request.method} /{endpoint} takes no body")
            return None
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(500, f"the request body could not be parsed: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        errors = spec.shape_errors(body, schema)
        if errors:
            raise ApiError(400, *errors)
        return body

    @staticmethod
    def _response(method: str, endpoint: str, value: Any) -> Any:
        """Only the fields the operation's 200 response schema lists (contract: no invented fields)."""
        op = spec.operation(method, endpoint) or {}
        content = op.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {})
        return _project(value, content["schema"]) if "schema" in content else value

    # ----------------------------------------------------------------- paging

    @staticmethod
    def _page(call: Call, items: list[dict[str, Any]], list_name: str) -> dict[str, Any]:
        page = _int_param(call.query, "Page", 1)
        limit = _int_param(call.query, "Limit", DEFAULT_LIMIT)
        if page < 1:
            raise ApiError(400, "Page must be 1 or more")
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(400, f"Limit must be between 1 and {MAX_LIMIT}")
        start = (page - 1) * limit
        return {"Total": len(items), "Page": page, list_name: items[start : start + limit]}

    # ----------------------------------------------------------------- suppliers

    def _list_suppliers(self, call: Call) -> Any:
        q = call.query
        items = list(call.company.suppliers.values())
        if "ID" in q:
            items = [s for s in items if s["ID"] == q["ID"].lower()]
        if "Name" in q:
            items = [s for s in items if q["Name"].lower() in s["Name"].lower()]
        if "ModifiedSince" in q:
            items = [s for s in items if s["LastModifiedOn"] >= q["ModifiedSince"]]
        if q.get("IncludeDeprecated", "false").lower() != "true":
            items = [s for s in items if s["Status"] == "Active"]
        page = self._page(call, [self._supplier_json(s) for s in items], "SupplierList")
        return self._response("GET", "supplier", page)

    def _create_supplier(self, call: Call) -> Any:
        body = call.body
        errors = _missing(body, ("Name", "Currency", "PaymentTerm", "AccountPayable", "TaxRule", "Status"))
        errors += self._supplier_errors(call.company, body, None)
        if errors:
            raise ApiError(400, *errors)
        supplier_id = str(uuid.uuid4())
        supplier = {**SUPPLIER_DEFAULTS, **body, "ID": supplier_id, "LastModifiedOn": _now()}
        supplier["Addresses"] = [_child(a, supplier_id) for a in body.get("Addresses") or []]
        supplier["Contacts"] = [_child(c, supplier_id) for c in body.get("Contacts") or []]
        call.company.suppliers[supplier_id] = supplier
        return self._response("POST", "supplier", self._envelope(supplier))

    def _update_supplier(self, call: Call) -> Any:
        body = call.body
        supplier = call.company.suppliers.get(str(body.get("ID", "")).lower())
        if supplier is None:
            raise ApiError(400 if "ID" not in body else 404, f"supplier {body.get('ID')!r} not found")
        errors = self._supplier_errors(call.company, body, supplier["ID"])
        if errors:
            raise ApiError(400, *errors)
        changes = {k: v for k, v in body.items() if k not in ("ID", "Addresses", "Contacts")}
        supplier.update(changes, LastModifiedOn=_now())
        if "Addresses" in body:
            supplier["Addresses"] = [_child(a, supplier["ID"]) for a in body["Addresses"] or []]
        if "Contacts" in body:
            supplier["Contacts"] = [_child(c, supplier["ID"]) for c in body["Contacts"] or []]
        return self._response("PUT", "supplier", self._envelope(supplier))

    def _supplier_errors(self, company: Company, body: dict[str, Any], own_id: str | None) -> list[str]:
        errors = _lengths(body, {"Name": 256, "Comments": 256})
        name = body.get("Name")
        if isinstance(name, str):
            if not name.strip():
                errors.append("Name must not be empty")
            clash = [s for s in company.suppliers.values() if s["Name"].lower() == name.lower()]
            if any(s["ID"] != own_id for s in clash):
                errors.append(f"Supplier with Name '{name}' already exists")
        if "Currency" in body and not (isinstance(body["Currency"], str) and len(body["Currency"]) == 3):
            errors.append("Currency must be a 3-letter currency code")
        if "PaymentTerm" in body and body["PaymentTerm"] not in PAYMENT_TERMS:
            errors.append(f"PaymentTerm '{body['PaymentTerm']}' not found")
        if "TaxRule" in body and body["TaxRule"] not in TAX_RULES:
            errors.append(f"TaxRule '{body['TaxRule']}' not found")
        if "AccountPayable" in body and body["AccountPayable"] not in company.chart:
            errors.append(f"AccountPayable '{body['AccountPayable']}' is not an account in the chart")
        if "Status" in body and body["Status"] not in SUPPLIER_STATUSES:
            errors.append("Status must be Active or Deprecated")
        discount = body.get("Discount")
        if discount is not None and not 0 <= discount <= 100:
            errors.append("Discount must be between 0 and 100")
        return errors

    def _supplier_json(self, supplier: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(supplier))

    @staticmethod
    def _envelope(supplier: dict[str, Any]) -> dict[str, Any]:
        return {"Total": 1, "Page": 1, "SupplierList": [json.loads(json.dumps(supplier))]}

    # ----------------------------------------------------------------- products (read only)

    def _add_product(self, company: Company, item: dict[str, Any]) -> dict[str, Any]:
        sku = str(item["SKU"])
        existing = next((p for p in company.products.values() if p["SKU"] == sku), None)
        if existing is not None:
            return existing
        product = {
            "ID": str(uuid.uuid4()),
            "SKU": sku,
            "Name": str(item.get("Name") or sku),
            "Type": "Stock",
            "UOM": "Item",
            "Status": "Active",
            "PurchaseTaxRule": str(item.get("PurchaseTaxRule") or "Tax on Purchases"),
            "InventoryAccount": str(item.get("InventoryAccount") or "630"),
            "LastModifiedOn": _now(),
        }
        company.products[product["ID"]] = product
        return product

    def _list_products(self, call: Call) -> Any:
        q = call.query
        items = list(call.company.products.values())
        if "ID" in q:
            items = [p for p in items if p["ID"] == q["ID"].lower()]
        if "Sku" in q:
            items = [p for p in items if p["SKU"].lower() == q["Sku"].lower()]
        if "Name" in q:
            items = [p for p in items if q["Name"].lower() in p["Name"].lower()]
        return self._page(call, [dict(p) for p in items], "Products")

    # ----------------------------------------------------------------- purchases

    def _create_purchase(self, call: Call) -> Any:
        body, company = call.body, call.company
        errors: list[str] = []
        supplier = None
        if body.get("SupplierID"):
            supplier = company.suppliers.get(str(body["SupplierID"]).lower())
            if supplier is None:
                errors.append(f"SupplierID '{body['SupplierID']}' not found")
        elif body.get("Supplier"):
            supplier = next(
                (s for s in company.suppliers.values() if s["Name"].lower() == body["Supplier"].lower()), None
            )
            if supplier is None:
                errors.append(f"Supplier '{body['Supplier']}' not found")
        else:
            errors.append("SupplierID or Supplier is required")
        approach = body.get("Approach") or "INVOICE"
        if approach not in ("INVOICE", "STOCK"):
            errors.append("Approach must be INVOICE or STOCK")
        location = body.get("Location") or LOCATIONS[0]
        if location not in LOCATIONS:
            errors.append(f"Location '{location}' not found")
        if body.get("TaxRule") and body["TaxRule"] not in TAX_RULES:
            errors.append(f"TaxRule '{body['TaxRule']}' not found")
        if body.get("Terms") and body["Terms"] not in PAYMENT_TERMS:
            errors.append(f"Terms '{body['Terms']}' not found")
        calculation = body.get("TaxCalculation") or "Exclusive"
        if calculation not in ("Exclusive", "Inclusive"):
            errors.append("TaxCalculation must be Exclusive or Inclusive")
        errors += _lengths(body, {"Note": 2048, "Contact": 256, "Phone": 256})
        if errors or supplier is None:
            raise ApiError(400, *errors)
        purchase_id = str(uuid.uuid4())
        number = f"PO-{company.next_order_number:05d}"
        company.next_order_number += 1
        empty_stage = {"Status": "NOT AVAILABLE", "Lines": [], "AdditionalCharges": []}
        purchase = {
            "ID": purchase_id,
            "Supplier": supplier["Name"],
            "SupplierID": supplier["ID"],
            "Contact": body.get("Contact") or "",
            "Phone": body.get("Phone"),
            "InventoryAccount": "630",
            "RequiredBy": body.get("RequiredBy"),
            "Location": location,
            "Approach": approach,
            "BlindReceipt": bool(body.get("BlindReceipt", False)),
            "CurrencyRate": body.get("CurrencyRate") or 1,
            "Note": body.get("Note"),
            "Terms": body.get("Terms") or supplier["PaymentTerm"],
            "TaxRule": body.get("TaxRule") or supplier["TaxRule"],
            "TaxCalculation": calculation,
            "BaseCurrency": "USD",
            "SupplierCurrency": supplier["Currency"],
            "OrderNumber": number,
            "OrderDate": _today(),
            "Status": "ORDERING",
            "LastUpdatedDate": _now(),
            "AdditionalAttributes": {
                f"AdditionalAttribute{i}": (body.get("AdditionalAttributes") or {}).get(
                    f"AdditionalAttribute{i}", ""
                )
                for i in range(1, 11)
            },
            "BillingAddress": body.get("BillingAddress") or {},
            "ShippingAddress": body.get("ShippingAddress") or {},
            "Order": {
                **empty_stage,
                "Memo": None,
                "Prepayments": [],
                "Tax": 0,
                "Total": 0,
                "TotalBeforeTax": 0,
            },
            "StockReceived": {"Status": "NOT AVAILABLE", "Lines": []},
            "Invoice": {
                **empty_stage,
                "Status": "DRAFT",
                "InvoiceNumber": None,
                "InvoiceDate": None,
                "InvoiceDueDate": None,
                "Payments": [],
                "Paid": 0,
                "Tax": 0,
                "Total": 0,
                "TotalBeforeTax": 0,
            },
            "CreditNote": {**empty_stage, "CreditNoteNumber": "", "CreditNoteDate": None, "Refunds": []},
            "ManualJournals": {"Status": "NOT AVAILABLE", "Lines": []},
            "Attachments": [],
            "InventoryMovements": [],
        }
        company.purchases[purchase_id] = purchase
        return self._response("POST", "purchase", self._purchase_json(purchase))

    def _purchase(self, company: Company, task_id: Any) -> dict[str, Any]:
        if not task_id:
            raise ApiError(400, "TaskID is required")
        purchase = company.purchases.get(str(task_id).lower())
        if purchase is None:
            raise ApiError(404, f"purchase {task_id} not found")
        return purchase

    def _get_purchase(self, call: Call) -> Any:
        purchase = self._purchase(call.company, call.query.get("ID"))
        return self._response("GET", "purchase", self._purchase_json(purchase))

    def _post_order(self, call: Call) -> Any:
        body, company = call.body, call.company
        purchase = self._purchase(company, body.get("TaskID"))
        order = purchase["Order"]
        if order["Status"] not in ("NOT AVAILABLE", "DRAFT"):
            raise ApiError(400, f"Order status is {order['Status']}: only a DRAFT order can be changed")
        errors = _missing(body, ("Status", "Lines", "Memo"))
        if body.get("Status") not in (None, *STAGE_STATUSES):
            errors.append("Status must be DRAFT or AUTHORISED")
        errors += _lengths(body, {"Memo": 1024})
        lines = body.get("Lines") or []
        if "Lines" in body and not lines:
            errors.append("Lines must not be empty")
        for index, line in enumerate(lines):
            errors += self._line_errors(company, line, f"Lines[{index}]", account=False)
        if errors:
            raise ApiError(400, *errors)
        order.update(
            Status=body["Status"],
            Memo=body["Memo"],
            Lines=[dict(line) for line in lines],
            AdditionalCharges=list(body.get("AdditionalCharges") or []),
            **_totals(lines),
        )
        purchase["Status"] = "ORDERED" if order["Status"] == "AUTHORISED" else "ORDERING"
        purchase["LastUpdatedDate"] = _now()
        answer = {
            "TaskID": purchase["ID"],
            "CombineAdditionalCharges": bool(body.get("CombineAdditionalCharges", False)),
            **order,
        }
        answer.pop("Prepayments", None)
        return self._response("POST", "purchase/order", answer)

    def _post_invoice(self, call: Call) -> Any:
        body, company = call.body, call.company
        purchase = self._purchase(company, body.get("TaskID"))
        invoice = purchase["Invoice"]
        if purchase["Order"]["Status"] != "AUTHORISED":
            raise ApiError(
                400, f"Order status is {purchase['Order']['Status']}: the order must be AUTHORISED"
            )
        if invoice["Status"] not in ("NOT AVAILABLE", "DRAFT"):
            raise ApiError(400, f"Invoice status is {invoice['Status']}: only a DRAFT invoice can be changed")
        if purchase["Approach"] == "STOCK" and purchase["StockReceived"]["Status"] != "AUTHORISED":
            raise ApiError(400, "Approach is STOCK: stock must be received (AUTHORISED) before the invoice")
        errors = _missing(body, ("Status", "Lines"))
        if body.get("Status") not in (None, *STAGE_STATUSES):
            errors.append("Status must be DRAFT or AUTHORISED")
        lines = body.get("Lines") or []
        if "Lines" in body and not lines:
            errors.append("Lines must not be empty")
        for index, line in enumerate(lines):
            errors += self._line_errors(company, line, f"Lines[{index}]", account=True)
        if errors:
            raise ApiError(400, *errors)
        invoice.update(
            Status=body["Status"],
            InvoiceNumber=body.get("InvoiceNumber") or f"INV-{purchase['OrderNumber']}",
            InvoiceDate=body.get("InvoiceDate") or _today(),
            InvoiceDueDate=body.get("InvoiceDueDate"),
            Lines=[dict(line) for line in lines],
            AdditionalCharges=list(body.get("AdditionalCharges") or []),
            **_totals(lines),
        )
        self._settle_status(purchase)
        answer = {
            "TaskID": purchase["ID"],
            "CombineAdditionalCharges": bool(body.get("CombineAdditionalCharges", False)),
            "InvoiceTotalAmount": invoice["Total"],
            "InvoiceTotalTaxAmount": invoice["Tax"],
            **{k: v for k, v in invoice.items() if k not in ("Payments", "Paid")},
        }
        return self._response("POST", "purchase/invoice", answer)

    def _post_stock(self, call: Call) -> Any:
        body, company = call.body, call.company
        purchase = self._purchase(company, body.get("TaskID"))
        stock = purchase["StockReceived"]
        if purchase["Order"]["Status"] != "AUTHORISED":
            raise ApiError(400, "the order must be AUTHORISED before stock is received")
        if stock["Status"] not in ("NOT AVAILABLE", "DRAFT"):
            raise ApiError(400, f"Stock received status is {stock['Status']}")
        if purchase["Approach"] == "INVOICE" and purchase["Invoice"]["Status"] != "AUTHORISED":
            raise ApiError(
                400, "Approach is INVOICE: the invoice must be AUTHORISED before stock is received"
            )
        errors = _missing(body, ("Status",))
        if body.get("Status") not in (None, *STAGE_STATUSES):
            errors.append("Status must be DRAFT or AUTHORISED")
        if errors:
            raise ApiError(400, *errors)
        stock["Lines"] = stock["Lines"] + [dict(line) for line in body.get("Lines") or []]
        stock["Status"] = body["Status"]
        self._settle_status(purchase)
        return self._response("POST", "purchase/stock", {"TaskID": purchase["ID"], **stock})

    @staticmethod
    def _settle_status(purchase: dict[str, Any]) -> None:
        invoiced = purchase["Invoice"]["Status"] == "AUTHORISED"
        received = purchase["StockReceived"]["Status"] == "AUTHORISED"
        if invoiced and received:
            purchase["Status"] = "COMPLETED"
        elif invoiced:
            purchase["Status"] = "INVOICED"
        elif received:
            purchase["Status"] = "RECEIVED"
        elif purchase["StockReceived"]["Status"] == "DRAFT":
            purchase["Status"] = "RECEIVING"
        purchase["LastUpdatedDate"] = _now()

    def _line_errors(self, company: Company, line: dict[str, Any], where: str, *, account: bool) -> list[str]:
        required = ("ProductID", "SKU", "Name", "Quantity", "Price", "Tax", "TaxRule", "Total")
        errors = [f"{where}.{name} is required" for name in required if line.get(name) in (None, "")]
        if account and line.get("Account") in (None, ""):
            errors.append(f"{where}.Account is required")
        if errors:
            return errors
        product = company.products.get(str(line["ProductID"]).lower())
        if product is None:
            errors.append(f"{where}.ProductID '{line['ProductID']}' not found")
        elif product["SKU"] != line["SKU"]:
            errors.append(f"{where}.SKU '{line['SKU']}' is not the SKU of product {line['ProductID']}")
        if line["TaxRule"] not in TAX_RULES:
            errors.append(f"{where}.TaxRule '{line['TaxRule']}' not found")
        if account:
            chart_entry = company.chart.get(line["Account"])
            if chart_entry is None or chart_entry["Status"] != "ACTIVE":
                errors.append(f"{where}.Account '{line['Account']}' is not an active account in the chart")
        quantity, price = _decimal(line["Quantity"]), _decimal(line["Price"])
        discount = _decimal(line.get("Discount") or 0)
        if quantity < 1:
            errors.append(f"{where}.Quantity must be 1 or more")
        if not 0 <= discount <= 100:
            errors.append(f"{where}.Discount must be between 0 and 100")
        expected = (quantity * price * (100 - discount) / 100).quantize(Decimal("0.01"))
        if abs(_decimal(line["Total"]) - expected) > Decimal("0.01"):
            errors.append(f"{where}.Total {line['Total']} does not match Quantity x Price less Discount")
        return errors

    def _purchase_json(self, purchase: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(purchase))
        # The document's purchase object spells the invoice number "InvocieNumber" (sic).
        out["Invoice"]["InvocieNumber"] = out["Invoice"].pop("InvoiceNumber")
        return out

    def _list_purchases(self, call: Call) -> Any:
        q = call.query
        rows = [self._purchase_row(p) for p in call.company.purchases.values()]
        if "Search" in q:
            needle = q["Search"].lower()
            fields = ("OrderNumber", "Status", "Supplier", "InvoiceNumber", "CreditNoteNumber")
            rows = [r for r in rows if any(needle in str(r.get(f) or "").lower() for f in fields)]
        for name in ("Status", "OrderStatus", "InvoiceStatus", "CreditNoteStatus"):
            if name in q:
                rows = [r for r in rows if r[name] == q[name]]
        if "UpdatedSince" in q:
            rows = [r for r in rows if r["LastUpdatedDate"] >= q["UpdatedSince"]]
        return self._response("GET", "purchaseList", self._page(call, rows, "PurchaseList"))

    @staticmethod
    def _purchase_row(p: dict[str, Any]) -> dict[str, Any]:
        invoice, stock = p["Invoice"], p["StockReceived"]
        return {
            "ID": p["ID"],
            "BlindReceipt": p["BlindReceipt"],
            "OrderNumber": p["OrderNumber"],
            "Status": p["Status"],
            "OrderDate": p["OrderDate"],
            "InvoiceDate": invoice["InvoiceDate"],
            "InvoiceDueDate": invoice["InvoiceDueDate"],
            "Supplier": p["Supplier"],
            "SupplierID": p["SupplierID"],
            "InvoiceNumber": invoice["InvoiceNumber"],
            "InvoiceAmount": invoice["Total"],
            "PaidAmount": 0,
            "RequiredBy": p["RequiredBy"],
            "CreditNoteNumber": p["CreditNote"]["CreditNoteNumber"],
            "OrderStatus": p["Order"]["Status"],
            "StockReceivedStatus": stock["Status"],
            "UnstockStatus": "NOT AVAILABLE",
            "InvoiceStatus": invoice["Status"],
            "CreditNoteStatus": p["CreditNote"]["Status"],
            "CombinedInvoiceStatus": "INVOICED" if invoice["Status"] == "AUTHORISED" else "NOT INVOICED",
            "CombinedPaymentStatus": "UNPAID",
            "CombinedReceivingStatus": "FULLY RECEIVED"
            if stock["Status"] == "AUTHORISED"
            else "NOT RECEIVED",
            "LastUpdatedDate": p["LastUpdatedDate"],
            "BaseCurrency": p["BaseCurrency"],
            "SupplierCurrency": p["SupplierCurrency"],
            "IsServiceOnly": False,
            "DropShipTaskID": None,
            "Type": "Simple Purchase",
        }

    # ----------------------------------------------------------------- chart of accounts

    def _list_accounts(self, call: Call) -> Any:
        q = call.query
        items = list(call.company.chart.values())
        for name in ("Code", "Type", "Status"):
            if name in q:
                items = [a for a in items if a[name].lower() == q[name].lower()]
        if "Name" in q:
            items = [a for a in items if q["Name"].lower() in a["Name"].lower()]
        page = self._page(call, [dict(a) for a in sorted(items, key=lambda a: a["Code"])], "AccountsList")
        return self._response("GET", "ref/account", page)

    def _create_account(self, call: Call) -> Any:
        body = call.body
        errors = _missing(body, ("Code", "Name", "Type", "Status")) + self._account_errors(body)
        if body.get("Code") in call.company.chart:
            errors.append(f"Account with Code '{body['Code']}' already exists")
        if errors:
            raise ApiError(400, *errors)
        entry = _account(
            body["Code"],
            body["Name"],
            body["Type"],
            body.get("Class"),
            body["Status"],
            body.get("Description") or "",
            body.get("SystemAccount"),
        )
        call.company.chart[entry["Code"]] = entry
        return self._response("POST", "ref/account", {"Total": 1, "Page": 1, "AccountsList": [dict(entry)]})

    def _update_account(self, call: Call) -> Any:
        body = call.body
        entry = call.company.chart.get(str(body.get("Code", "")))
        if entry is None:
            raise ApiError(404 if "Code" in body else 400, f"account {body.get('Code')!r} not found")
        errors = self._account_errors(body)
        if "SystemAccount" in body and body["SystemAccount"] != entry["SystemAccount"]:
            errors.append("SystemAccount is read-only for PUT")
        if errors:
            raise ApiError(400, *errors)
        entry.update({k: v for k, v in body.items() if k != "Code"})
        entry["DisplayName"] = f"{entry['Code']}: {entry['Name']}"
        return self._response("PUT", "ref/account", {"Total": 1, "Page": 1, "AccountsList": [dict(entry)]})

    def _delete_account(self, call: Call) -> Any:
        code = call.query.get("Code")
        if code not in call.company.chart:
            raise ApiError(404, f"account {code!r} not found")
        del call.company.chart[code]
        return {"Success": True}

    @staticmethod
    def _account_errors(body: dict[str, Any]) -> list[str]:
        errors = _lengths(body, {"Code": 50, "Name": 256, "Type": 50, "Status": 50})
        if "Type" in body and body["Type"] not in ACCOUNT_TYPES:
            errors.append(f"Type '{body['Type']}' is not an account type")
        if body.get("Class") is not None and body["Class"] not in ACCOUNT_CLASSES:
            errors.append(f"Class '{body['Class']}' is not an account class")
        if "Status" in body and body["Status"] not in ACCOUNT_STATUSES:
            errors.append(f"Status '{body['Status']}' is not an account status")
        return errors


# ----------------------------------------------------------------- helpers


def _account(
    code: str, name: str, type_: str, class_: str | None, status: str, description: str, system: str | None
) -> dict[str, Any]:
    return {
        "Code": code,
        "Name": name,
        "Type": type_,
        "Class": class_,
        "Status": status,
        "Description": description,
        "SystemAccount": system,
        "ForPayments": type_ == "BANK",
        "DisplayName": f"{code}: {name}",
        "OldCode": None,
        "BankAccountId": None,
        "BankAccountNumber": None,
    }


def _child(item: dict[str, Any], supplier_id: str) -> dict[str, Any]:
    return {**item, "ID": str(uuid.uuid4()), "SupplierID": supplier_id}


def _missing(body: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return [f"{name} is required" for name in names if body.get(name) is None]


def _lengths(body: dict[str, Any], limits: dict[str, int]) -> list[str]:
    return [
        f"{name} is longer than {limit} characters"
        for name, limit in limits.items()
        if isinstance(body.get(name), str) and len(body[name]) > limit
    ]


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ApiError(400, f"{value!r} is not a number") from exc


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    if name not in query:
        return default
    try:
        return int(query[name])
    except ValueError as exc:
        raise ApiError(400, f"{name} must be a whole number") from exc


def _totals(lines: list[dict[str, Any]]) -> dict[str, float]:
    before = sum((_decimal(line["Total"]) for line in lines), Decimal(0))
    tax = sum((_decimal(line["Tax"]) for line in lines), Decimal(0))
    return {"TotalBeforeTax": float(before), "Tax": float(tax), "Total": float(before + tax)}


def _project(value: Any, schema: dict[str, Any]) -> Any:
    """Keep only what ``schema`` lists, recursively; a required field the sandbox does not model
    (product dimensions on purchase lines...) is sent as null rather than left out."""
    schema = spec.resolve(schema)
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        kept = {k: _project(v, properties[k]) for k, v in value.items() if k in properties}
        return {**{name: None for name in schema.get("required", [])}, **kept}
    if isinstance(value, list) and "items" in schema:
        return [_project(item, schema["items"]) for item in value]
    return value
