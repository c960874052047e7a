"""The Wise simulator over real HTTP: paths, auth, error shapes, idempotency, state moves and webhooks."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.wise.simulator import WiseSimulator

VALID_GB_IBAN = "GB33BUKB20201555555555"
VALID_DE_IBAN = "DE89370400440532013000"
VALID_ABA = "026009593"


class Receiver:
    """A real HTTP endpoint that records webhook deliveries and answers with ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/wise"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def events(self) -> list[dict[str, Any]]:
        """Payloads of the non-test deliveries, in arrival order."""
        return [json.loads(body) for headers, body in self.requests if "x-test-notification" not in headers]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def wise() -> Iterator[SandboxServer]:
    # One server per test: the clock and the webhook toggles are global to a simulator.
    server = SandboxServer(simulators=[WiseSimulator]).start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def client_for(server: SandboxServer, token: str | None = None) -> httpx.Client:
    token = token or f"wise-sandbox-{uuid.uuid4().hex[:8]}"
    return httpx.Client(
        base_url=f"{server.url}/wise", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.fixture
def api(wise: SandboxServer) -> Iterator[httpx.Client]:
    with client_for(wise) as client:
        yield client


def profiles(api: httpx.Client) -> dict[str, int]:
    return {p["type"]: p["id"] for p in api.get("/v2/profiles").json()}


def gbp_recipient(api: httpx.Client, profile_id: int, name: str = "Ada Lovelace") -> dict[str, Any]:
    body = {
        "currency": "GBP",
        "type": "sort_code",
        "profile": profile_id,
        "accountHolderName": name,
        "details": {"legalType": "PRIVATE", "sortCode": "40-47-84", "accountNumber": "70872490"},
    }
    response = api.post("/v1/accounts", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def quote(api: httpx.Client, profile_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "sourceCurrency": "EUR",
        "targetCurrency": "GBP",
        "sourceAmount": 100,
        "targetAmount": None,
        **fields,
    }
    response = api.post(f"/v3/profiles/{profile_id}/quotes", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def transfer_body(quote_id: str, account_id: int, customer_id: str | None = None) -> dict[str, Any]:
    return {
        "targetAccount": account_id,
        "quoteUuid": quote_id,
        "customerTransactionId": customer_id or str(uuid.uuid4()),
        "details": {"reference": "INV-42"},
    }


def new_transfer(api: httpx.Client, profile_id: int | None = None) -> dict[str, Any]:
    profile_id = profile_id or profiles(api)["BUSINESS"]
    recipient = gbp_recipient(api, profile_id)
    response = api.post("/v1/transfers", json=transfer_body(quote(api, profile_id)["id"], recipient["id"]))
    assert response.status_code == 200, response.text
    return response.json()


def subscribe(api: httpx.Client, profile_id: int, url: str) -> httpx.Response:
    body = {
        "name": "ERP",
        "trigger_on": "transfers#state-change",
        "delivery": {"version": "2.0.0", "url": url},
    }
    return api.post(f"/v3/profiles/{profile_id}/subscriptions", json=body)


def public_key(server: SandboxServer) -> RSAPublicKey:
    pem = httpx.get(f"{server.url}/_sandbox/credentials").json()["wise"]["webhook_public_key_pem"]
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, RSAPublicKey)
    return key


def user_state(server: SandboxServer, api: httpx.Client) -> dict[str, Any]:
    user_id = api.get("/v2/profiles").json()[0]["userId"]
    return server.get_state("wise")["users"][str(user_id)]


# ------------------------------------------------------------------------------------------ auth


def test_each_personal_token_is_its_own_user_with_business_and_personal_profiles(wise: SandboxServer) -> None:
    with client_for(wise, "wise-sandbox-alice") as alice, client_for(wise, "wise-sandbox-bob") as bob:
        first = alice.get("/v2/profiles").json()
        assert sorted(p["type"] for p in first) == ["BUSINESS", "PERSONAL"]
        assert alice.get("/v2/profiles").json() == first  # stable per token
        bob_ids = set(profiles(bob).values())
        assert bob_ids.isdisjoint(p["id"] for p in first)
        business = next(p for p in first if p["type"] == "BUSINESS")
        assert alice.get(f"/v2/profiles/{business['id']}").json()["businessName"] == business["businessName"]
        assert bob.get(f"/v2/profiles/{business['id']}").status_code == 403
        correlation_id = str(uuid.uuid4())
        echoed = alice.get("/v2/profiles", headers={"X-External-Correlation-Id": correlation_id})
        assert echoed.headers["X-External-Correlation-Id"] == correlation_id
        legacy = alice.get("/v1/profiles").json()
        assert sorted(p["type"] for p in legacy) == ["business", "personal"]
        assert all("details" in p for p in legacy)

    # Ids are derived from the token, so a fresh simulator gives the same ones.
    with SandboxServer(simulators=[WiseSimulator]) as other, client_for(other, "wise-sandbox-alice") as again:
        assert [p["id"] for p in again.get("/v2/profiles").json()] == [p["id"] for p in first]


def test_missing_or_unknown_token_is_401_invalid_token(wise: SandboxServer) -> None:
    missing = httpx.get(f"{wise.url}/wise/v2/profiles")
    assert missing.status_code == 401
    assert missing.json()["error"] == "invalid_token"
    with client_for(wise, "not-a-sandbox-token") as stranger:
        unknown = stranger.get("/v2/profiles")
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_token" and unknown.json()["error_description"]


def test_oauth_client_credentials_token_lasts_12_hours_of_simulator_time(wise: SandboxServer) -> None:
    token_url = f"{wise.url}/wise/oauth/token"
    form = {"grant_type": "client_credentials"}
    wrong = httpx.post(token_url, data=form, auth=("sandbox-wise-client", "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    response = httpx.post(token_url, data=form, auth=("sandbox-wise-client", "sandbox-wise-secret"))
    assert response.status_code == 200
    token = response.json()
    assert token["expires_in"] == 43199 and token["token_type"] == "bearer"
    with client_for(wise, token["access_token"]) as app:
        assert app.get("/v2/profiles").status_code == 200
        httpx.post(f"{wise.url}/_sandbox/wise/clock", json={"advance_seconds": 43199}).raise_for_status()
        expired = app.get("/v2/profiles")
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"


def test_fault_profile_can_revoke_a_token_early(wise: SandboxServer, api: httpx.Client) -> None:
    assert api.get("/v2/profiles").status_code == 200
    body = {"profile": "none", "overrides": {"token_revocation": 1.0}}
    httpx.put(f"{wise.url}/_sandbox/faults", json=body).raise_for_status()
    revoked = api.get("/v2/profiles")
    assert revoked.status_code == 401 and revoked.json()["error"] == "invalid_token"


# ------------------------------------------------------------------------------------ recipients


def test_recipient_types_are_matched_case_insensitively(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    iban = api.post(
        "/v1/accounts",
        json={
            "currency": "EUR",
            "type": "IBAN",
            "profile": profile_id,
            "accountHolderName": "Acme",
            "details": {"legalType": "BUSINESS", "IBAN": VALID_DE_IBAN},
        },
    )
    assert iban.status_code == 200, iban.text
    assert iban.json()["type"] == "iban" and iban.json()["details"]["iban"] == VALID_DE_IBAN
    assert iban.json()["country"] == "DE" and iban.json()["active"] is True
    aba = api.post(
        "/v1/accounts",
        json={
            "currency": "USD",
            "type": "ABA",
            "profile": profile_id,
            "accountHolderName": "Grace Hopper",
            "details": {
                "legalType": "PRIVATE",
                "abartn": VALID_ABA,
                "accountNumber": "12345678",
                "accountType": "CHECKING",
                "address": {
                    "country": "US",
                    "city": "New York",
                    "postCode": "10001",
                    "firstLine": "1 Main St",
                    "state": "NY",
                },
            },
        },
    )
    assert aba.status_code == 200, aba.text
    v2 = api.get(f"/v2/accounts/{aba.json()['id']}").json()
    assert v2["type"] == "Aba" and v2["legalEntityType"] == "PERSON" and v2["name"]["familyName"] == "Hopper"
    email = api.post(
        "/v1/accounts",
        json={
            "currency": "EUR",
            "type": "email",
            "profile": profile_id,
            "accountHolderName": "Alan Turing",
            "details": {"legalType": "PRIVATE", "email": "alan@example.com"},
        },
    )
    assert email.status_code == 200, email.text


# The field keys contract 5.4 lists for each entry of ``fields[].group[]``.
REQUIREMENT_FIELD_KEYS = {
    "key", "name", "type", "refreshRequirementsOnChange", "required", "displayFormat", "example", "minLength",
    "maxLength", "validationRegexp", "validationAsync", "valuesAllowed",
}  # fmt: skip
LOCAL_DETAILS = {
    "AUD": ("australian", {"bsbCode": "023604", "accountNumber": "123456789"}),
    "CAD": (
        "canadian",
        {
            "institutionNumber": "006",
            "transitNumber": "04841",
            "accountNumber": "3456712",
            "accountType": "Checking",
        },
    ),
    "JPY": (
        "japanese",
        {"bankCode": "6470", "branchCode": "100", "accountType": "CURRENT", "accountNumber": "1234567"},
    ),
    "NZD": ("newzealand", {"accountNumber": "03-1587-0050000-00"}),
    "SGD": ("singapore", {"bankCode": "7418", "accountNumber": "1238827822"}),
    "HKD": ("hongkong", {"bankCode": "307", "accountNumber": "005-231289-112"}),
    "INR": ("indian", {"ifscCode": "YESB0236041", "accountNumber": "678911234567891"}),
    "ZAR": ("southafrica", {"swiftCode": "ALBRZAJJ", "accountNumber": "0000000052312891"}),
    "MXN": ("mexican", {"clabe": "032180000118359719"}),
    "SEK": ("sweden_local", {"clearingNumber": "1234", "accountNumber": "1234567"}),
}


def requirements(api: httpx.Client, source: str, target: str, **params: Any) -> httpx.Response:
    query = {"source": source, "target": target, "sourceAmount": 1000, **params}
    return api.get("/v1/account-requirements", params=query, headers={"Accept-Minor-Version": "1"})


def account(api: httpx.Client, currency: str, account_type: str, details: dict[str, Any]) -> httpx.Response:
    body = {
        "currency": currency,
        "type": account_type,
        "profile": profiles(api)["BUSINESS"],
        "accountHolderName": "Acme Trading",
        "details": {"legalType": "BUSINESS", **details},
    }
    return api.post("/v1/accounts", json=body)


ROUTE_TARGETS = (
    "EUR", "GBP", "USD", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "AUD", "CAD", "JPY", "NZD", "SGD",
    "HKD", "INR", "ZAR", "MXN",
)  # fmt: skip


@pytest.mark.parametrize("target", ROUTE_TARGETS)
def test_account_requirements_list_types_and_fields_per_currency(api: httpx.Client, target: str) -> None:
    response = requirements(api, "EUR", target)
    assert response.status_code == 200, response.text
    types = response.json()
    assert types and all(set(t) == {"type", "title", "usageInfo", "fields"} for t in types)
    for requirement in types:
        entries = [entry for field in requirement["fields"] for entry in field["group"]]
        assert all(set(entry) == REQUIREMENT_FIELD_KEYS for entry in entries)
        keys = [entry["key"] for entry in entries]
        assert keys[:2] == ["legalType", "accountHolderName"]  # v1.1 adds the name field
        assert all(
            entry["required"] for entry in entries if entry["key"] in ("legalType", "accountHolderName")
        )
    offered = {t["type"] for t in types}
    if target in LOCAL_DETAILS:
        assert LOCAL_DETAILS[target][0] in offered
    assert ("iban" in offered) == (target in ("EUR", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF"))


def test_account_requirements_options_and_errors(api: httpx.Client) -> None:
    def keys(response: httpx.Response, account_type: str) -> list[str]:
        [found] = [t for t in response.json() if t["type"] == account_type]
        return [entry["key"] for field in found["fields"] for entry in field["group"]]

    assert "address.city" not in keys(requirements(api, "EUR", "AUD"), "australian")
    assert "address.city" in keys(requirements(api, "USD", "AUD"), "australian")  # source USD (5.1)
    assert "address.city" in keys(requirements(api, "EUR", "AUD", addressRequired="true"), "australian")
    assert "address.city" in keys(requirements(api, "EUR", "USD"), "aba")
    plain = api.get("/v1/account-requirements", params={"source": "EUR", "target": "GBP", "sourceAmount": 10})
    assert "accountHolderName" not in keys(plain, "sort_code")  # v1 without the minor-version header
    missing_amount = api.get("/v1/account-requirements", params={"source": "EUR", "target": "GBP"})
    assert missing_amount.status_code == 400 and missing_amount.json()["errors"][0]["path"] == "sourceAmount"
    unsupported = requirements(api, "EUR", "KRW")
    assert unsupported.status_code == 422
    assert unsupported.json()["errors"][0]["code"] == "error.route.not.supported"
    created = quote(api, profiles(api)["BUSINESS"], targetCurrency="GBP")
    by_quote = api.get(
        f"/v1/quotes/{created['id']}/account-requirements", headers={"Accept-Minor-Version": "1"}
    )
    assert by_quote.status_code == 200 and by_quote.json() == requirements(api, "EUR", "GBP").json()


@pytest.mark.parametrize("currency", sorted(LOCAL_DETAILS))
def test_local_bank_recipients_are_created_per_requirements(api: httpx.Client, currency: str) -> None:
    account_type, details = LOCAL_DETAILS[currency]
    created = account(api, currency, account_type, details)
    assert created.status_code == 200, created.text
    assert created.json()["type"] == account_type and created.json()["currency"] == currency
    assert {key: created.json()["details"][key] for key in details} == details
    v2 = api.get(f"/v2/accounts/{created.json()['id']}").json()
    assert v2["type"] == "".join(part.capitalize() for part in account_type.split("_"))
    assert v2["details"]["accountNumber" if "accountNumber" in details else "clabe"]


@pytest.mark.parametrize(
    ("currency", "account_type", "details", "path"),
    [
        # An iban recipient is not a USD type: USD to a foreign bank is swift_code.
        ("USD", "iban", {"IBAN": VALID_DE_IBAN}, "type"),
        # GBP iban recipients take UK IBANs only.
        ("GBP", "iban", {"IBAN": VALID_DE_IBAN}, "details.IBAN"),
        (
            "AUD",
            "australian",
            {"bsbCode": "023604", "accountNumber": "123456789", "sortCode": "1"},
            "details.sortCode",
        ),
        ("AUD", "australian", {"accountNumber": "123456789"}, "details.bsbCode"),
        (
            "INR",
            "indian",
            {"ifscCode": "YESB1236041", "accountNumber": "678911234567891"},
            "details.ifscCode",
        ),
        ("CAD", "canadian", {**LOCAL_DETAILS["CAD"][1], "accountType": "CHECKING"}, "details.accountType"),
        ("MXN", "mexican", {"clabe": "0321800001183597"}, "details.clabe"),
        (
            "USD",
            "swift_code",
            {"swiftCode": "COBADEFFXXX", "accountNumber": VALID_DE_IBAN},
            "details.address.city",
        ),
    ],
)
def test_recipients_that_fail_their_requirements_get_wise_errors(
    api: httpx.Client, currency: str, account_type: str, details: dict[str, Any], path: str
) -> None:
    response = account(api, currency, account_type, details)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert path in {error["path"] for error in errors}
    assert all(
        set(error) == {"code", "message", "path", "arguments"} and error["message"] for error in errors
    )


def test_bad_iban_checksum_and_name_rules_give_wise_errors(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    body = {
        "currency": "EUR",
        "type": "iban",
        "profile": profile_id,
        "accountHolderName": "Madonna",  # one word: not allowed for a person
        "details": {"legalType": "PRIVATE", "IBAN": "GB34BUKB20201555555555"},
    }
    response = api.post("/v1/accounts", json=body)
    assert response.status_code == 422
    paths = {error["path"] for error in response.json()["errors"]}
    assert paths == {"details.IBAN", "accountHolderName"}
    assert all(error["code"] and error["message"] for error in response.json()["errors"])
    digits = api.post(
        "/v1/accounts",
        json={
            **body,
            "accountHolderName": "R2 D2",
            "details": {"legalType": "PRIVATE", "IBAN": VALID_GB_IBAN},
        },
    )
    assert digits.status_code == 422 and digits.json()["errors"][0]["path"] == "accountHolderName"
    business = {
        **body,
        "accountHolderName": "Acme",
        "details": {"legalType": "BUSINESS", "IBAN": VALID_GB_IBAN},
    }
    assert api.post("/v1/accounts", json=business).status_code == 200


def test_recipient_lists_and_v2_seek_paging(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    created = [gbp_recipient(api, profile_id)["id"] for _ in range(23)]
    v1 = api.get("/v1/accounts", params={"profile": profile_id, "currency": "GBP"}).json()
    assert isinstance(v1, list) and sorted(r["id"] for r in v1) == created
    assert api.get("/v1/accounts", params={"profile": profile_id, "currency": "EUR"}).json() == []
    first = api.get("/v2/accounts", params={"profileId": profile_id, "size": 50}).json()
    assert len(first["content"]) == 20 and first["seekPositionForNext"] is not None
    second = api.get(
        "/v2/accounts",
        params={"profileId": profile_id, "size": 50, "seekPosition": first["seekPositionForNext"]},
    ).json()
    assert second["seekPositionForNext"] is None
    assert [r["id"] for r in first["content"] + second["content"]] == created


def test_recipients_are_deactivated_never_updated(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    first, second = gbp_recipient(api, profile_id), gbp_recipient(api, profile_id)
    deleted = api.delete(f"/v1/accounts/{first['id']}")
    assert deleted.status_code == 200 and deleted.content == b""
    assert api.get(f"/v2/accounts/{first['id']}").json()["active"] is False
    assert api.delete(f"/v1/accounts/{first['id']}").status_code == 403
    v2_deleted = api.delete(f"/v2/accounts/{second['id']}")
    assert v2_deleted.status_code == 200 and v2_deleted.json()["active"] is False
    assert api.delete(f"/v2/accounts/{second['id']}").status_code == 403
    assert api.get("/v1/accounts", params={"profile": profile_id}).json() == []
    inactive = api.get("/v2/accounts", params={"profileId": profile_id, "active": "false"}).json()["content"]
    assert {r["id"] for r in inactive} == {first["id"], second["id"]}
    for method in ("PUT", "PATCH"):
        assert api.request(method, f"/v1/accounts/{second['id']}", json={}).status_code == 405


# ---------------------------------------------------------------------------------------- quotes


def test_quote_locks_a_rate_for_30_minutes_with_fees_per_payment_option(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    created = quote(api, profile_id)
    assert uuid.UUID(created["id"]) and created["status"] == "PENDING"
    assert "fee" not in created
    lifetime = datetime.fromisoformat(created["expirationTime"]) - datetime.fromisoformat(
        created["createdTime"]
    )
    assert lifetime == timedelta(minutes=30)
    option = next(o for o in created["paymentOptions"] if o["payIn"] == "BANK_TRANSFER")
    assert option["payOut"] == created["payOut"] == "BANK_TRANSFER"
    assert (
        option["fee"]["total"] > 0 and option["price"]["total"]["value"]["amount"] == option["fee"]["total"]
    )
    assert created["sourceAmount"] == 100
    assert created["targetAmount"] == pytest.approx(
        (100 - option["fee"]["total"]) * created["rate"], abs=0.01
    )
    assert api.get(f"/v3/profiles/{profile_id}/quotes/{created['id']}").json()["rate"] == created["rate"]

    by_target = quote(api, profile_id, sourceAmount=None, targetAmount=250)
    assert by_target["targetAmount"] == 250 and by_target["providedAmountType"] == "TARGET"


@pytest.mark.parametrize(
    ("fields", "path", "code"),
    [
        ({"sourceAmount": 100, "targetAmount": 50}, "sourceAmount", "NOT_VALID"),
        ({"sourceAmount": None, "targetAmount": None}, "sourceAmount", "NOT_VALID"),
        ({"targetCurrency": "CNY"}, "targetCurrency", "error.route.not.supported"),
    ],
)
def test_invalid_quote_requests_are_422(
    api: httpx.Client, fields: dict[str, Any], path: str, code: str
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    body = {
        "sourceCurrency": "EUR",
        "targetCurrency": "GBP",
        "sourceAmount": 100,
        "targetAmount": None,
        **fields,
    }
    response = api.post(f"/v3/profiles/{profile_id}/quotes", json=body)
    assert response.status_code == 422
    assert {"path": path, "code": code} in [
        {"path": e["path"], "code": e["code"]} for e in response.json()["errors"]
    ]


def test_patching_a_recipient_onto_a_quote_rechecks_the_route(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    # USD to a bank outside the US is a swift_code recipient (an iban one is refused in USD).
    usd_to_iban = api.post(
        "/v1/accounts",
        json={
            "currency": "USD",
            "type": "swift_code",
            "profile": profile_id,
            "accountHolderName": "Acme GmbH",
            "details": {
                "legalType": "BUSINESS",
                "swiftCode": "COBADEFFXXX",
                "accountNumber": VALID_DE_IBAN,
                "address": {
                    "country": "DE",
                    "city": "Berlin",
                    "postCode": "10115",
                    "firstLine": "Hauptstr. 1",
                },
            },
        },
    ).json()
    created = quote(api, profile_id, targetCurrency="USD")
    assert created["payOut"] == "BANK_TRANSFER"
    path = f"/v3/profiles/{profile_id}/quotes/{created['id']}"
    plain_json = api.patch(path, json={"targetAccount": usd_to_iban["id"]})
    assert plain_json.status_code == 415
    patched = api.patch(
        path,
        content=json.dumps({"targetAccount": usd_to_iban["id"]}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["targetAccount"] == usd_to_iban["id"] and patched.json()["payOut"] == "SWIFT"
    assert {o["payOut"] for o in patched.json()["paymentOptions"]} == {"SWIFT"}


def test_quote_expires_after_30_minutes_and_cannot_be_used(wise: SandboxServer, api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    recipient = gbp_recipient(api, profile_id)
    created = quote(api, profile_id)
    httpx.post(f"{wise.url}/_sandbox/wise/clock", json={"advance_seconds": 1801}).raise_for_status()
    assert api.get(f"/v3/profiles/{profile_id}/quotes/{created['id']}").json()["status"] == "EXPIRED"
    response = api.post("/v1/transfers", json=transfer_body(created["id"], recipient["id"]))
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "quoteUuid"
    assert user_state(wise, api)["transfers"] == []


def test_answers_are_dated_by_the_simulator_clock_and_counted_per_route(
    wise: SandboxServer, api: httpx.Client
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    created = quote(api, profile_id)
    httpx.post(f"{wise.url}/_sandbox/wise/clock", json={"advance_seconds": 3600}).raise_for_status()
    read = api.get(f"/v3/profiles/{profile_id}/quotes/{created['id']}")
    missing = api.get(f"/v3/profiles/{profile_id}/quotes/{uuid.uuid4()}")
    # One Date per answer (errors too), an hour ahead of the real clock like the simulator's.
    for response in (read, missing):
        assert len(response.headers.get_list("date")) == 1
        dated = parsedate_to_datetime(response.headers["date"])
        assert abs((dated - datetime.now(UTC)) - timedelta(hours=1)) < timedelta(seconds=5)
    assert "date" in httpx.get(f"{wise.url}/_sandbox/health").headers
    calls = user_state(wise, api)["calls"]
    assert calls["POST /v3/profiles/{profile_id}/quotes"] == 1
    assert calls["GET /v3/profiles/{profile_id}/quotes/{quote_id}"] == 2


# ------------------------------------------------------------------------------------- transfers


def test_transfer_create_is_idempotent_on_customer_transaction_id(
    wise: SandboxServer, api: httpx.Client
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    recipient = gbp_recipient(api, profile_id)
    created_quote = quote(api, profile_id)
    body = transfer_body(created_quote["id"], recipient["id"])
    first = api.post("/v1/transfers", json=body)
    assert first.status_code == 200, first.text
    transfer = first.json()
    assert transfer["status"] == "incoming_payment_waiting"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", transfer["created"])
    assert transfer["details"]["reference"] == "INV-42" and transfer["quoteUuid"] == created_quote["id"]
    assert transfer["business"] == profile_id
    assert api.post("/v1/transfers", json=body).json()["id"] == transfer["id"]
    other_key = api.post("/v1/transfers", json=transfer_body(created_quote["id"], recipient["id"]))
    assert other_key.status_code == 422
    assert [t["id"] for t in user_state(wise, api)["transfers"]] == [transfer["id"]]
    assert api.get(f"/v3/profiles/{profile_id}/quotes/{created_quote['id']}").json()["status"] == "ACCEPTED"


def test_concurrent_retries_with_one_customer_transaction_id_make_one_transfer(
    wise: SandboxServer, api: httpx.Client
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    body = transfer_body(quote(api, profile_id)["id"], gbp_recipient(api, profile_id)["id"])
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: api.post("/v1/transfers", json=body), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(user_state(wise, api)["transfers"]) == 1


def test_inactive_recipient_is_rejected(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    recipient = gbp_recipient(api, profile_id)
    api.delete(f"/v1/accounts/{recipient['id']}")
    response = api.post("/v1/transfers", json=transfer_body(quote(api, profile_id)["id"], recipient["id"]))
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "targetAccount"


def test_transfer_list_filters_by_status_and_clamps_limit(api: httpx.Client) -> None:
    profile_id = profiles(api)["BUSINESS"]
    recipient = gbp_recipient(api, profile_id)
    ids = []
    for _ in range(101):
        body = transfer_body(quote(api, profile_id)["id"], recipient["id"])
        ids.append(api.post("/v1/transfers", json=body).json()["id"])
    api.put(f"/v1/transfers/{ids[0]}/cancel").raise_for_status()
    page = api.get("/v1/transfers", params={"profile": profile_id, "limit": 1000}).json()
    assert len(page) == 100 and page[0]["id"] == ids[-1]
    rest = api.get("/v1/transfers", params={"profile": profile_id, "limit": 100, "offset": 100}).json()
    assert [t["id"] for t in rest] == [ids[0]]
    cancelled = api.get(
        "/v1/transfers", params={"profile": profile_id, "status": "cancelled,funds_refunded"}
    ).json()
    assert [t["id"] for t in cancelled] == [ids[0]]
    # Without a profile the list is the personal profile's, which has none.
    assert api.get("/v1/transfers").json() == []


def test_cancel_works_only_before_the_money_moves(api: httpx.Client) -> None:
    transfer = new_transfer(api)
    cancelled = api.put(f"/v1/transfers/{transfer['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.put(f"/v1/transfers/{transfer['id']}/cancel")
    assert again.status_code == 409 and again.json()["errors"]
    assert api.get(f"/v1/transfers/{transfer['id']}").json()["status"] == "cancelled"


def test_status_moves_follow_the_contract_table(wise: SandboxServer, api: httpx.Client) -> None:
    transfer = new_transfer(api)
    path = f"/v1/simulation/transfers/{transfer['id']}"
    assert api.get(f"{path}/outgoing_payment_sent").status_code == 409
    for state in ("processing", "funds_converted", "outgoing_payment_sent", "bounced_back", "funds_refunded"):
        response = api.get(f"{path}/{state}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == state
    assert api.get(f"{path}/cancelled").status_code == 422  # not one of Wise's simulation calls
    control = f"{wise.url}/_sandbox/wise/transfers/{transfer['id']}/state"
    assert httpx.post(control, json={"status": "processing"}).status_code == 409
    assert httpx.post(control, json={"status": "charged_back"}).json()["transfer"]["status"] == "charged_back"
    assert httpx.post(control, json={"status": "charged_back"}).status_code == 409
    assert httpx.post(control, json={"status": "teleported"}).status_code == 422


def test_funding_respects_personal_token_rules(wise: SandboxServer, api: httpx.Client) -> None:
    ids = profiles(api)
    business_transfer = new_transfer(api, ids["BUSINESS"])
    fund_path = f"/v3/profiles/{ids['BUSINESS']}/transfers/{business_transfer['id']}/payments"
    refused = api.post(fund_path, json={"type": "BALANCE"})
    assert refused.status_code == 403 and refused.json()["message"]
    assert api.get(f"/v1/transfers/{business_transfer['id']}").json()["status"] == "incoming_payment_waiting"

    personal_transfer = new_transfer(api, ids["PERSONAL"])  # the personal profile is US-based
    funded = api.post(
        f"/v3/profiles/{ids['PERSONAL']}/transfers/{personal_transfer['id']}/payments",
        json={"type": "BALANCE"},
    )
    assert funded.json() == {"type": "BALANCE", "status": "COMPLETED", "errorCode": None}
    assert api.get(f"/v1/transfers/{personal_transfer['id']}").json()["status"] == "processing"

    token = httpx.post(
        f"{wise.url}/wise/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("sandbox-wise-client", "sandbox-wise-secret"),
    ).json()["access_token"]
    with client_for(wise, token) as app:
        app_business = profiles(app)["BUSINESS"]
        app_transfer = new_transfer(app, app_business)
        paid = app.post(
            f"/v3/profiles/{app_business}/transfers/{app_transfer['id']}/payments", json={"type": "BALANCE"}
        )
        assert paid.status_code == 200 and paid.json()["status"] == "COMPLETED"


def test_tenants_cannot_see_each_other(wise: SandboxServer, api: httpx.Client) -> None:
    transfer = new_transfer(api)
    profile_id = profiles(api)["BUSINESS"]
    with client_for(wise) as other:
        assert other.get(f"/v1/transfers/{transfer['id']}").status_code == 404
        assert other.get(f"/v2/accounts/{transfer['targetAccount']}").status_code == 404
        assert other.get(f"/v3/profiles/{profile_id}/quotes/{transfer['quoteUuid']}").status_code == 403
        assert other.get("/v1/transfers", params={"profile": profile_id}).status_code == 403
        other_business = profiles(other)["BUSINESS"]
        stolen = other.post(
            "/v1/transfers", json=transfer_body(transfer["quoteUuid"], transfer["targetAccount"])
        )
        assert stolen.status_code == 422
        assert other.get("/v1/transfers", params={"profile": other_business}).json() == []


# -------------------------------------------------------------------------------------- webhooks


def test_subscription_sends_a_signed_test_notification(
    wise: SandboxServer, api: httpx.Client, receiver: Receiver
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    created = subscribe(api, profile_id, receiver.url)
    assert created.status_code == 200, created.text
    subscription = created.json()
    assert subscription["scope"] == {"domain": "profile", "id": str(profile_id)}
    headers, body = receiver.requests[0]
    assert headers["x-test-notification"] == "true"
    public_key(wise).verify(
        base64.b64decode(headers["x-signature-sha256"]), body, padding.PKCS1v15(), hashes.SHA256()
    )
    base = f"/v3/profiles/{profile_id}/subscriptions"
    assert [s["id"] for s in api.get(base).json()] == [subscription["id"]]
    assert api.get(f"{base}/{subscription['id']}").json() == subscription
    assert api.delete(f"{base}/{subscription['id']}").status_code == 204
    assert api.get(base).json() == []


@pytest.mark.parametrize(
    "url", ["https://203.0.113.7/hooks", "http://example.com/hooks", "https://example.com:8443/hooks"]
)
def test_subscription_urls_follow_wise_rules(api: httpx.Client, url: str) -> None:
    response = subscribe(api, profiles(api)["BUSINESS"], url)
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "delivery.url"


def test_subscription_fails_when_the_test_notification_is_refused(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.status = 500
    profile_id = profiles(api)["BUSINESS"]
    response = subscribe(api, profile_id, receiver.url)
    assert response.status_code == 422 and response.json()["errors"][0]["code"] == "INVALID_CALLBACK_URL"
    assert len(receiver.requests) == 1
    assert api.get(f"/v3/profiles/{profile_id}/subscriptions").json() == []


def test_every_state_move_delivers_a_signed_event(
    wise: SandboxServer, api: httpx.Client, receiver: Receiver
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    subscription = subscribe(api, profile_id, receiver.url).json()
    transfer = new_transfer(api, profile_id)
    control = f"{wise.url}/_sandbox/wise/transfers/{transfer['id']}/state"
    moved = httpx.post(
        control, json={"status": "processing", "occurred_at": "2026-01-02T03:04:05.678Z"}
    ).json()
    assert [d["status_code"] for d in moved["deliveries"]] == [200]

    events = receiver.events()
    assert [(e["data"]["previous_state"], e["data"]["current_state"]) for e in events] == [
        (None, "incoming_payment_waiting"),
        ("incoming_payment_waiting", "processing"),
    ]
    event = events[1]
    assert event["event_type"] == "transfers#state-change" and event["schema_version"] == "2.0.0"
    assert event["subscription_id"] == subscription["id"]
    assert event["data"]["resource"] == {
        "type": "transfer",
        "id": transfer["id"],
        "profile_id": profile_id,
        "account_id": transfer["targetAccount"],
    }
    assert event["data"]["occurred_at"] == "2026-01-02T03:04:05.678Z"
    key = public_key(wise)
    delivery_ids = set()
    for headers, body in receiver.requests:
        key.verify(base64.b64decode(headers["x-signature-sha256"]), body, padding.PKCS1v15(), hashes.SHA256())
        delivery_ids.add(str(uuid.UUID(headers["x-delivery-id"])))
    assert len(delivery_ids) == len(receiver.requests) == 3  # test notification + two events


def test_failed_deliveries_are_recorded_not_raised(
    wise: SandboxServer, api: httpx.Client, receiver: Receiver
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    subscribe(api, profile_id, receiver.url)
    receiver.status = 503
    transfer = new_transfer(api, profile_id)
    assert api.get(f"/v1/simulation/transfers/{transfer['id']}/processing").status_code == 200
    receiver.close()  # now nobody is listening at all
    assert api.get(f"/v1/simulation/transfers/{transfer['id']}/funds_converted").status_code == 200
    deliveries = [d for d in user_state(wise, api)["deliveries"] if not d["test"]]
    assert [d["status_code"] for d in deliveries] == [503, 503, None]
    assert deliveries[-1]["error"] and not any(d["delivered"] for d in deliveries)


def test_duplicate_and_out_of_order_toggles(
    wise: SandboxServer, api: httpx.Client, receiver: Receiver
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    subscribe(api, profile_id, receiver.url)
    transfer = new_transfer(api, profile_id)
    toggles = f"{wise.url}/_sandbox/wise/webhooks"
    simulate = f"/v1/simulation/transfers/{transfer['id']}"

    httpx.put(toggles, json={"duplicates": True}).raise_for_status()
    api.get(f"{simulate}/processing").raise_for_status()
    duplicates = receiver.requests[-2:]
    assert duplicates[0][1] == duplicates[1][1]
    assert duplicates[0][0]["x-delivery-id"] != duplicates[1][0]["x-delivery-id"]

    httpx.put(toggles, json={"duplicates": False, "out_of_order": True}).raise_for_status()
    before = len(receiver.events())
    api.get(f"{simulate}/funds_converted").raise_for_status()
    assert len(receiver.events()) == before  # held back
    api.get(f"{simulate}/outgoing_payment_sent").raise_for_status()
    api.get(f"{simulate}/bounced_back").raise_for_status()
    flushed = httpx.put(toggles, json={"out_of_order": False}).json()
    assert [d["current_state"] for d in flushed["deliveries"]] == ["bounced_back"]
    states = [e["data"]["current_state"] for e in receiver.events()[before:]]
    assert states == ["outgoing_payment_sent", "funds_converted", "bounced_back"]


def test_state_reports_everything_per_user(
    wise: SandboxServer, api: httpx.Client, receiver: Receiver
) -> None:
    profile_id = profiles(api)["BUSINESS"]
    subscribe(api, profile_id, receiver.url)
    transfer = new_transfer(api, profile_id)
    state = user_state(wise, api)
    assert len(state["profiles"]) == 2
    assert [r["id"] for r in state["recipients"]] == [transfer["targetAccount"]]
    assert [q["id"] for q in state["quotes"]] == [transfer["quoteUuid"]]
    assert [t["id"] for t in state["transfers"]] == [transfer["id"]]
    assert len(state["subscriptions"]) == 1
    assert [(d["test"], d["status_code"]) for d in state["deliveries"]] == [(True, 200), (False, 200)]
    credentials = httpx.get(f"{wise.url}/_sandbox/credentials").json()["wise"]
    assert credentials["example_token"].startswith(credentials["personal_token_prefix"])
