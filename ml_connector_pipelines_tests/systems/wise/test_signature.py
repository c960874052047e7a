"""Wise webhook signatures against Wise's own published test vector, and the receiver's verifier."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ml_connector_pipelines.core.webhooks import InvalidWebhook, UnknownTenant
from ml_connector_pipelines.systems.wise.signature import (
    WISE_LIVE_PUBLIC_KEY_PEM,
    WISE_SANDBOX_PUBLIC_KEY_PEM,
    WiseWebhookVerifier,
    verify_wise_signature,
)

VECTOR = json.loads(Path(__file__).with_name("wise-webhook-vector.json").read_text())
BODY: bytes = VECTOR["body"].encode("utf-8")
SIGNATURE: str = VECTOR["signature_base64"]


def test_vector_verifies_with_sandbox_key_only() -> None:
    assert verify_wise_signature(BODY, SIGNATURE, [WISE_SANDBOX_PUBLIC_KEY_PEM])
    assert not verify_wise_signature(BODY, SIGNATURE, [WISE_LIVE_PUBLIC_KEY_PEM])
    assert verify_wise_signature(BODY, SIGNATURE, [WISE_LIVE_PUBLIC_KEY_PEM, WISE_SANDBOX_PUBLIC_KEY_PEM])
    assert not verify_wise_signature(BODY, SIGNATURE, [])


def test_every_single_byte_change_of_the_body_fails() -> None:
    for position in range(len(BODY)):
        tampered = bytearray(BODY)
        tampered[position] ^= 0x01
        assert not verify_wise_signature(bytes(tampered), SIGNATURE, [WISE_SANDBOX_PUBLIC_KEY_PEM]), position
    # The contract's own example edit, and a truncation / an extra byte.
    edited = BODY.replace(b"00000000-0000-0000", b"00000000-0008-8000", 1)
    assert edited != BODY
    for body in (edited, BODY[:-1], BODY + b" "):
        assert not verify_wise_signature(body, SIGNATURE, [WISE_SANDBOX_PUBLIC_KEY_PEM])


def test_damaged_signature_fails() -> None:
    raw = bytearray(base64.b64decode(SIGNATURE))
    raw[10] ^= 0x80
    assert not verify_wise_signature(
        BODY, base64.b64encode(bytes(raw)).decode(), [WISE_SANDBOX_PUBLIC_KEY_PEM]
    )
    assert not verify_wise_signature(BODY, "not base64 !!", [WISE_SANDBOX_PUBLIC_KEY_PEM])
    assert not verify_wise_signature(BODY, "", [WISE_SANDBOX_PUBLIC_KEY_PEM])


def _own_key() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, pem.decode()


def _sign(private: rsa.RSAPrivateKey, body: bytes) -> str:
    return base64.b64encode(private.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def _event(state: str, occurred_at: str, transfer_id: int = 111) -> bytes:
    event = {
        "data": {
            "resource": {"type": "transfer", "id": transfer_id, "profile_id": 222, "account_id": 333},
            "current_state": state,
            "previous_state": "incoming_payment_waiting",
            "occurred_at": occurred_at,
        },
        "subscription_id": "01234567-89ab-cdef-0123-456789abcdef",
        "event_type": "transfers#state-change",
        "schema_version": "2.0.0",
        "sent_at": "2026-11-21T10:00:01Z",
    }
    return json.dumps(event).encode()


def test_verifier_ids_are_stable_across_deliveries_and_differ_between_events() -> None:
    private, pem = _own_key()
    verifier = WiseWebhookVerifier(lambda tenant: [pem] if tenant == "acme" else [])
    body = _event("processing", "2026-11-21T10:00:00Z")
    # The same event delivered twice, with different delivery ids and a different sent_at, is one event.
    redelivered = body.replace(b"10:00:01Z", b"10:05:01Z")
    first = verifier("acme", {"X-Signature-SHA256": _sign(private, body), "X-Delivery-Id": "a"}, body)
    second = verifier(
        "acme", {"x-signature-sha256": _sign(private, redelivered), "x-delivery-id": "b"}, redelivered
    )
    assert first.event_id == second.event_id
    assert not first.is_test
    others = [
        _event("funds_converted", "2026-11-21T10:00:00Z"),
        _event("processing", "2026-11-21T10:00:02Z"),
        _event("processing", "2026-11-21T10:00:00Z", transfer_id=112),
    ]
    ids = {verifier("acme", {"X-Signature-SHA256": _sign(private, b)}, b).event_id for b in others}
    assert len(ids) == 3 and first.event_id not in ids
    # Two tenants sharing one Wise account each get their own copy of the event.
    shared = WiseWebhookVerifier(lambda tenant: [pem])
    signature = {"X-Signature-SHA256": _sign(private, body)}
    assert shared("acme", signature, body).event_id != shared("globex", signature, body).event_id


def test_verifier_rejects_what_it_must() -> None:
    private, pem = _own_key()
    verifier = WiseWebhookVerifier(lambda tenant: [pem] if tenant == "acme" else [])
    body = _event("processing", "2026-11-21T10:00:00Z")
    with pytest.raises(UnknownTenant):
        verifier("other", {"X-Signature-SHA256": _sign(private, body)}, body)
    with pytest.raises(InvalidWebhook, match="missing"):
        verifier("acme", {}, body)
    with pytest.raises(InvalidWebhook, match="bad signature"):
        verifier("acme", {"X-Signature-SHA256": SIGNATURE}, body)
    not_json = b"{not json"
    with pytest.raises(InvalidWebhook, match="not JSON"):
        verifier("acme", {"X-Signature-SHA256": _sign(private, not_json)}, not_json)
    test_event = verifier(
        "acme", {"X-Signature-SHA256": _sign(private, body), "X-Test-Notification": "true"}, body
    )
    assert test_event.is_test


def test_published_vector_passes_the_verifier_with_sandbox_keys() -> None:
    verifier = WiseWebhookVerifier(lambda tenant: [WISE_SANDBOX_PUBLIC_KEY_PEM])
    event = verifier("acme", {"X-Signature-SHA256": SIGNATURE}, BODY)
    assert len(event.event_id) == 64
    live_only = WiseWebhookVerifier(lambda tenant: [WISE_LIVE_PUBLIC_KEY_PEM])
    with pytest.raises(InvalidWebhook):
        live_only("acme", {"X-Signature-SHA256": SIGNATURE}, BODY)


def test_an_event_of_another_tenants_profile_is_refused_at_the_door() -> None:
    # Wise signs every customer's events with one key: a genuine event of acme's profile (222)
    # posted to globex's URL verifies, so the profile decides.
    private, pem = _own_key()
    profiles = {"acme": 222, "globex": 999, "shared": 222, "unconfigured": None}
    verifier = WiseWebhookVerifier(lambda tenant: [pem], profiles.get)
    body = _event("processing", "2026-11-21T10:00:00Z")
    signature = {"X-Signature-SHA256": _sign(private, body)}
    assert verifier("acme", signature, body).event_id
    assert verifier("shared", signature, body).event_id  # two tenants on one Wise profile
    assert verifier("unconfigured", signature, body).event_id  # matched to invoices by the consumer
    with pytest.raises(InvalidWebhook, match="another Wise profile"):
        verifier("globex", signature, body)
