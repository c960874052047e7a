"""A stateful Stripe v1 simulator that the official ``stripe`` SDK can talk to unchanged.

Mounted at ``{base_url}/stripe``: point the SDK at it with ``base_addresses={"api": f"{base}/stripe"}``.
Written from contracts/stripe.md; objects follow Stripe's fixtures (see account.py).

- Auth: ``Bearer sk_test_*`` or HTTP Basic with the key as username. Every distinct key is its own
  account (objects, events, idempotency keys, rate limit). Keys never expire, so token revocation
  faults do not apply here.
- Idempotency: a POST's ``Idempotency-Key`` replays the first answer (status and body, errors too)
  with ``Idempotent-Replayed: true``; the same key with other parameters is a 400 ``idempotency_error``.
- Versioning: a ``Stripe-Version`` header other than ``API_VERSION`` is a 400 ``invalid_request_error``
  "Invalid Stripe API version: <value>" (Stripe's wording, stripe-java#682); no header means the
  account default, ``API_VERSION``. Older real versions are refused too: the sandbox only behaves
  as this one does.
- Due dates: an invoice ``due_date`` that is not in the future is a 400 on ``due_date`` with Stripe's
  message "Invalid timestamp: must be an integer Unix timestamp in the future." (stripe-python#925),
  saved under no idempotency key, as a failed validation.
- Webhooks: each event goes to the account's enabled endpoints, signed ``t=<ts>,v1=<hmac>``, while
  the call that caused it is still open, but never under the state lock.
- Invoice payments (API version 2026-10-28): PaymentIntent and Charge carry no invoice id; the link
  is the ``invoice_payment`` object (``GET /v1/invoice_payments?invoice=in_...`` or
  ``?payment[payment_intent]=pi_...``) and ``expand[]=payments`` on an invoice. Their description is
  "Payment for Invoice", as Stripe's own are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..context import SandboxContext
from .account import API_VERSION, Account, Delivery, Obj, SavedResponse, StripeError, expanded
from .forms import FormError, parse_form

logger = logging.getLogger(__name__)
DELIVERY_TIMEOUT_SECONDS = 5.0
_API_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]

# handler(account, params, **path_params) -> response body
Handler = Callable[..., Obj]


def _json(body: Any, status: int = 200, request_id: str | None = None, **headers: str) -> Response:
    all_headers = {"Request-Id": request_id or _request_id(), **headers}
    return Response(
        json.dumps(body).encode(), status_code=status, headers=all_headers, media_type="application/json"
    )


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:14]


def sign(secret: str, timestamp: int, body: str) -> str:
    """The ``Stripe-Signature`` header value for one delivery."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeSimulator:
    name = "stripe"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self.rate_limit_per_second: float | None = None  # off by default

    # ---- accounts and auth ---------------------------------------------------------------------
    def webhook_secret(self, api_key: str, url: str) -> str:
        return "whsec_" + hashlib.sha256(f"{self.ctx.seed}:{api_key}:{url}".encode()).hexdigest()[:32]

    def _account(self, api_key: str) -> Account:
        account = self._accounts.get(api_key)
        if account is None:
            # Seeded per key so the same run produces the same ids.
            account = Account(
                api_key=api_key,
                rng=random.Random(f"{self.ctx.seed}:{api_key}"),
                secret_for=lambda url: self.webhook_secret(api_key, url),
            )
            self._accounts[api_key] = account
        return account

    @staticmethod
    def _api_key(authorization: str) -> str | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return None
        elif scheme.lower() != "bearer":
            return None
        return value if value.startswith("sk_test_") and len(value) > len("sk_test_") else None

    def _rate_limited(self, account: Account) -> bool:
        if not self.rate_limit_per_second:
            return False
        now = time.monotonic()
        account.recent_requests = [t for t in account.recent_requests if now - t < 1.0]
        if len(account.recent_requests) >= self.rate_limit_per_second:
            return True
        account.recent_requests.append(now)
        return False

    def _find_account(self, kind: str, object_id: str) -> Account:
        with self._lock:
            for account in self._accounts.values():
                if object_id in account.objects[kind]:
                    return account
        raise StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id")

    # ---- the API pipeline ----------------------------------------------------------------------
    def _endpoint(self, handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            body = (await request.body()).decode() if request.method == "POST" else request.url.query
            return await run_in_threadpool(
                self._serve,
                request.method,
                request.url.path,
                dict(request.headers),
                body,
                handler,
                dict(request.path_params),
            )

        return endpoint

    def _serve(
        self, method: str, path: str, headers: dict[str, str], raw: str, handler: Handler, path_params: dict
    ) -> Response:
        request_id = _request_id()
        api_key = self._api_key(headers.get("authorization", ""))
        if api_key is None:
            error = StripeError(
                401,
                "Invalid API Key provided. Use a test secret key (sk_test_...) as a Bearer "
                "token or as the HTTP Basic username.",
            )
            return _json(error.body(request_id), 401, request_id)
        version = headers.get("stripe-version")
        if version is not None and version != API_VERSION:
            error = StripeError(400, f"Invalid Stripe API version: {version}", validation=True)
            return _json(error.body(request_id), 400, request_id)
        idempotency_key = headers.get("idempotency-key") if method == "POST" else None
        with self._lock:
            account = self._account(api_key)
            if self._rate_limited(account):
                error = StripeError(429, "Too many requests hit the API too quickly.", code="rate_limit")
                return _json(error.body(request_id), 429, request_id)
            try:
                params = parse_form(raw)
            except FormError as exc:
                return _json(StripeError(400, str(exc), param=exc.param).body(request_id), 400, request_id)
            fingerprint = json.dumps([method, path, params], sort_keys=True)
            if idempotency_key is not None:
                if len(idempotency_key) > 255:
                    error = StripeError(
                        400, "Idempotency-Key must be at most 255 characters.", type="idempotency_error"
                    )
                    return _json(error.body(request_id), 400, request_id)
                saved = account.idempotency.get(idempotency_key)
                if saved is not None and saved.fingerprint != fingerprint:
                    error = StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{idempotency_key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    )
                    return _json(error.body(request_id), 400, request_id)
                if saved is not None:
                    return Response(
                        saved.body,
                        status_code=saved.status,
                        media_type="application/json",
                        headers={
                            "Request-Id": request_id,
                            "Idempotent-Replayed": "true",
                            "Idempotency-Key": idempotency_key,
                        },
                    )
            account.request_id, account.idempotency_key = request_id, idempotency_key
            # Stripe saves nothing for a request whose parameters fail validation (contract §2).
            validation_failed = False
            try:
                status, body = 200, handler(account, params, **path_params)
            except StripeError as exc:
                status, body = exc.status, exc.body(request_id)
                validation_failed = exc.validation or (exc.code or "").startswith("parameter_")
            except FormError as exc:
                status, body = 400, StripeError(400, str(exc), param=exc.param).body(request_id)
                validation_failed = True
            except Exception:  # a simulator bug still answers in Stripe's shape, so the SDK raises APIError
                logger.exception("stripe simulator failed on %s %s", method, path)
                status, body = (
                    500,
                    StripeError(500, "An unknown error occurred", type="api_error").body(request_id),
                )
            finally:
                account.request_id = account.idempotency_key = None
            payload = json.dumps(body).encode()
            if idempotency_key is not None and not validation_failed:
                account.idempotency[idempotency_key] = SavedResponse(fingerprint, status, payload)
            events, account.new_events = account.new_events, []
        self._deliver(account, events)
        headers_out = {"Request-Id": request_id}
        if idempotency_key is not None:
            headers_out["Idempotency-Key"] = idempotency_key
        return Response(payload, status_code=status, media_type="application/json", headers=headers_out)

    # ---- webhooks ------------------------------------------------------------------------------
    def _deliver(self, account: Account, events: list[Obj]) -> list[Delivery]:
        """Sends each event to its endpoints. Runs outside the lock: a slow receiver blocks no one."""
        results: list[Delivery] = []
        for event in events:
            with self._lock:
                targets = [
                    (ep["id"], ep["url"], account.webhook_secrets[ep["id"]])
                    for ep in account.endpoints_for(event["type"])
                ]
                body = json.dumps(event)  # the exact text that is signed and sent
            attempts = [self._post_event(event, body, *target) for target in targets]
            with self._lock:
                account.deliveries.extend(attempts)
                stored = account.objects["event"].get(event["id"])
                if stored is not None:
                    stored["pending_webhooks"] = sum(not d.succeeded for d in attempts)
            results.extend(attempts)
        return results

    @staticmethod
    def _post_event(event: Obj, body: str, endpoint_id: str, url: str, secret: str) -> Delivery:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(secret, timestamp, body),
        }
        try:
            answer = httpx.post(url, content=body.encode(), headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            return Delivery(
                event["id"], event["type"], endpoint_id, url, None, f"{type(exc).__name__}: {exc}", timestamp
            )
        return Delivery(event["id"], event["type"], endpoint_id, url, answer.status_code, None, timestamp)

    # ---- routes --------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        def invoice_out(obj: Obj, account: Account, params: Obj) -> Obj:
            if expanded(params, "payments") and obj.get("object") == "invoice" and not obj.get("deleted"):
                return {**obj, "payments": account.invoice_payments_of(obj["id"])}
            return obj

        def invoice_list(account: Account, params: Obj) -> Obj:
            page = account.list_invoices(params)
            return {**page, "data": [invoice_out(inv, account, params) for inv in page["data"]]}

        def invoice_call(method: Callable[..., Obj]) -> Handler:
            return lambda a, p, id: invoice_out(method(a, id, p), a, p)

        table: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/customers", lambda a, p: a.create_customer(p)),
            ("GET", "/v1/customers", lambda a, p: a.list_customers(p)),
            ("GET", "/v1/customers/search", lambda a, p: a.search_customers(p)),
            ("GET", "/v1/customers/{id}", lambda a, p, id: a.retrieve_customer(id)),
            ("POST", "/v1/customers/{id}", lambda a, p, id: a.update_customer(id, p)),
            ("DELETE", "/v1/customers/{id}", lambda a, p, id: a.delete_customer(id)),
            ("POST", "/v1/invoiceitems", lambda a, p: a.create_invoice_item(p)),
            ("GET", "/v1/invoiceitems", lambda a, p: a.list_invoice_items(p)),
            ("GET", "/v1/invoiceitems/{id}", lambda a, p, id: a.get("invoiceitem", id)),
            ("POST", "/v1/invoiceitems/{id}", lambda a, p, id: a.update_invoice_item(id, p)),
            ("DELETE", "/v1/invoiceitems/{id}", lambda a, p, id: a.delete_invoice_item(id)),
            ("POST", "/v1/invoices", lambda a, p: invoice_out(a.create_invoice(p), a, p)),
            ("GET", "/v1/invoices", invoice_list),
            ("GET", "/v1/invoices/search", lambda a, p: a.search_invoices(p)),
            ("GET", "/v1/invoices/{id}", lambda a, p, id: invoice_out(a.retrieve_invoice(id), a, p)),
            ("POST", "/v1/invoices/{id}", invoice_call(Account.update_invoice)),
            ("DELETE", "/v1/invoices/{id}", lambda a, p, id: a.delete_invoice(id)),
            ("POST", "/v1/invoices/{id}/finalize", invoice_call(Account.finalize_invoice)),
            ("POST", "/v1/invoices/{id}/pay", invoice_call(Account.pay_invoice)),
            (
                "POST",
                "/v1/invoices/{id}/send",
                lambda a, p, id: invoice_out(a.simple_invoice_action(id, "send", p), a, p),
            ),
            (
                "POST",
                "/v1/invoices/{id}/void",
                lambda a, p, id: invoice_out(a.simple_invoice_action(id, "void", p), a, p),
            ),
            (
                "POST",
                "/v1/invoices/{id}/mark_uncollectible",
                lambda a, p, id: invoice_out(a.simple_invoice_action(id, "mark_uncollectible", p), a, p),
            ),
            ("GET", "/v1/invoice_payments", lambda a, p: a.list_invoice_payments(p)),
            ("GET", "/v1/invoice_payments/{id}", lambda a, p, id: a.get("invoice_payment", id)),
            ("POST", "/v1/payment_intents", lambda a, p: a.create_payment_intent(p)),
            ("GET", "/v1/payment_intents", lambda a, p: a.list_payment_intents(p)),
            ("GET", "/v1/payment_intents/{id}", lambda a, p, id: a.get("payment_intent", id)),
            ("POST", "/v1/payment_intents/{id}", lambda a, p, id: a.update_payment_intent(id, p)),
            ("POST", "/v1/payment_intents/{id}/confirm", lambda a, p, id: a.confirm_payment_intent(id, p)),
            ("POST", "/v1/payment_intents/{id}/cancel", lambda a, p, id: a.cancel_payment_intent(id, p)),
            ("GET", "/v1/charges", lambda a, p: a.list_charges(p)),
            ("GET", "/v1/charges/{id}", lambda a, p, id: a.get("charge", id)),
            ("POST", "/v1/charges/{id}", lambda a, p, id: a.update_charge(id, p)),
            ("POST", "/v1/refunds", lambda a, p: a.create_refund(p)),
            ("GET", "/v1/refunds", lambda a, p: a.list_refunds(p)),
            ("GET", "/v1/refunds/{id}", lambda a, p, id: a.get("refund", id)),
            ("POST", "/v1/refunds/{id}", lambda a, p, id: a.update_refund(id, p)),
            ("GET", "/v1/events", lambda a, p: a.list_events(p)),
            ("GET", "/v1/events/{id}", lambda a, p, id: a.get("event", id)),
            ("POST", "/v1/webhook_endpoints", lambda a, p: a.create_webhook_endpoint(p)),
            (
                "GET",
                "/v1/webhook_endpoints",
                lambda a, p: a.page("webhook_endpoint", p, "/v1/webhook_endpoints"),
            ),
            ("GET", "/v1/webhook_endpoints/{id}", lambda a, p, id: a.get("webhook_endpoint", id)),
            ("POST", "/v1/webhook_endpoints/{id}", lambda a, p, id: a.update_webhook_endpoint(id, p)),
            ("DELETE", "/v1/webhook_endpoints/{id}", lambda a, p, id: a.delete_webhook_endpoint(id)),
        ]

        def unrecognized(account: Account, params: Obj, path: str) -> Obj:
            raise StripeError(404, f"Unrecognized request URL (/{path}).")

        routes: list[BaseRoute] = [
            Route(path, self._endpoint(fn), methods=[verb]) for verb, path, fn in table
        ]
        routes.append(Route("/{path:path}", self._endpoint(unrecognized), methods=_API_METHODS))
        return routes

    # ---- control routes ------------------------------------------------------------------------
    def _control(self, run: Callable[[Obj], tuple[Account, Any]]) -> Callable[[Request], Any]:
        """A control call: JSON in, JSON out, no auth; its events are delivered like an API call's."""

        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                params = {**request.path_params, **(json.loads(raw) if raw.strip() else {})}
            except (json.JSONDecodeError, TypeError):
                return _json(StripeError(400, "The body must be a JSON object.").body(_request_id()), 400)

            def work() -> Response:
                request_id = _request_id()
                try:
                    with self._lock:
                        account, body = run(params)
                        events, account.new_events = account.new_events, []
                        body = json.loads(json.dumps(body))  # a snapshot, taken while nothing changes
                except StripeError as exc:
                    return _json(exc.body(request_id), exc.status, request_id)
                self._deliver(account, events)
                return _json(body, 200, request_id)

            return await run_in_threadpool(work)

        return endpoint

    def control_routes(self) -> list[BaseRoute]:
        def pay(params: Obj) -> tuple[Account, Any]:
            account = self._find_account("invoice", params["id"])
            return account, account.collect_invoice(account.objects["invoice"][params["id"]])

        def refund(params: Obj) -> tuple[Account, Any]:
            kind = "charge" if params.get("charge") else "payment_intent"
            if not params.get(kind):
                raise StripeError(400, "Pass either charge or payment_intent.", param="charge")
            account = self._find_account(kind, str(params.get(kind)))
            api_params = {kind: params[kind]}
            if params.get("amount") is not None:
                api_params["amount"] = str(params["amount"])
            return account, account.create_refund(api_params)

        async def redeliver(request: Request) -> Response:
            event_id = request.path_params["id"]

            def work() -> Response:
                try:
                    account = self._find_account("event", event_id)
                except StripeError as exc:
                    return _json(exc.body(_request_id()), exc.status)
                with self._lock:
                    event = dict(account.objects["event"][event_id])
                deliveries = self._deliver(account, [event])
                return _json({"event": event_id, "deliveries": [vars(d) for d in deliveries]})

            return await run_in_threadpool(work)

        async def rate_limit(request: Request) -> Response:
            if request.method == "PUT":
                per_second = (await request.json()).get("per_second")
                if per_second is not None and (not isinstance(per_second, int | float) or per_second < 0):
                    return _json(
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "message": "per_second must be a number >= 0 or null",
                            }
                        },
                        400,
                    )
                with self._lock:
                    self.rate_limit_per_second = per_second or None
            return _json({"per_second": self.rate_limit_per_second})

        return [
            Route("/invoices/{id}/pay", self._control(pay), methods=["POST"]),
            Route("/refunds", self._control(refund), methods=["POST"]),
            Route("/events/{id}/redeliver", redeliver, methods=["POST"]),
            Route("/rate_limit", rate_limit, methods=["GET", "PUT"]),
        ]

    # ---- introspection -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(
                json.dumps(
                    {
                        "rate_limit_per_second": self.rate_limit_per_second,
                        "accounts": {key: account.snapshot() for key, account in self._accounts.items()},
                    }
                )
            )

    def credentials(self) -> dict[str, Any]:
        return {
            "secret_key_example": "sk_test_sandbox",
            "key_rule": "any sk_test_* key is its own account",
            "webhook_secret_rule": "whsec_ + sha256(f'{seed}:{api_key}:{url}').hexdigest()[:32], returned as "
            "`secret` when the endpoint is created (POST /v1/webhook_endpoints)",
            "seed": self.ctx.seed,
            "api_base": self.ctx.system_url(self.name),
        }
