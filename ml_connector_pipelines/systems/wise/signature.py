"""Wise webhook signatures: RSA-SHA256 (PKCS#1 v1.5) over the raw body, base64 in X-Signature-SHA256.

Wise signs with its own private key, one per environment; the public keys below are the ones Wise
publishes (contracts/wise.md §7.4). A simulator signs with a key of its own, so every tenant can
add its own PEM keys to these.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ml_connector_pipelines.core.webhooks import InvalidWebhook, UnknownTenant, VerifiedEvent

WISE_LIVE_PUBLIC_KEY_PEM = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvO8vXV+JksBzZAY6GhSO
XdoTCfhXaaiZ+qAbtaDBiu2AGkGVpmEygFmWP4Li9m5+Ni85BhVvZOodM9epgW3F
bA5Q1SexvAF1PPjX4JpMstak/QhAgl1qMSqEevL8cmUeTgcMuVWCJmlge9h7B1CS
D4rtlimGZozG39rUBDg6Qt2K+P4wBfLblL0k4C4YUdLnpGYEDIth+i8XsRpFlogx
CAFyH9+knYsDbR43UJ9shtc42Ybd40Afihj8KnYKXzchyQ42aC8aZ/h5hyZ28yVy
Oj3Vos0VdBIs/gAyJ/4yyQFCXYte64I7ssrlbGRaco4nKF3HmaNhxwyKyJafz19e
HwIDAQAB
-----END PUBLIC KEY-----
"""

WISE_SANDBOX_PUBLIC_KEY_PEM = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwpb91cEYuyJNQepZAVfP
ZIlPZfNUefH+n6w9SW3fykqKu938cR7WadQv87oF2VuT+fDt7kqeRziTmPSUhqPU
ys/V2Q1rlfJuXbE+Gga37t7zwd0egQ+KyOEHQOpcTwKmtZ81ieGHynAQzsn1We3j
wt760MsCPJ7GMT141ByQM+yW1Bx+4SG3IGjXWyqOWrcXsxAvIXkpUD/jK/L958Cg
nZEgz0BSEh0QxYLITnW1lLokSx/dTianWPFEhMC9BgijempgNXHNfcVirg1lPSyg
z7KqoKUN0oHqWLr2U1A+7kqrl6O2nx3CKs1bj1hToT1+p4kcMoHXA7kA+VBLUpEs
VwIDAQAB
-----END PUBLIC KEY-----
"""

SIGNATURE_HEADER = "x-signature-sha256"
TEST_NOTIFICATION_HEADER = "x-test-notification"


@lru_cache(maxsize=64)
def _load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Wise webhook keys are RSA public keys")
    return key


def verify_wise_signature(body: bytes, signature_b64: str, public_keys_pem: list[str]) -> bool:
    """True when any of the keys verifies the signature over exactly these bytes."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    for pem in public_keys_pem:
        try:
            _load_public_key(pem).verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


def wise_event_id(tenant: str, event: Mapping[str, object]) -> str:
    """A stable id for one event, the same on every delivery attempt.

    X-Delivery-Id changes per attempt and Wise payloads carry no event id, so the id is a hash of
    what makes the event itself: its type, the resource, the state it reports and when it happened.
    The tenant is part of it because two tenants may share one Wise account and both get the event.
    """
    data = event.get("data")
    data = data if isinstance(data, Mapping) else {}
    resource = data.get("resource")
    resource = resource if isinstance(resource, Mapping) else {}
    identity = [
        tenant,
        event.get("event_type"),
        resource.get("type"),
        resource.get("id"),
        data.get("current_state"),
        data.get("occurred_at"),
    ]
    return hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()


class WiseWebhookVerifier:
    """The webhook receiver's verifier for source ``wise``.

    ``public_keys_for_tenant(tenant)`` returns the PEM keys that tenant accepts (for example the
    live key, or a sandbox simulator's key); an empty list means the tenant is unknown.

    Wise signs every customer's events with the same key, so a valid signature proves only that the
    event came from Wise, not that it concerns this tenant: a customer of Wise could post its own
    (genuine) events to another tenant's URL. ``profile_for_tenant(tenant)`` returns the Wise profile
    id the tenant works with; an event about a resource of another profile is rejected at the door
    (400, nothing stored). Two tenants that share one Wise profile both accept its events.
    """

    def __init__(
        self,
        public_keys_for_tenant: Callable[[str], list[str]],
        profile_for_tenant: Callable[[str], int | None] | None = None,
    ) -> None:
        self._public_keys_for_tenant = public_keys_for_tenant
        self._profile_for_tenant = profile_for_tenant

    def __call__(self, tenant: str, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        keys = self._public_keys_for_tenant(tenant)
        if not keys:
            raise UnknownTenant(f"no Wise webhook key for tenant {tenant!r}")
        lowered = {name.lower(): value for name, value in headers.items()}
        signature = lowered.get(SIGNATURE_HEADER)
        if not signature:
            raise InvalidWebhook("missing X-Signature-SHA256")
        if not verify_wise_signature(body, signature, keys):
            raise InvalidWebhook("bad signature")
        # Parsed only after the signature holds: unauthenticated input is never interpreted.
        try:
            event = json.loads(body)
        except ValueError as exc:
            raise InvalidWebhook("body is not JSON") from exc
        if not isinstance(event, dict) or "event_type" not in event:
            raise InvalidWebhook("not a Wise event")
        is_test = lowered.get(TEST_NOTIFICATION_HEADER, "").lower() == "true"
        if not is_test and self._profile_for_tenant is not None:
            _check_profile(event, self._profile_for_tenant(tenant))
        return VerifiedEvent(event_id=wise_event_id(tenant, event), is_test=is_test)


def _check_profile(event: Mapping[str, object], expected: int | None) -> None:
    """The event's resource must belong to the tenant's Wise profile (data.resource.profile_id)."""
    data = event.get("data")
    resource = data.get("resource") if isinstance(data, Mapping) else None
    profile = resource.get("profile_id") if isinstance(resource, Mapping) else None
    if expected is None or profile is None:
        return  # nothing to compare: the consumer matches the transfer to the tenant's own invoices
    if str(profile) != str(expected):
        raise InvalidWebhook("event is about another Wise profile than this tenant's")
