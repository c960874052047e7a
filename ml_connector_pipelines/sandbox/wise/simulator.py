"""A stateful Wise Platform API simulator, written from ``contracts/wise.md`` only.

Mounted at ``{base_url}/wise``, so a client's base URL is e.g. ``http://127.0.0.1:8700/wise`` and the
legacy path layout follows (``/v1``, ``/v2``, ``/v3``). Everything Wise documents is served as the
contract says; what follows are the sandbox's own conventions, for anyone writing a client or a test.

Authentication
- Personal tokens: any bearer token starting with ``wise-sandbox-`` is valid. Each distinct token is
  its own user with one BUSINESS profile (based in GB) and one PERSONAL profile (based in US). User and
  profile ids are derived from the token, so they are the same in every run; tenants never see each
  other's profiles, recipients, quotes, transfers or subscriptions.
- OAuth: ``POST /oauth/token`` with HTTP Basic ``sandbox-wise-client:sandbox-wise-secret`` and the form
  field ``grant_type=client_credentials`` returns a token valid for 43199 s of *simulator* time (see the
  clock below). Only that grant is implemented. In the sandbox the token acts as one more user (the
  "application" user, with its own two profiles), so a client can exercise OAuth end to end.
- Missing, unknown or expired token: 401 ``{"error": "invalid_token", "error_description": ...}``. When
  the fault profile revokes a token early, a personal token fails only that request; an OAuth token
  stays revoked and a new one must be fetched.
- Funding with a personal token is refused with 403 unless the profile is based in US, CA, AU, NZ, SG
  or MY (contract 2.1): funding the GB business profile needs the OAuth token or the US personal profile.
  SCA is off, as in Wise's own sandbox.

Error bodies (contract section 8)
- Validation: 422 (400 for a malformed body or query parameter) with ``{"errors": [{code, message,
  path, arguments}]}``, listing every problem found. 401 as above. 403: ``{"code", "message"}``. 404 for
  an unknown id, or one that belongs to another user, and 415 for a PATCH that is not
  ``application/merge-patch+json``: the Spring shape ``{timestamp, status, error, message, path}``.
  409 with the ``errors`` shape for a transfer state move the contract's table does not allow.
- A profile id that is not the caller's (in a path or a ``profile`` parameter) gives 403.

Behaviour the contract leaves open ([I] items), decided here
- Creates answer 200. ``DELETE /v1/accounts/{id}`` answers 200 with an empty body; deleting a
  subscription answers 204.
- Quotes: rates and fees are fixed tables (``quotes.py``); top-level amounts come from the payment option
  whose ``payIn`` is ``preferredPayIn`` (``payIn`` is accepted as an alias), else ``BANK_TRANSFER``.
  USD to an account outside the US is routed over ``SWIFT``. A recipient must belong to the quote's
  profile and be in its target currency. Expired quotes read back as ``EXPIRED`` for 48 h, then 404.
- Account requirements (``GET /v1/account-requirements``, ``GET /v1/quotes/{id}/account-requirements``)
  and recipient creation follow ``requirements.py``: per currency, the recipient types offered and
  their fields; a create with a type the currency lacks, an unknown ``details`` key, a missing field
  or a value failing its pattern is a 422 naming ``details.<key>`` (sources in docs/wise.md).
- ``GET /v2/accounts``: ``profileId`` (or ``profile``) is required; ``size`` defaults to 20 and is capped
  at 20; pass ``seekPositionForNext`` back as ``seekPosition``; it is null on the last page.
- ``GET /v1/transfers``: newest first; ``limit`` defaults to 100 and is clamped to 1..100.
- A repeated ``customerTransactionId`` (per user) returns the original transfer with 200, whatever else
  the body says. Creating a transfer emits a ``transfers#state-change`` event with ``previous_state``
  null; cancelling, funding and the simulation routes emit one event per move.
- The Wise-style ``GET /v1/simulation/transfers/{id}/{state}`` (authenticated) accepts the five states
  the contract lists; the sandbox control route below accepts any state.

Webhooks
- Subscriptions (contract 7.1) accept ``delivery.version`` 2.0.0 or 4.0.0; the payload is the same. As
  well as https URLs with a domain name on port 443, the sandbox accepts plain ``http`` URLs on loopback
  (localhost, 127.0.0.1, ::1) on any port. Creating one sends a signed test notification
  (``X-Test-Notification: true``); if it is not answered with a 2xx the create fails with 422
  ``INVALID_CALLBACK_URL``.
- Events are signed with the sandbox's own key (``keys.py``; public half in ``credentials()``), not
  Wise's. Delivery is synchronous inside the call that caused it, with a 5 s timeout and no retries;
  every attempt (status code or error) is recorded in ``state()``. A delivery counts as delivered only
  on a 200.

Every answer carries a ``Date`` header by the simulator clock (below), as Wise's servers date theirs.
``state()`` counts, per user, the authenticated API requests answered per method and route template
(``"calls": {"GET /v3/profiles/{profile_id}/quotes/{quote_id}": 3, ...}``), so a test can assert on
what a client sent.

Control routes, under ``/_sandbox/wise`` (no auth, no faults)
- ``POST /clock {"advance_seconds": N}``: moves the simulator clock forward (quote and token expiry).
- ``POST /transfers/{id}/state {"status": "...", "occurred_at": optional ISO time}``: a state move, same
  rules as the API; answers ``{"transfer", "deliveries"}``.
- ``PUT /webhooks {"duplicates": bool, "out_of_order": bool}``: ``duplicates`` sends every delivery twice
  (a new ``X-Delivery-Id`` each time); ``out_of_order`` holds each event back and sends it right after
  the next one. Switching ``out_of_order`` off sends any held event.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from base64 import b64decode
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..context import SandboxContext
from . import webhooks
from .errors import (
    ApiError,
    FieldError,
    forbidden,
    invalid_field,
    invalid_token,
    not_found,
    spring_error,
    validation_failed,
)
from .keys import WEBHOOK_PUBLIC_KEY_PEM
from .quotes import (
    EXPIRED_QUOTE_RETENTION,
    PAY_INS,
    PAY_OUTS,
    USD_RATES,
    Quote,
    exchange_rate,
    quote_json,
    route_pay_out,
)
from .recipients import Recipient, v1_json, v2_json, validate_create
from .requirements import CURRENCY_TYPES, requirements_json, v2_type_name

PERSONAL_TOKEN_PREFIX = "wise-sandbox-"
OAUTH_TOKEN_PREFIX = "wise-oauth-"
CLIENT_ID = "sandbox-wise-client"
CLIENT_SECRET = "sandbox-wise-secret"
OAUTH_TOKEN_SECONDS = 43199
# Personal tokens may fund transfers only for profiles based here (PSD2, contract 2.1).
PERSONAL_TOKEN_FUNDING_COUNTRIES = frozenset({"US", "CA", "AU", "NZ", "SG", "MY"})
MAX_RECIPIENT_PAGE = 20
MAX_TRANSFER_PAGE = 100

STATUSES = (
    "incoming_payment_waiting",
    "incoming_payment_initiated",
    "waiting_recipient_input_to_proceed",
    "processing",
    "funds_converted",
    "outgoing_payment_sent",
    "cancelled",
    "funds_refunded",
    "bounced_back",
    "charged_back",
    "unknown",
)
# The contract's transition table (6.4); any state may also move to charged_back.
TRANSITIONS = {
    "incoming_payment_waiting": {"waiting_recipient_input_to_proceed", "processing", "cancelled"},
    "waiting_recipient_input_to_proceed": {"processing", "cancelled"},
    "processing": {"funds_converted", "cancelled"},
    "funds_converted": {"outgoing_payment_sent", "bounced_back"},
    "outgoing_payment_sent": {"bounced_back"},
    "bounced_back": {"outgoing_payment_sent", "funds_refunded"},
    "cancelled": {"funds_refunded"},
    "funds_refunded": {"bounced_back"},
}
# States Wise's own simulation calls can move a transfer to (contract section 1).
SIMULATION_STATES = (
    "processing",
    "funds_converted",
    "outgoing_payment_sent",
    "bounced_back",
    "funds_refunded",
)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def can_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, set()) or (new == "charged_back" and current != "charged_back")


@dataclass
class User:
    id: int
    auth: str  # "personal" or "oauth"
    business_profile_id: int
    personal_profile_id: int


@dataclass
class Profile:
    id: int
    user_id: int
    type: str  # BUSINESS or PERSONAL
    public_id: str
    country: str
    created_at: datetime


@dataclass
class OAuthToken:
    user_id: int
    expires_at: datetime
    revoked: bool = False


@dataclass
class Transfer:
    id: int
    user_id: int
    profile_id: int
    target_account: int
    source_account: int | None
    quote_id: str
    status: str
    rate: float
    created_at: datetime
    reference: str | None
    customer_transaction_id: str
    source_currency: str
    source_value: float
    target_currency: str
    target_value: float


@dataclass
class Subscription:
    id: str
    user_id: int
    profile_id: int
    name: str
    trigger_on: str
    url: str
    version: str
    created_at: datetime


@dataclass
class Call:
    """What a handler needs from one request, plus the authenticated user."""

    request: Request
    raw_body: bytes
    user: User | None = None
    _body: Any = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return self.request.url.path

    @property
    def caller(self) -> User:
        """The authenticated user; only handlers of authenticated routes ask for it."""
        if self.user is None:
            raise RuntimeError("this route is not authenticated")
        return self.user

    def param(self, name: str) -> Any:
        return self.request.path_params[name]

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def json(self) -> dict[str, Any]:
        if self._body is None:
            try:
                self._body = json.loads(self.raw_body or b"{}")
            except ValueError:
                raise invalid_field(None, "The request body is not valid JSON.", status=400) from None
            if not isinstance(self._body, dict):
                raise invalid_field(None, "The request body must be a JSON object.", status=400)
        return self._body

    def int_query(self, name: str, default: int | None = None) -> int | None:
        value = self.query(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise invalid_field(name, f"{name} must be an integer.", status=400) from None


def _iso(moment: datetime, timespec: str = "seconds") -> str:
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def _stable_id(text: str, taken: dict[int, Any]) -> int:
    """An 8-digit id derived from ``text``, bumped past any id already in use."""
    candidate = 10_000_000 + int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) % 90_000_000
    while candidate in taken:
        candidate += 1
    return candidate


def _json(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


class WiseSimulator:
    name = "wise"

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._lock = threading.RLock()
        self._clock_offset = timedelta(0)
        self._calls: dict[int, Counter[str]] = {}  # user id -> "METHOD /route" -> requests answered
        self._users: dict[int, User] = {}
        self._personal_users: dict[str, int] = {}  # token -> user id
        self._oauth_tokens: dict[str, OAuthToken] = {}
        self._profiles: dict[int, Profile] = {}
        self._recipients: dict[int, Recipient] = {}
        self._quotes: dict[str, Quote] = {}
        self._transfers: dict[int, Transfer] = {}
        self._transfer_by_quote: dict[str, int] = {}
        self._transfer_by_customer_id: dict[tuple[int, str], int] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._deliveries: list[dict[str, Any]] = []
        self._next_recipient_id = 40_000_001
        self._next_transfer_id = 50_000_001
        self._duplicates = False
        self._out_of_order = False
        self._held_event: webhooks.StateChange | None = None

    # ----------------------------------------------------------------- Simulator protocol

    def routes(self) -> list[BaseRoute]:
        route = self._route
        return [
            route("/oauth/token", ["POST"], self._oauth_token, authenticated=False),
            route("/v1/profiles", ["GET"], self._list_profiles_v1),
            route("/v2/profiles", ["GET"], self._list_profiles),
            route("/v2/profiles/{profile_id:int}", ["GET"], self._get_profile),
            route("/v3/profiles/{profile_id:int}/quotes", ["POST"], self._create_quote),
            route("/v3/profiles/{profile_id:int}/quotes/{quote_id}", ["GET"], self._get_quote),
            route("/v3/profiles/{profile_id:int}/quotes/{quote_id}", ["PATCH"], self._patch_quote),
            route("/v1/account-requirements", ["GET"], self._route_requirements),
            route("/v1/quotes/{quote_id}/account-requirements", ["GET"], self._quote_requirements),
            route("/v1/accounts", ["POST"], self._create_recipient),
            route("/v1/accounts", ["GET"], self._list_recipients_v1),
            route("/v1/accounts/{account_id:int}", ["GET"], self._get_recipient_v1),
            route("/v1/accounts/{account_id:int}", ["DELETE"], self._delete_recipient_v1),
            route("/v2/accounts", ["GET"], self._list_recipients_v2),
            route("/v2/accounts/{account_id:int}", ["GET"], self._get_recipient_v2),
            route("/v2/accounts/{account_id:int}", ["DELETE"], self._delete_recipient_v2),
            route("/v1/transfers", ["POST"], self._create_transfer),
            route("/v1/transfers", ["GET"], self._list_transfers),
            route("/v1/transfers/{transfer_id:int}", ["GET"], self._get_transfer),
            route("/v1/transfers/{transfer_id:int}/cancel", ["PUT"], self._cancel_transfer),
            route("/v3/profiles/{profile_id:int}/transfers/{transfer_id:int}/payments", ["POST"], self._fund),
            route("/v1/simulation/transfers/{transfer_id:int}/{state}", ["GET"], self._simulate),
            route("/v3/profiles/{profile_id:int}/subscriptions", ["POST"], self._create_subscription),
            route("/v3/profiles/{profile_id:int}/subscriptions", ["GET"], self._list_subscriptions),
            route(
                "/v3/profiles/{profile_id:int}/subscriptions/{subscription_id}",
                ["GET"],
                self._get_subscription,
            ),
            route(
                "/v3/profiles/{profile_id:int}/subscriptions/{subscription_id}",
                ["DELETE"],
                self._delete_subscription,
            ),
        ]

    def control_routes(self) -> list[BaseRoute]:
        route = self._route
        return [
            route("/clock", ["POST"], self._advance_clock, authenticated=False),
            route("/transfers/{transfer_id:int}/state", ["POST"], self._control_move, authenticated=False),
            route("/webhooks", ["PUT"], self._configure_webhooks, authenticated=False),
        ]

    def fault_body(self, status: int, message: str) -> bytes:
        """Injected faults in Wise's system-error shape (contract section 8; a 429 body is undocumented)."""
        return json.dumps(spring_error(status, HTTPStatus(status).phrase, message, "").body).encode()

    def credentials(self) -> dict[str, Any]:
        return {
            "personal_token_prefix": PERSONAL_TOKEN_PREFIX,
            "example_token": PERSONAL_TOKEN_PREFIX + "demo",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "webhook_public_key_pem": WEBHOOK_PUBLIC_KEY_PEM,
        }

    def state(self) -> dict[str, Any]:
        with self._lock:
            now = self.now()
            users: dict[str, Any] = {}
            for user in self._users.values():
                profiles = [
                    self._profiles[user.business_profile_id],
                    self._profiles[user.personal_profile_id],
                ]
                users[str(user.id)] = {
                    "user_id": user.id,
                    "auth": user.auth,
                    "profiles": [self._profile_json(profile) for profile in profiles],
                    "recipients": [
                        self._recipient_v1(r) for r in self._recipients.values() if r.user_id == user.id
                    ],
                    "quotes": [quote_json(q, now) for q in self._quotes.values() if q.user_id == user.id],
                    "transfers": [
                        self._transfer_json(t) for t in self._transfers.values() if t.user_id == user.id
                    ],
                    "subscriptions": [
                        self._subscription_json(s)
                        for s in self._subscriptions.values()
                        if s.user_id == user.id
                    ],
                    "deliveries": [dict(d) for d in self._deliveries if d["user_id"] == user.id],
                    "calls": dict(self._calls.get(user.id, {})),
                }
            return {
                "now": _iso(now),
                "clock_offset_seconds": self._clock_offset.total_seconds(),
                "webhooks": {
                    "duplicates": self._duplicates,
                    "out_of_order": self._out_of_order,
                    "held_events": 0 if self._held_event is None else 1,
                },
                "users": users,
            }

    def now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    # ----------------------------------------------------------------- request plumbing

    def _route(
        self,
        path: str,
        methods: list[str],
        handler: Callable[[Call], Response],
        *,
        authenticated: bool = True,
    ) -> Route:
        template = re.sub(r":\w+}", "}", path)  # "/v3/profiles/{profile_id}/quotes", for the counts

        async def endpoint(request: Request) -> Response:
            raw_body = await request.body()
            # Handlers block (lock, webhook deliveries), so they run off the event loop.
            return await run_in_threadpool(self._handle, handler, request, raw_body, authenticated, template)

        return Route(path, endpoint, methods=methods)

    def _handle(
        self,
        handler: Callable[[Call], Response],
        request: Request,
        raw_body: bytes,
        authenticated: bool,
        template: str,
    ) -> Response:
        call = Call(request, raw_body)
        try:
            if authenticated:
                call.user = self._authenticate(request)
                with self._lock:
                    self._calls.setdefault(call.user.id, Counter())[f"{request.method} {template}"] += 1
            response = handler(call)
        except ApiError as error:
            response = JSONResponse(error.body, status_code=error.status, headers=error.headers)
        correlation_id = request.headers.get("X-External-Correlation-Id")
        if correlation_id:
            response.headers["X-External-Correlation-Id"] = correlation_id[:36]
        return response

    def _authenticate(self, request: Request) -> User:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise invalid_token("Full authentication is required to access this resource")
        with self._lock:
            oauth = self._oauth_tokens.get(token)
            if token.startswith(PERSONAL_TOKEN_PREFIX) and len(token) > len(PERSONAL_TOKEN_PREFIX):
                user = self._personal_user(token)
            elif oauth is None or oauth.revoked:
                raise invalid_token("Invalid access token")
            elif self.now() >= oauth.expires_at:
                raise invalid_token("Access token expired")
            else:
                user = self._users[oauth.user_id]
            if self.ctx.faults.revoke_token(self.name):
                if oauth is not None:
                    oauth.revoked = True
                raise invalid_token("Access token revoked")
            return user

    def _personal_user(self, token: str) -> User:
        user_id = self._personal_users.get(token)
        if user_id is None:
            user = self._new_user(token, "personal")
            self._personal_users[token] = user.id
            return user
        return self._users[user_id]

    def _new_user(self, seed_text: str, auth: str) -> User:
        user_id = _stable_id(f"{seed_text}:user", self._users)
        profile_ids = []
        for kind, country in (("BUSINESS", "GB"), ("PERSONAL", "US")):
            profile_id = _stable_id(f"{seed_text}:{kind}", self._profiles)
            public_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"wise-sandbox:{profile_id}"))
            self._profiles[profile_id] = Profile(profile_id, user_id, kind, public_id, country, self.now())
            profile_ids.append(profile_id)
        user = self._users[user_id] = User(user_id, auth, profile_ids[0], profile_ids[1])
        return user

    def _own_profile(self, call: Call, profile_id: int | None = None) -> Profile:
        """The caller's profile (from the path unless given), else 403."""
        profile_id = call.param("profile_id") if profile_id is None else profile_id
        profile = self._profiles.get(profile_id)
        if profile is None or profile.user_id != call.caller.id:
            raise forbidden("access.denied", f"You do not have access to profile {profile_id}.")
        return profile

    # ----------------------------------------------------------------- OAuth

    def _oauth_token(self, call: Call) -> Response:
        scheme, _, encoded = call.request.headers.get("Authorization", "").partition(" ")
        try:
            client_id, _, secret = b64decode(encoded).decode().partition(":")
        except ValueError:
            client_id = secret = ""
        if scheme.lower() != "basic" or (client_id, secret) != (CLIENT_ID, CLIENT_SECRET):
            body = {"error": "invalid_client", "error_description": "Bad client credentials"}
            return _json(body, 401)
        form = parse_qs(call.raw_body.decode(errors="replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "client_credentials":
            error = "invalid_request" if not grant_type else "unsupported_grant_type"
            description = f"Unsupported grant type: {grant_type}" if grant_type else "grant_type is required"
            return _json({"error": error, "error_description": description}, 400)
        token = OAUTH_TOKEN_PREFIX + uuid.uuid4().hex
        with self._lock:
            now = self.now()
            app_user = next((u for u in self._users.values() if u.auth == "oauth"), None)
            if app_user is None:
                app_user = self._new_user(f"oauth:{CLIENT_ID}", "oauth")
            expires_at = now + timedelta(seconds=OAUTH_TOKEN_SECONDS)
            self._oauth_tokens[token] = OAuthToken(app_user.id, expires_at)
        return _json(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": OAUTH_TOKEN_SECONDS,
                "expires_at": _iso(expires_at),
                "scope": "transfers",
                "created_at": _iso(now),
            }
        )

    # ----------------------------------------------------------------- profiles

    def _profile_json(self, profile: Profile) -> dict[str, Any]:
        address = self._address(profile)
        common = {
            "id": profile.id,
            "type": profile.type,
            "publicId": profile.public_id,
            "userId": profile.user_id,
            "address": address,
            "email": f"sandbox+{profile.user_id}@example.com",
            "createdAt": _iso(profile.created_at),
            "updatedAt": _iso(profile.created_at),
            "avatar": None,
            "currentState": "VISIBLE",
            "contactDetails": {
                "email": f"sandbox+{profile.user_id}@example.com",
                "phoneNumber": "+441234567890",
            },
        }
        if profile.type == "BUSINESS":
            name = f"Sandbox Trading {profile.user_id} Ltd"
            return {
                **common,
                "businessName": name,
                "registrationNumber": str(profile.id),
                "companyType": "LIMITED",
                "fullName": name,
            }
        return {**common, "firstName": "Sam", "lastName": "Sandbox", "fullName": "Sam Sandbox"}

    def _address(self, profile: Profile) -> dict[str, Any]:
        if profile.country == "GB":
            place = {"city": "London", "countryIso3Code": "gbr", "postCode": "EC1A 1BB", "stateCode": None}
        else:
            place = {"city": "New York", "countryIso3Code": "usa", "postCode": "10001", "stateCode": "NY"}
        return {
            "id": profile.id,
            "addressFirstLine": "1 Sandbox Street",
            "countryIso2Code": profile.country,
            **place,
        }

    def _profile_v1_json(self, profile: Profile) -> dict[str, Any]:
        """The legacy shape: lower-case type and a nested ``details`` (contract 3)."""
        if profile.type == "BUSINESS":
            details = {
                "name": f"Sandbox Trading {profile.user_id} Ltd",
                "registrationNumber": str(profile.id),
                "companyType": "LIMITED",
                "companyRole": "OWNER",
                "descriptionOfBusiness": "IT_SERVICES",
                "primaryAddress": profile.id,
                "webpage": None,
            }
        else:
            details = {
                "firstName": "Sam",
                "lastName": "Sandbox",
                "dateOfBirth": "1980-01-01",
                "phoneNumber": "+441234567890",
                "avatar": None,
                "primaryAddress": profile.id,
            }
        return {"id": profile.id, "type": profile.type.lower(), "details": details}

    def _user_profiles(self, user: User) -> list[Profile]:
        return [self._profiles[user.business_profile_id], self._profiles[user.personal_profile_id]]

    def _list_profiles(self, call: Call) -> Response:
        with self._lock:
            return _json([self._profile_json(p) for p in self._user_profiles(call.caller)])

    def _list_profiles_v1(self, call: Call) -> Response:
        with self._lock:
            return _json([self._profile_v1_json(p) for p in self._user_profiles(call.caller)])

    def _get_profile(self, call: Call) -> Response:
        with self._lock:
            return _json(self._profile_json(self._own_profile(call)))

    # ----------------------------------------------------------------- quotes

    def _create_quote(self, call: Call) -> Response:
        body = call.json()
        errors: list[FieldError] = []
        source, target = body.get("sourceCurrency"), body.get("targetCurrency")
        for path, currency in (("sourceCurrency", source), ("targetCurrency", target)):
            if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
                errors.append(FieldError("NOT_VALID", f"Please specify a valid {path}.", path))
            elif currency not in USD_RATES:
                route = f"{source}-{target}"
                errors.append(
                    FieldError(
                        "error.route.not.supported", f"We don't support {route} transfers.", path, [route]
                    )
                )
        source_amount, target_amount = body.get("sourceAmount"), body.get("targetAmount")
        if (source_amount is None) == (target_amount is None):
            message = "Please provide exactly one of sourceAmount and targetAmount."
            errors.append(FieldError("NOT_VALID", message, "sourceAmount"))
        amount_path = "sourceAmount" if source_amount is not None else "targetAmount"
        amount = source_amount if source_amount is not None else target_amount
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0
        ):
            errors.append(FieldError("NOT_VALID", "The amount must be a positive number.", amount_path))
        requested_pay_out = body.get("payOut") or "BANK_TRANSFER"
        if requested_pay_out not in PAY_OUTS:
            errors.append(FieldError("NOT_VALID", f"payOut must be one of {', '.join(PAY_OUTS)}.", "payOut"))
        # Both spellings appear in Wise's docs for the funding method (contract 4).
        pay_in = body.get("preferredPayIn", body.get("payIn"))
        if pay_in is not None and pay_in not in PAY_INS:
            errors.append(
                FieldError(
                    "NOT_VALID", f"preferredPayIn must be one of {', '.join(PAY_INS)}.", "preferredPayIn"
                )
            )
        target_account = body.get("targetAccount")
        if target_account is not None and (
            isinstance(target_account, bool) or not isinstance(target_account, int)
        ):
            errors.append(FieldError("NOT_VALID", "targetAccount must be a recipient id.", "targetAccount"))
        if errors:
            raise validation_failed(errors)
        with self._lock:
            profile = self._own_profile(call)
            recipient = None
            if target_account is not None:
                recipient = self._recipient_for_quote(call.caller, target_account, target, profile.id)
            quote = Quote(
                id=str(uuid.uuid4()),
                user_id=call.caller.id,
                profile_id=profile.id,
                source_currency=source,
                target_currency=target,
                provided_amount_type="SOURCE" if source_amount is not None else "TARGET",
                provided_amount=float(amount),
                requested_pay_out=requested_pay_out,
                pay_out=route_pay_out(requested_pay_out, target, recipient.country if recipient else None),
                preferred_pay_in=pay_in,
                rate=exchange_rate(source, target),
                created_at=self.now(),
                target_account=target_account,
                payment_metadata=body.get("paymentMetadata"),
                pricing_configuration=body.get("pricingConfiguration"),
            )
            if quote.selected_option()["disabled"]:
                raise invalid_field(amount_path, "The amount is too low to cover the fees.")
            self._quotes[quote.id] = quote
            return _json(quote_json(quote, self.now()))

    def _recipient_for_quote(self, user: User, account_id: int, currency: str, profile_id: int) -> Recipient:
        """A recipient a quote or transfer may pay: the caller's, active, same profile and currency."""
        recipient = self._recipients.get(account_id)
        if recipient is None or recipient.user_id != user.id:
            raise invalid_field("targetAccount", f"Recipient {account_id} not found.")
        if not recipient.active:
            raise invalid_field(
                "targetAccount", f"Recipient {account_id} is not active.", code="RECIPIENT_INACTIVE"
            )
        if recipient.profile_id != profile_id:
            raise invalid_field("targetAccount", f"Recipient {account_id} belongs to another profile.")
        if recipient.currency != currency:
            message = f"Recipient {account_id} is in {recipient.currency}, the quote pays out {currency}."
            raise invalid_field("targetAccount", message)
        return recipient

    def _own_quote(self, call: Call) -> Quote:
        quote = self._quotes.get(call.param("quote_id"))
        now = self.now()
        if (
            quote is None
            or quote.user_id != call.caller.id
            or quote.profile_id != call.param("profile_id")
            or (quote.current_status(now) == "EXPIRED" and now > quote.expires_at + EXPIRED_QUOTE_RETENTION)
        ):
            raise not_found("Quote not found", call.path)
        return quote

    def _get_quote(self, call: Call) -> Response:
        with self._lock:
            self._own_profile(call)
            return _json(quote_json(self._own_quote(call), self.now()))

    def _patch_quote(self, call: Call) -> Response:
        content_type = call.request.headers.get("Content-Type", "")
        if not content_type.startswith("application/merge-patch+json"):
            raise spring_error(415, "Unsupported Media Type", "Use application/merge-patch+json", call.path)
        body = call.json()
        with self._lock:
            self._own_profile(call)
            quote = self._own_quote(call)
            status = quote.current_status(self.now())
            if status != "PENDING":
                raise invalid_field(
                    "quote", f"A quote in status {status} cannot be changed.", code="QUOTE_NOT_PENDING"
                )
            requested_pay_out = quote.requested_pay_out
            if "payOut" in body:
                requested_pay_out = body["payOut"] or "BANK_TRANSFER"
                if requested_pay_out not in PAY_OUTS:
                    raise invalid_field("payOut", f"payOut must be one of {', '.join(PAY_OUTS)}.")
            target_account = body.get("targetAccount", quote.target_account)
            recipient = None
            if target_account is not None:
                if isinstance(target_account, bool) or not isinstance(target_account, int):
                    raise invalid_field("targetAccount", "targetAccount must be a recipient id.")
                recipient = self._recipient_for_quote(
                    call.caller, target_account, quote.target_currency, quote.profile_id
                )
            # Merge-patch: a key set to null removes the value.
            for key, attribute in (
                ("paymentMetadata", "payment_metadata"),
                ("pricingConfiguration", "pricing_configuration"),
            ):
                if key in body:
                    setattr(quote, attribute, body[key])
            quote.target_account = target_account
            quote.requested_pay_out = requested_pay_out
            # Re-check the route: the recipient's country can change the pay-out (contract 4).
            quote.pay_out = route_pay_out(
                requested_pay_out, quote.target_currency, recipient.country if recipient else None
            )
            return _json(quote_json(quote, self.now()))

    # ----------------------------------------------------------------- recipients

    def _route_requirements(self, call: Call) -> Response:
        """``GET /v1/account-requirements?source=&target=&sourceAmount=`` (contract 5.4)."""
        source, target = call.query("source"), call.query("target")
        errors = [
            FieldError("NOT_VALID", f"Please specify a valid {name} currency.", name)
            for name, value in (("source", source), ("target", target))
            if not value or not re.fullmatch(r"[A-Z]{3}", value)
        ]
        try:
            amount = float(call.query("sourceAmount") or "")
        except ValueError:
            amount = 0.0
        if not amount > 0:
            errors.append(FieldError("NOT_VALID", "sourceAmount must be a positive number.", "sourceAmount"))
        if errors:
            raise validation_failed(errors, status=400)
        return self._requirements(call, source or "", target or "")

    def _quote_requirements(self, call: Call) -> Response:
        """``GET /v1/quotes/{quoteId}/account-requirements``: the quote's route."""
        with self._lock:
            quote = self._quotes.get(call.param("quote_id"))
            if quote is None or quote.user_id != call.caller.id:
                raise not_found("Quote not found", call.path)
            source, target = quote.source_currency, quote.target_currency
        return self._requirements(call, source, target)

    def _requirements(self, call: Call, source: str, target: str) -> Response:
        route = f"{source}-{target}"
        if source not in USD_RATES or target not in CURRENCY_TYPES:
            raise validation_failed(
                [
                    FieldError(
                        "error.route.not.supported", f"We don't support {route} transfers.", "target", [route]
                    )
                ]
            )
        # v1.1 (Accept-Minor-Version: 1) adds the name field; addressRequired=true forces the address.
        names = call.request.headers.get("Accept-Minor-Version") == "1"
        address = (call.query("addressRequired") or "").lower() == "true"
        return _json(requirements_json(source, target, address=address, names=names))

    def _recipient_v1(self, recipient: Recipient) -> dict[str, Any]:
        return v1_json(recipient, self._profiles[recipient.profile_id].type == "BUSINESS")

    def _create_recipient(self, call: Call) -> Response:
        fields, errors = validate_create(call.json())
        if fields is None:
            raise validation_failed(errors)
        with self._lock:
            self._own_profile(call, fields.profile_id)
            recipient = Recipient(
                id=self._next_recipient_id,
                user_id=call.caller.id,
                profile_id=fields.profile_id,
                currency=fields.currency,
                type=fields.type,
                account_holder_name=fields.account_holder_name,
                legal_type=fields.legal_type,
                owned_by_customer=fields.owned_by_customer,
                country=fields.country,
                details=fields.details,
            )
            self._next_recipient_id += 1
            self._recipients[recipient.id] = recipient
            return _json(self._recipient_v1(recipient))

    def _own_recipient(self, call: Call) -> Recipient:
        recipient = self._recipients.get(call.param("account_id"))
        if recipient is None or recipient.user_id != call.caller.id:
            raise not_found("Recipient not found", call.path)
        return recipient

    def _list_recipients_v1(self, call: Call) -> Response:
        profile_id = call.int_query("profile")
        currency = call.query("currency")
        with self._lock:
            if profile_id is not None:
                self._own_profile(call, profile_id)
            found = [
                self._recipient_v1(r)
                for r in self._recipients.values()
                if r.user_id == call.caller.id
                and r.active
                and (profile_id is None or r.profile_id == profile_id)
                and (not currency or r.currency == currency)
            ]
            return _json(found)

    def _get_recipient_v1(self, call: Call) -> Response:
        with self._lock:
            return _json(self._recipient_v1(self._own_recipient(call)))

    def _get_recipient_v2(self, call: Call) -> Response:
        with self._lock:
            return _json(v2_json(self._own_recipient(call)))

    def _deactivate(self, call: Call) -> Recipient:
        recipient = self._own_recipient(call)
        if not recipient.active:
            # Wise answers 403 for an inactive recipient; it cannot be reactivated (contract 5.3).
            raise forbidden("recipient.inactive", f"Recipient {recipient.id} is already inactive.")
        recipient.active = False
        return recipient

    def _delete_recipient_v1(self, call: Call) -> Response:
        with self._lock:
            self._deactivate(call)
        return Response(status_code=200)

    def _delete_recipient_v2(self, call: Call) -> Response:
        with self._lock:
            return _json(v2_json(self._deactivate(call)))

    def _list_recipients_v2(self, call: Call) -> Response:
        profile_id = call.int_query("profileId", call.int_query("profile"))
        if profile_id is None:
            raise invalid_field("profileId", "profileId is required.", status=400)
        size = min(max(call.int_query("size", MAX_RECIPIENT_PAGE) or 1, 1), MAX_RECIPIENT_PAGE)
        seek = call.int_query("seekPosition")
        sort = call.query("sort") or "id,asc"
        if sort not in ("id,asc", "id,desc"):
            raise invalid_field("sort", "sort must be id,asc or id,desc.", status=400)
        descending = sort == "id,desc"
        active = (call.query("active") or "true").lower() == "true"
        owned = call.query("ownedByCustomer")
        wanted_type = (call.query("type") or "").lower()
        currency = call.query("currency")
        with self._lock:
            self._own_profile(call, profile_id)
            matches = sorted(
                (
                    r
                    for r in self._recipients.values()
                    if r.profile_id == profile_id
                    and r.active == active
                    and (not currency or r.currency == currency)
                    and (not wanted_type or wanted_type in (r.type, v2_type_name(r.type).lower()))
                    and (owned is None or r.owned_by_customer == (owned.lower() == "true"))
                    and (seek is None or (r.id < seek if descending else r.id > seek))
                ),
                key=lambda r: r.id,
                reverse=descending,
            )
            page = matches[:size]
            return _json(
                {
                    "content": [v2_json(r) for r in page],
                    "sort": {"empty": False, "sorted": True, "unsorted": False},
                    "size": size,
                    "seekPositionForNext": page[-1].id if len(matches) > size else None,
                    "seekPositionForCurrent": seek,
                }
            )

    # ----------------------------------------------------------------- transfers

    def _transfer_json(self, transfer: Transfer) -> dict[str, Any]:
        business = self._profiles[transfer.profile_id].type == "BUSINESS"
        return {
            "id": transfer.id,
            "user": transfer.user_id,
            "targetAccount": transfer.target_account,
            "sourceAccount": transfer.source_account,
            "quote": None,
            "quoteUuid": transfer.quote_id,
            "status": transfer.status,
            "reference": transfer.reference,
            "rate": transfer.rate,
            # Wise's own format: no time zone, no "T" (contract 6.2).
            "created": transfer.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "business": transfer.profile_id if business else None,
            "transferRequest": None,
            "details": {"reference": transfer.reference},
            "hasActiveIssues": False,
            "sourceCurrency": transfer.source_currency,
            "sourceValue": transfer.source_value,
            "targetCurrency": transfer.target_currency,
            "targetValue": transfer.target_value,
            "customerTransactionId": transfer.customer_transaction_id,
            "payinSessionId": None,
        }

    def _create_transfer(self, call: Call) -> Response:
        body = call.json()
        errors: list[FieldError] = []
        target_account = body.get("targetAccount")
        if isinstance(target_account, bool) or not isinstance(target_account, int):
            errors.append(FieldError("NOT_VALID", "targetAccount must be a recipient id.", "targetAccount"))
        quote_id = body.get("quoteUuid")
        if not isinstance(quote_id, str) or not quote_id:
            errors.append(FieldError("NOT_VALID", "quoteUuid is required.", "quoteUuid"))
        customer_id = body.get("customerTransactionId")
        if not isinstance(customer_id, str) or not _UUID.match(customer_id):
            errors.append(
                FieldError("NOT_VALID", "customerTransactionId must be a UUID.", "customerTransactionId")
            )
        details = body.get("details") or {}
        reference = details.get("reference") if isinstance(details, dict) else None
        if not isinstance(details, dict) or not isinstance(reference, str | None):
            errors.append(FieldError("NOT_VALID", "details.reference must be a string.", "details.reference"))
        source_account = body.get("sourceAccount")
        if source_account is not None and (
            isinstance(source_account, bool) or not isinstance(source_account, int)
        ):
            errors.append(
                FieldError("NOT_VALID", "sourceAccount must be an account id or null.", "sourceAccount")
            )
        if errors:
            raise validation_failed(errors)
        with self._lock:
            existing = self._transfer_by_customer_id.get((call.caller.id, customer_id))
            if existing is not None:
                # A repeat of the same customerTransactionId is the same transfer (contract 6.1).
                return _json(self._transfer_json(self._transfers[existing]))
            quote = self._quotes.get(quote_id)
            if quote is None or quote.user_id != call.caller.id:
                raise invalid_field("quoteUuid", f"Quote {quote_id} not found.")
            if quote.id in self._transfer_by_quote:
                raise invalid_field(
                    "quoteUuid", "This quote has already been used for a transfer.", code="QUOTE_USED"
                )
            if quote.current_status(self.now()) == "EXPIRED":
                raise invalid_field(
                    "quoteUuid", "This quote has expired; create a new one.", code="QUOTE_EXPIRED"
                )
            if quote.target_account not in (None, target_account):
                raise invalid_field("targetAccount", f"The quote is for recipient {quote.target_account}.")
            recipient = self._recipient_for_quote(
                call.caller, target_account, quote.target_currency, quote.profile_id
            )
            quote.target_account = recipient.id
            quote.pay_out = route_pay_out(quote.requested_pay_out, quote.target_currency, recipient.country)
            selected = quote.selected_option()
            transfer = Transfer(
                id=self._next_transfer_id,
                user_id=call.caller.id,
                profile_id=quote.profile_id,
                target_account=recipient.id,
                source_account=source_account,
                quote_id=quote.id,
                status="incoming_payment_waiting",
                rate=quote.rate,
                created_at=self.now(),
                reference=reference,
                customer_transaction_id=customer_id,
                source_currency=quote.source_currency,
                source_value=selected["sourceAmount"],
                target_currency=quote.target_currency,
                target_value=selected["targetAmount"],
            )
            self._next_transfer_id += 1
            self._transfers[transfer.id] = transfer
            self._transfer_by_quote[quote.id] = transfer.id
            self._transfer_by_customer_id[(call.caller.id, customer_id)] = transfer.id
            quote.status = "ACCEPTED"
            event = self._event(transfer, None, None)
            answer = self._transfer_json(transfer)
        self._emit([event])
        return _json(answer)

    def _own_transfer(self, call: Call) -> Transfer:
        transfer = self._transfers.get(call.param("transfer_id"))
        if transfer is None or transfer.user_id != call.caller.id:
            raise not_found("Transfer not found", call.path)
        return transfer

    def _get_transfer(self, call: Call) -> Response:
        with self._lock:
            return _json(self._transfer_json(self._own_transfer(call)))

    def _list_transfers(self, call: Call) -> Response:
        profile_id = call.int_query("profile", call.caller.personal_profile_id)
        statuses = {s for s in (call.query("status") or "").split(",") if s}
        source_currency, target_currency = call.query("sourceCurrency"), call.query("targetCurrency")
        start = self._moment_query(call, "createdDateStart")
        end = self._moment_query(call, "createdDateEnd", end_of_day=True)
        limit = min(max(call.int_query("limit", MAX_TRANSFER_PAGE) or 1, 1), MAX_TRANSFER_PAGE)
        offset = max(call.int_query("offset", 0) or 0, 0)
        with self._lock:
            self._own_profile(call, profile_id)
            matches = [
                t
                for t in sorted(self._transfers.values(), key=lambda t: t.id, reverse=True)
                if t.profile_id == profile_id
                and (not statuses or t.status in statuses)
                and (not source_currency or t.source_currency == source_currency)
                and (not target_currency or t.target_currency == target_currency)
                and (start is None or t.created_at >= start)
                and (end is None or t.created_at < end)
            ]
            return _json([self._transfer_json(t) for t in matches[offset : offset + limit]])

    @staticmethod
    def _moment_query(call: Call, name: str, end_of_day: bool = False) -> datetime | None:
        """An ISO date or date-time parameter; a bare end date includes that whole day."""
        value = call.query(name)
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise invalid_field(name, f"{name} must be an ISO 8601 date or date-time.", status=400) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if end_of_day and len(value) == 10:
            moment += timedelta(days=1)
        return moment

    def _cancel_transfer(self, call: Call) -> Response:
        with self._lock:
            transfer = self._own_transfer(call)
            event = self._move(transfer, "cancelled", None)
            answer = self._transfer_json(transfer)
        self._emit([event])
        return _json(answer)

    def _fund(self, call: Call) -> Response:
        body = call.json()
        with self._lock:
            profile = self._own_profile(call)
            transfer = self._own_transfer(call)
            if transfer.profile_id != profile.id:
                raise not_found("Transfer not found", call.path)
            if call.caller.auth == "personal" and profile.country not in PERSONAL_TOKEN_FUNDING_COUNTRIES:
                message = (
                    "Funding transfers is not available with a personal API token for a profile based "
                    f"in {profile.country} (PSD2)."
                )
                raise forbidden("personal.token.funding.not.allowed", message)
            if body.get("type") != "BALANCE":
                raise invalid_field("type", "Only BALANCE funding is supported.")
            event = self._move(transfer, "processing", None)
            self._quotes[transfer.quote_id].status = "FUNDED"
        self._emit([event])
        return _json({"type": "BALANCE", "status": "COMPLETED", "errorCode": None})

    def _simulate(self, call: Call) -> Response:
        state = call.param("state")
        if state not in SIMULATION_STATES:
            raise invalid_field("state", f"Simulation supports only: {', '.join(SIMULATION_STATES)}.")
        with self._lock:
            transfer = self._own_transfer(call)
            event = self._move(transfer, state, None)
            answer = self._transfer_json(transfer)
        self._emit([event])
        return _json(answer)

    def _move(self, transfer: Transfer, new_status: str, occurred_at: str | None) -> webhooks.StateChange:
        """Apply one state move (caller holds the lock) and return the event to deliver."""
        if new_status not in STATUSES:
            raise invalid_field("status", f"Unknown transfer status {new_status!r}.")
        if not can_move(transfer.status, new_status):
            message = f"A transfer cannot move from {transfer.status} to {new_status}."
            raise validation_failed([FieldError("transfer.state.invalid", message, "status")], status=409)
        previous, transfer.status = transfer.status, new_status
        return self._event(transfer, previous, occurred_at)

    def _event(
        self, transfer: Transfer, previous: str | None, occurred_at: str | None
    ) -> webhooks.StateChange:
        return webhooks.StateChange(
            transfer_id=transfer.id,
            profile_id=transfer.profile_id,
            account_id=transfer.target_account,
            current_state=transfer.status,
            previous_state=previous,
            occurred_at=occurred_at or _iso(self.now(), "milliseconds"),
        )

    # ----------------------------------------------------------------- webhooks

    def _subscription_json(self, subscription: Subscription) -> dict[str, Any]:
        return {
            "id": subscription.id,
            "name": subscription.name,
            "delivery": {"version": subscription.version, "url": subscription.url},
            "trigger_on": subscription.trigger_on,
            "scope": {"domain": "profile", "id": str(subscription.profile_id)},
            "created_by": {"type": "user", "id": str(subscription.user_id)},
            "created_at": _iso(subscription.created_at),
        }

    def _create_subscription(self, call: Call) -> Response:
        body = call.json()
        errors: list[FieldError] = []
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append(FieldError("NOT_VALID", "name is required.", "name"))
        trigger_on = body.get("trigger_on")
        if trigger_on not in webhooks.EVENT_TYPES:
            errors.append(FieldError("NOT_VALID", f"Unknown event type {trigger_on!r}.", "trigger_on"))
        delivery = body.get("delivery") if isinstance(body.get("delivery"), dict) else {}
        version, url = delivery.get("version"), delivery.get("url")
        if version not in webhooks.SCHEMA_VERSIONS:
            supported = ", ".join(webhooks.SCHEMA_VERSIONS)
            errors.append(
                FieldError("NOT_VALID", f"delivery.version must be one of {supported}.", "delivery.version")
            )
        problem = webhooks.callback_url_problem(url)
        if problem:
            errors.append(FieldError("INVALID_CALLBACK_URL", problem, "delivery.url"))
        if errors:
            raise validation_failed(errors)
        with self._lock:
            profile = self._own_profile(call)
            subscription = Subscription(
                str(uuid.uuid4()), call.caller.id, profile.id, name, trigger_on, url, version, self.now()
            )
        # The test notification goes out before the subscription exists, and without the lock.
        test_event = webhooks.StateChange(
            0, profile.id, 0, "processing", "incoming_payment_waiting", self._now_ms()
        )
        body_bytes = webhooks.state_change_body(
            test_event, subscription.id, version, self._now_ms(), trigger_on
        )
        with webhooks.new_client() as client:
            attempt = webhooks.deliver(client, url, body_bytes, test=True)
        record = self._delivery_record(subscription, test_event, body_bytes, attempt, test=True)
        with self._lock:
            self._deliveries.append(record)
            if attempt.status_code is None or not 200 <= attempt.status_code < 300:
                outcome = attempt.error or f"HTTP {attempt.status_code}"
                message = f"The test notification to {url} was not accepted ({outcome})."
                raise invalid_field("delivery.url", message, code="INVALID_CALLBACK_URL")
            self._subscriptions[subscription.id] = subscription
            return _json(self._subscription_json(subscription))

    def _own_subscription(self, call: Call) -> Subscription:
        profile = self._own_profile(call)
        subscription = self._subscriptions.get(call.param("subscription_id"))
        if subscription is None or subscription.profile_id != profile.id:
            raise not_found("Subscription not found", call.path)
        return subscription

    def _list_subscriptions(self, call: Call) -> Response:
        with self._lock:
            profile = self._own_profile(call)
            found = [s for s in self._subscriptions.values() if s.profile_id == profile.id]
            return _json([self._subscription_json(s) for s in found])

    def _get_subscription(self, call: Call) -> Response:
        with self._lock:
            return _json(self._subscription_json(self._own_subscription(call)))

    def _delete_subscription(self, call: Call) -> Response:
        with self._lock:
            del self._subscriptions[self._own_subscription(call).id]
        return Response(status_code=204)

    def _now_ms(self) -> str:
        return _iso(self.now(), "milliseconds")

    def _emit(self, events: list[webhooks.StateChange]) -> list[dict[str, Any]]:
        """Deliver events to every subscription of their profile, honouring the webhook toggles."""
        with self._lock:
            ready: list[webhooks.StateChange] = []
            for event in events:
                if not self._out_of_order:
                    ready.append(event)
                elif self._held_event is None:
                    self._held_event = event
                else:
                    # The held event goes out right after the newer one.
                    ready += [event, self._held_event]
                    self._held_event = None
            copies = 2 if self._duplicates else 1
            plan = [
                (event, subscription)
                for event in ready
                for subscription in self._subscriptions.values()
                if subscription.profile_id == event.profile_id
                and subscription.trigger_on == webhooks.STATE_CHANGE
            ]
        return self._send(plan, copies)

    def _send(
        self, plan: list[tuple[webhooks.StateChange, Subscription]], copies: int
    ) -> list[dict[str, Any]]:
        """Network I/O happens here, outside the lock; the results are recorded afterwards."""
        if not plan:
            return []
        records = []
        with webhooks.new_client() as client:
            for event, subscription in plan:
                body = webhooks.state_change_body(
                    event, subscription.id, subscription.version, self._now_ms()
                )
                for _ in range(copies):
                    attempt = webhooks.deliver(client, subscription.url, body)
                    records.append(self._delivery_record(subscription, event, body, attempt, test=False))
        with self._lock:
            self._deliveries.extend(records)
        return records

    @staticmethod
    def _delivery_record(
        subscription: Subscription,
        event: webhooks.StateChange,
        body: bytes,
        attempt: webhooks.Attempt,
        test: bool,
    ) -> dict[str, Any]:
        return {
            "delivery_id": attempt.delivery_id,
            "subscription_id": subscription.id,
            "user_id": subscription.user_id,
            "profile_id": subscription.profile_id,
            "url": subscription.url,
            "event_type": subscription.trigger_on if test else webhooks.STATE_CHANGE,
            "test": test,
            "transfer_id": event.transfer_id,
            "current_state": event.current_state,
            "previous_state": event.previous_state,
            "status_code": attempt.status_code,
            "delivered": attempt.status_code == 200,
            "error": attempt.error,
            "body": body.decode(),
            "signature": webhooks.sign(body),
        }

    # ----------------------------------------------------------------- control routes

    def _advance_clock(self, call: Call) -> Response:
        seconds = call.json().get("advance_seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise invalid_field("advance_seconds", "advance_seconds must be a number >= 0.", status=400)
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)
            return _json({"now": _iso(self.now()), "offset_seconds": self._clock_offset.total_seconds()})

    def _control_move(self, call: Call) -> Response:
        body = call.json()
        occurred_at = body.get("occurred_at")
        if occurred_at is not None and not isinstance(occurred_at, str):
            raise invalid_field("occurred_at", "occurred_at must be an ISO 8601 string.", status=400)
        with self._lock:
            transfer = self._transfers.get(call.param("transfer_id"))
            if transfer is None:
                raise not_found("Transfer not found", call.path)
            event = self._move(transfer, str(body.get("status")), occurred_at)
            answer = self._transfer_json(transfer)
        deliveries = self._emit([event])
        return _json({"transfer": answer, "deliveries": deliveries})

    def _configure_webhooks(self, call: Call) -> Response:
        body = call.json()
        for key in ("duplicates", "out_of_order"):
            if key in body and not isinstance(body[key], bool):
                raise invalid_field(key, f"{key} must be true or false.", status=400)
        with self._lock:
            self._duplicates = body.get("duplicates", self._duplicates)
            self._out_of_order = body.get("out_of_order", self._out_of_order)
            held = None
            if not self._out_of_order:
                held, self._held_event = self._held_event, None
        flushed = self._emit([held]) if held is not None else []
        with self._lock:
            settings = {"duplicates": self._duplicates, "out_of_order": self._out_of_order}
        return _json({**settings, "deliveries": flushed})
