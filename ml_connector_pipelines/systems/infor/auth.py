"""OAuth 2.0 for the ION API gateway: resource owner password grant with a service account.

`IonApiAuth` is the `AuthHook` the gateway `HttpClient` calls before each request (contracts/infor.md §2):
- it fetches a token with `grant_type=password` (username = saak unchanged, password = sask),
- renews it shortly before `expires_in` runs out: with the refresh token when one was issued, else
  with a new password grant, and falls back to the password grant when the refresh is refused,
- re-authenticates when the gateway answers 401 (the HttpClient then retries the call once),
- revokes its token on close().
Token requests use the same HttpClient layer (retries, logging without bodies), without an auth hook.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Literal

import httpx

from ...core.errors import AuthenticationFailed, HttpError, TargetRejected
from ...core.http import HttpClient, RetryPolicy
from ...core.redact import register_secret
from .ionapi import IonApi

log = logging.getLogger(__name__)

ClientAuth = Literal["form", "basic"]

# [I] The SDK README says tokens live 2 hours; used only when a token response omits expires_in.
DEFAULT_EXPIRES_IN = 7200.0
# [I] Infor publishes no default quota; a tenant's quota policy can reject many calls in a row, so the
# gateway gets more attempts than the default before a run gives up.
GATEWAY_RETRY = RetryPolicy(max_attempts=10, max_total=300.0)
# Renew this long before expiry, but never more than a tenth of the lifetime (short-lived tokens).
REFRESH_MARGIN_SECONDS = 60.0


class IonApiAuth:
    """Bearer tokens for one `.ionapi` app. Thread-safe; one instance per gateway HttpClient."""

    def __init__(
        self,
        ionapi: IonApi,
        *,
        client_auth: ClientAuth = "form",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if client_auth not in ("form", "basic"):
            raise ValueError(f"client_auth must be 'form' or 'basic', not {client_auth!r}")
        self._ionapi = ionapi
        self._client_auth = client_auth
        # pu ends with "/" (validated), so pu[:-1] + "/" + ot is exactly the token URL pu + ot.
        self.http = HttpClient(
            "infor",
            ionapi.provider_url.rstrip("/"),
            credential_id=f"{ionapi.tenant}:oauth",
            retry=GATEWAY_RETRY,
            transport=transport,
        )
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._renew_at = 0.0  # time.monotonic() after which the access token is renewed

    # AuthHook ---------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._access_token is None or time.monotonic() >= self._renew_at:
                self._renew()
            return {"Authorization": f"Bearer {self._access_token}"}

    def reauthenticate(self) -> None:
        """The gateway said 401: the token was revoked or expired early. Get a new one now."""
        with self._lock:
            self._access_token = None
            self._renew()

    # Lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Revoke the grant (the refresh token revokes its access token too), then close."""
        with self._lock:
            token, hint = (
                (self._refresh_token, "refresh_token")
                if self._refresh_token
                else (self._access_token, "access_token")
            )
            self._access_token = self._refresh_token = None
            if token:
                try:
                    self.http.post(
                        "/" + self._ionapi.revoke_path,
                        data={"token": token, "token_type_hint": hint},
                        headers=self._basic_header(),
                        idempotent=True,
                    )
                except HttpError as exc:
                    # Revocation is a courtesy: the token expires anyway. Never fail a run on it.
                    log.warning("infor token revocation failed: %s", exc)
            self.http.close()

    # Internals --------------------------------------------------------------------------------

    def _renew(self) -> None:
        if self._refresh_token:
            try:
                self._token_request({"grant_type": "refresh_token", "refresh_token": self._refresh_token})
                return
            except (TargetRejected, AuthenticationFailed) as exc:
                # invalid_grant and friends (400/401): the refresh token is expired or revoked.
                # The body's error code is not visible here, so any refusal falls back.
                log.info("infor refresh grant refused (%s); using the password grant", exc.status)
                self._refresh_token = None
        self._token_request(
            {
                "grant_type": "password",
                "username": self._ionapi.username,
                "password": self._ionapi.service_account_secret,
            }
        )

    def _token_request(self, form: dict[str, str]) -> None:
        headers: dict[str, str] = {}
        if self._client_auth == "basic":
            headers = self._basic_header()
        else:
            form = {**form, "client_id": self._ionapi.client_id, "client_secret": self._ionapi.client_secret}
        # Asking for a token twice is harmless, so timeouts may be retried.
        response = self.http.post("/" + self._ionapi.token_path, data=form, headers=headers, idempotent=True)
        body = response.json()
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
        self._access_token = body["access_token"]
        # Refresh tokens are optional per authorized app; a response without one keeps none.
        self._refresh_token = body.get("refresh_token") or None
        # Bearer tokens are credentials too: mask them in any log line from now on.
        register_secret(self._access_token)
        if self._refresh_token:
            register_secret(self._refresh_token)
        margin = min(REFRESH_MARGIN_SECONDS, expires_in / 10)
        self._renew_at = time.monotonic() + expires_in - margin

    def _basic_header(self) -> dict[str, str]:
        pair = f"{self._ionapi.client_id}:{self._ionapi.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
