"""The Procurify simulator refuses what Procurify refuses: bad token requests, missing headers,
unknown paths, writes, unknown or unimplemented parameters; it pages with absolute links, filters
with inclusive _0/_1 ranges, and suspends a domain on oversized or too-frequent requests."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.procurify.simulator import AUDIENCE, CLIENT_SECRET, client_id_for

_numbers = itertools.count(1)


@pytest.fixture
def domain() -> str:
    return f"sim-{next(_numbers)}"


def token_body(domain: str, **changes: Any) -> dict[str, Any]:
    return {
        "client_id": client_id_for(domain),
        "client_secret": CLIENT_SECRET,
        "audience": AUDIENCE,
        "grant_type": "client_credentials",
        **changes,
    }


def api(server: SandboxServer, domain: str) -> httpx.Client:
    token = httpx.post(f"{server.url}/procurify/{domain}/oauth/token", json=token_body(domain)).json()
    headers = {"Authorization": f"Bearer {token['access_token']}", "X-Procurify-Client": "api"}
    return httpx.Client(base_url=f"{server.url}/procurify/{domain}", headers=headers, timeout=30)


def control(server: SandboxServer, domain: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.put(f"{server.url}/_sandbox/procurify/tenants/{domain}/{route}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_token_needs_a_json_body_with_audience_and_valid_credentials(
    sandbox_server: SandboxServer, domain: str
) -> None:
    url = f"{sandbox_server.url}/procurify/{domain}/oauth/token"
    ok = httpx.post(url, json=token_body(domain))
    assert ok.status_code == 200
    assert ok.json()["expires_in"] == 86400 and ok.json()["token_type"] == "Bearer"
    assert httpx.post(url, data=token_body(domain)).status_code == 400  # a form body
    assert httpx.post(url, json=token_body(domain, audience="https://other/")).status_code == 403
    assert httpx.post(url, json=token_body(domain, client_secret="wrong")).status_code == 401
    assert httpx.post(url, json=token_body("another-domain")).status_code == 401


def test_every_call_needs_the_bearer_token_and_the_client_header(
    sandbox_server: SandboxServer, domain: str
) -> None:
    with api(sandbox_server, domain) as client:
        assert client.get("/api/v3/vendors/").status_code == 200
        assert client.get("/api/v3/vendors").status_code == 200  # the trailing slash is optional
        no_header = client.get("/api/v3/vendors/", headers={"X-Procurify-Client": ""})
        assert no_header.status_code == 403 and "X-Procurify-Client" in no_header.json()["detail"]
        assert client.get("/api/v3/vendors/", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_strict_paths_methods_and_parameters(sandbox_server: SandboxServer, domain: str) -> None:
    with api(sandbox_server, domain) as client:
        assert client.get("/api/v3/purchase-orders/").status_code == 404  # the seed's wrong path
        assert client.get("/api/v3/bills/").status_code == 404
        assert client.post("/api/v3/ap/bills/", json={}).status_code == 405  # bills are read-only
        assert client.get("/api/v2/purchase_orders/sold/all/").status_code == 404
        assert client.get("/api/v3/ap/bills/", params={"created_at__gte": "2026-01-01"}).json() == {
            "created_at__gte": ["Unknown query parameter."]
        }
        unimplemented = client.get("/api/v2/purchase_orders/purchased/all/", params={"contract": 1})
        assert unimplemented.status_code == 400
        assert client.get("/api/v3/ap/bills/", params={"invoice_date_0": "yesterday"}).status_code == 400


def test_pages_link_absolutely_and_ranges_are_inclusive(sandbox_server: SandboxServer, domain: str) -> None:
    with api(sandbox_server, domain) as client:
        first = client.get("/api/v3/ap/bills/", params={"page_size": 5}).json()
        pagination = first["metadata"]["pagination"]
        assert pagination["next"].startswith(f"{sandbox_server.url}/procurify/{domain}/api/v3/ap/bills/")
        second = client.get(pagination["next"]).json()
        assert second["metadata"]["pagination"]["previous"] is not None
        assert {b["id"] for b in first["data"]}.isdisjoint(b["id"] for b in second["data"])
        everything = client.get("/api/v3/ap/bills/", params={"page_size": 100}).json()["data"]
        moment = everything[0]["last_modified_datetime"]
        exact = client.get(
            "/api/v3/ap/bills/",
            params={"last_modified_datetime_0": moment, "last_modified_datetime_1": moment},
        ).json()["data"]
        assert everything[0]["id"] in {b["id"] for b in exact}
        cancelled = client.get("/api/v2/purchase_orders/purchased/cancelled/").json()["data"]
        assert cancelled and {po["state"] for po in cancelled} == {1}


def test_oversized_or_too_frequent_requests_suspend_the_domain(
    sandbox_server: SandboxServer, domain: str
) -> None:
    with api(sandbox_server, domain) as client:
        control(sandbox_server, domain, "config", {"max_page_size": 50})
        assert client.get("/api/v3/vendors/", params={"page_size": 50}).status_code == 200
        too_big = client.get("/api/v3/vendors/", params={"page_size": 500})
        assert too_big.status_code == 403 and "suspended" in too_big.json()["detail"]
        assert client.get("/api/v3/vendors/").status_code == 403  # suspended until support lifts it
        control(sandbox_server, domain, "config", {"suspended": False, "max_page_size": None})
        assert client.get("/api/v3/vendors/").status_code == 200
        control(sandbox_server, domain, "config", {"max_requests_per_minute": 2})
        statuses = [client.get("/api/v3/vendors/").status_code for _ in range(3)]
        assert statuses[-1] == 403
        control(sandbox_server, domain, "config", {"suspended": False, "max_requests_per_minute": None})


def test_tokens_expire_after_the_configured_lifetime(sandbox_server: SandboxServer, domain: str) -> None:
    control(sandbox_server, domain, "config", {"token_lifetime": 0})
    with api(sandbox_server, domain) as client:
        assert client.get("/api/v3/vendors/").status_code == 401
