"""StripeWebhookVerifier on real event bodies from the simulator, signed by the simulator's signer
(an implementation independent of ours: it shares no code with the SDK or our verifier)."""

from __future__ import annotations

import json
import time

import pytest

from ml_connector_pipelines.core.webhooks import InvalidWebhook, UnknownTenant
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.stripe.simulator import StripeSimulator, sign
from ml_connector_pipelines.systems.stripe.client import StripeGateway, StripeWebhookVerifier

SECRETS = {"acme": "whsec_acme_secret", "globex": "whsec_globex_secret"}


@pytest.fixture(scope="module")
def event_body() -> tuple[str, bytes]:
    """(event id, raw body) of a real `customer.created` event."""
    with SandboxServer(simulators=[StripeSimulator]) as server:
        with StripeGateway("sk_test_webhooks", f"{server.url}/stripe") as gateway:
            gateway.create_customer({"name": "Acme"}, "k-webhook")
            [event] = gateway.list_events()
    yield event.id, json.dumps(event.payload).encode()


@pytest.fixture
def verifier() -> StripeWebhookVerifier:
    return StripeWebhookVerifier(SECRETS.get)


def headers_for(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    return {"stripe-signature": sign(secret, timestamp or int(time.time()), body.decode())}


def test_valid_signature_returns_the_event_id(
    verifier: StripeWebhookVerifier, event_body: tuple[str, bytes]
) -> None:
    event_id, body = event_body
    verified = verifier("acme", headers_for(body, SECRETS["acme"]), body)
    assert verified.event_id == event_id and event_id.startswith("evt_")
    assert verified.is_test is False


def test_any_of_several_signatures_may_match_during_secret_rotation(
    verifier: StripeWebhookVerifier, event_body: tuple[str, bytes]
) -> None:
    _, body = event_body
    now = int(time.time())
    old = sign("whsec_retired", now, body.decode())
    new = sign(SECRETS["acme"], now, body.decode()).split(",")[1]
    assert verifier("acme", {"Stripe-Signature": f"{old},{new}"}, body).event_id


def test_forged_signature_is_rejected(verifier: StripeWebhookVerifier, event_body: tuple[str, bytes]) -> None:
    _, body = event_body
    # Signed with another tenant's secret: valid for globex, forged for acme.
    headers = headers_for(body, SECRETS["globex"])
    assert verifier("globex", headers, body).event_id
    with pytest.raises(InvalidWebhook) as caught:
        verifier("acme", headers, body)
    assert "signature" in caught.value.reason


def test_tampered_body_is_rejected(verifier: StripeWebhookVerifier, event_body: tuple[str, bytes]) -> None:
    _, body = event_body
    headers = headers_for(body, SECRETS["acme"])
    with pytest.raises(InvalidWebhook):
        verifier("acme", headers, body.replace(b"Acme", b"Evil"))


def test_stale_timestamp_is_rejected(verifier: StripeWebhookVerifier, event_body: tuple[str, bytes]) -> None:
    _, body = event_body
    assert verifier("acme", headers_for(body, SECRETS["acme"], int(time.time()) - 240), body)
    with pytest.raises(InvalidWebhook) as caught:
        verifier("acme", headers_for(body, SECRETS["acme"], int(time.time()) - 301), body)
    assert "tolerance" in caught.value.reason


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=notanumber,v1=abc", "t=1700000000"],
)
def test_missing_or_malformed_header_is_rejected(
    verifier: StripeWebhookVerifier, event_body: tuple[str, bytes], header: str | None
) -> None:
    _, body = event_body
    headers = {} if header is None else {"stripe-signature": header}
    with pytest.raises(InvalidWebhook):
        verifier("acme", headers, body)


def test_signed_body_that_is_not_an_event_is_rejected(verifier: StripeWebhookVerifier) -> None:
    for body in (b"not json", b'{"object": "event"}'):
        with pytest.raises(InvalidWebhook):
            verifier("acme", headers_for(body, SECRETS["acme"]), body)


def test_tenant_without_a_secret_is_unknown(
    verifier: StripeWebhookVerifier, event_body: tuple[str, bytes]
) -> None:
    _, body = event_body
    with pytest.raises(UnknownTenant):
        verifier("initech", headers_for(body, SECRETS["acme"]), body)


def test_future_timestamp_beyond_clock_skew_is_rejected(
    verifier: StripeWebhookVerifier, event_body: tuple[str, bytes]
) -> None:
    # The SDK only bounds the past: a request signed for next year would be replayable until then.
    _, body = event_body
    assert verifier("acme", headers_for(body, SECRETS["acme"], int(time.time()) + 30), body)
    for ahead in (120, 86_400 * 365):
        with pytest.raises(InvalidWebhook) as caught:
            verifier("acme", headers_for(body, SECRETS["acme"], int(time.time()) + ahead), body)
        assert "future" in caught.value.reason


def test_validly_signed_deeply_nested_body_is_a_clean_400(event_body: tuple[str, bytes], tmp_path) -> None:
    """A receiver over real HTTP with the real verifier: a body nested 100,000 levels deep, signed
    with the tenant's secret, is refused with a 400 and a reason; nothing is stored; the receiver
    keeps serving."""
    import httpx

    from ml_connector_pipelines.core.inbox import Inbox
    from ml_connector_pipelines.core.store import StateStore
    from ml_connector_pipelines.core.webhooks import WebhookServer, create_webhook_app

    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    inbox = Inbox(store)
    app = create_webhook_app(inbox, {"stripe": StripeWebhookVerifier(SECRETS.get)})
    depth = 100_000
    deep = ('{"id": "evt_deep", "object": "event", "data": ' + "[" * depth + "]" * depth + "}").encode()
    _, body = event_body
    with WebhookServer(app) as server:
        url = f"{server.url}/webhooks/stripe/acme"
        response = httpx.post(url, content=deep, headers=headers_for(deep, SECRETS["acme"]), timeout=30)
        assert response.status_code == 400 and "nested deeper" in response.json()["error"]
        ok = httpx.post(url, content=body, headers=headers_for(body, SECRETS["acme"]), timeout=30)
        assert ok.status_code == 200
    assert [e.event_id for e in inbox.pending("stripe", "acme")] == [json.loads(body)["id"]]
