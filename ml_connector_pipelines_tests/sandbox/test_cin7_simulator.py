"""The Cin7 simulator on its own server: auth, paths, paging, errors, uniqueness, the purchase state
machine, search and the rate limit; every answer validated against Cin7's OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.sandbox.cin7.simulator import Cin7Simulator, sandbox_credentials
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines_tests.systems.cin7.cin7_env import set_rate_limit
from ml_connector_pipelines_tests.systems.cin7.openapi_check import RecordingTransport, assert_valid

SUPPLIER = {
    "Name": "Acme",
    "Currency": "EUR",
    "PaymentTerm": "30 days",
    "AccountPayable": "800",
    "TaxRule": "Tax Exempt",
    "Status": "Active",
}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(simulators=[Cin7Simulator]) as server:
        yield server


@pytest.fixture
def api(server: SandboxServer, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    set_rate_limit(server, per_minute=100_000, status=503, window_seconds=60)
    credentials = sandbox_credentials(request.node.name)
    transport = RecordingTransport()
    headers = {
        "api-auth-accountid": credentials["account_id"],
        "api-auth-applicationkey": credentials["application_key"],
    }
    with httpx.Client(
        base_url=f"{server.url}/cin7/ExternalApi/v2", headers=headers, transport=transport
    ) as c:
        c.account_id = credentials["account_id"]  # type: ignore[attr-defined]
        yield c
    assert_valid([(rq, rs) for rq, rs in transport.exchanges if rs.status_code == 200])


def _errors(response: httpx.Response) -> list[str]:
    body = response.json()
    assert isinstance(body, list) and all(set(e) == {"ErrorCode", "Exception"} for e in body)
    assert all(e["ErrorCode"] == response.status_code for e in body)
    return [e["Exception"] for e in body]


def test_both_auth_headers_are_required(server: SandboxServer, api: httpx.Client) -> None:
    url = f"{server.url}/cin7/ExternalApi/v2/supplier"
    good = dict(api.headers)
    only_account = {"api-auth-accountid": good["api-auth-accountid"]}
    wrong_key = {
        **only_account,
        "api-auth-applicationkey": sandbox_credentials("someone else")["application_key"],
    }
    for headers in ({}, only_account, wrong_key):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 403
        assert _errors(response)
    assert api.get("/supplier").status_code == 200


def test_paths_and_parameters_are_case_insensitive(server: SandboxServer, api: httpx.Client) -> None:
    api.post("/supplier", json=SUPPLIER).raise_for_status()
    upper = httpx.get(f"{server.url}/cin7/EXTERNALAPI/V2/SUPPLIER?name=acme", headers=api.headers)
    assert upper.status_code == 200 and upper.json()["Total"] == 1
    assert api.get("/Supplier").json()["Total"] == 1


def test_paging_with_total_and_limit_bounds(api: httpx.Client) -> None:
    for n in range(5):
        api.post("/supplier", json={**SUPPLIER, "Name": f"S{n}"}).raise_for_status()
    page = api.get("/supplier", params={"Page": 2, "Limit": 2}).json()
    assert page["Total"] == 5 and page["Page"] == 2 and len(page["SupplierList"]) == 2
    assert api.get("/supplier", params={"Page": 3, "Limit": 2}).json()["SupplierList"][0]["Name"] == "S4"
    for limit in (0, 1001):
        response = api.get("/supplier", params={"Limit": limit})
        assert response.status_code == 400 and "Limit" in _errors(response)[0]
    assert api.get("/supplier", params={"Limit": 1000}).status_code == 200


def test_strict_bodies_and_unknown_endpoints(api: httpx.Client) -> None:
    response = api.post("/supplier", json={**SUPPLIER, "VendorRef": "x", "Discount": "ten"})
    assert response.status_code == 400
    assert sorted(_errors(response)) == ["Discount: expected number, got str", "VendorRef: unknown field"]
    missing = api.post("/supplier", json={"Name": "Half"})
    assert {"Currency is required", "TaxRule is required"} <= set(_errors(missing))
    assert api.get("/supplier", params={"Colour": "red"}).status_code == 400
    assert api.get("/Suppliers").status_code == 404
    assert api.delete("/supplier").status_code == 405
    broken = api.post("/supplier", content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 500


def test_unique_supplier_name_and_account_code(api: httpx.Client) -> None:
    api.post("/supplier", json=SUPPLIER).raise_for_status()
    clash = api.post("/supplier", json={**SUPPLIER, "Name": "ACME"})
    assert clash.status_code == 400 and "already exists" in _errors(clash)[0]
    account = {"Code": "6100", "Name": "Freight", "Type": "EXPENSE", "Class": "EXPENSE", "Status": "ACTIVE"}
    assert api.post("/ref/account", json=account).status_code == 200
    again = api.post("/ref/account", json={**account, "Name": "Other"})
    assert again.status_code == 400 and "already exists" in _errors(again)[0]
    chart = api.get("/ref/account", params={"Code": "6100"}).json()["AccountsList"]
    assert chart[0]["DisplayName"] == "6100: Freight"


def _product(server: SandboxServer, api: httpx.Client, sku: str) -> dict[str, Any]:
    url = f"{server.url}/_sandbox/cin7/accounts/{api.account_id}/products"  # type: ignore[attr-defined]
    return httpx.post(url, json={"products": [{"SKU": sku}]}).json()["products"][0]


def _line(product: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "ProductID": product["ID"],
        "SKU": product["SKU"],
        "Name": "n",
        "Quantity": 2,
        "Price": 5,
        "Discount": 0,
        "Tax": 0,
        "TaxRule": "Tax Exempt",
        "Comment": "",
        "Total": 10,
        **extra,
    }


@pytest.mark.parametrize("approach", ["INVOICE", "STOCK"])
def test_purchase_state_machine_rejects_out_of_order_calls(
    server: SandboxServer, api: httpx.Client, approach: str
) -> None:
    supplier = api.post("/supplier", json=SUPPLIER).json()["SupplierList"][0]
    product = _product(server, api, "SKU-1")
    task = api.post("/purchase", json={"SupplierID": supplier["ID"], "Approach": approach}).json()
    assert task["Status"] == "ORDERING" and task["OrderNumber"].startswith("PO-")
    invoice = {"TaskID": task["ID"], "Status": "AUTHORISED", "Lines": [_line(product, Account="630")]}
    stock = {"TaskID": task["ID"], "Status": "AUTHORISED", "Lines": []}

    early = api.post("/purchase/invoice", json=invoice)
    assert early.status_code == 400 and "AUTHORISED" in _errors(early)[0]
    order = {"TaskID": task["ID"], "Status": "DRAFT", "Memo": "", "Lines": [_line(product, SupplierSKU="")]}
    wrong_total = api.post(
        "/purchase/order", json={**order, "Lines": [_line(product, Total=11, SupplierSKU="")]}
    )
    assert wrong_total.status_code == 400 and "Total" in _errors(wrong_total)[0]
    assert api.post("/purchase/order", json=order).status_code == 200  # DRAFT can change
    assert api.post("/purchase/order", json={**order, "Status": "AUTHORISED"}).status_code == 200
    late = api.post("/purchase/order", json=order)
    assert late.status_code == 400 and "DRAFT" in _errors(late)[0]

    first, second = (invoice, stock) if approach == "INVOICE" else (stock, invoice)
    first_path, second_path = ("/purchase/invoice", "/purchase/stock")[:: 1 if approach == "INVOICE" else -1]
    assert api.post(second_path, json=second).status_code == 400  # wrong order for this Approach
    assert api.post(first_path, json=first).status_code == 200
    assert api.post(second_path, json=second).status_code == 200
    assert api.post("/purchase/invoice", json=invoice).status_code == 400  # invoiced once only
    row = api.get("/purchaseList", params={"Search": task["OrderNumber"]}).json()["PurchaseList"][0]
    assert row["Status"] == "COMPLETED" and row["InvoiceStatus"] == "AUTHORISED"
    assert api.get("/purchase", params={"ID": task["ID"]}).json()["Approach"] == approach


def test_purchase_list_search_matches_the_documented_fields(server: SandboxServer, api: httpx.Client) -> None:
    acme = api.post("/supplier", json=SUPPLIER).json()["SupplierList"][0]
    other = api.post("/supplier", json={**SUPPLIER, "Name": "Zeta"}).json()["SupplierList"][0]
    for supplier in (acme, other, acme):
        api.post("/purchase", json={"SupplierID": supplier["ID"]}).raise_for_status()
    assert api.get("/purchaseList", params={"Search": "acm"}).json()["Total"] == 2
    assert (
        api.get("/purchaseList", params={"Search": "PO-00002"}).json()["PurchaseList"][0]["Supplier"]
        == "Zeta"
    )
    assert api.get("/purchaseList", params={"Search": "ordering"}).json()["Total"] == 3
    assert api.get("/purchaseList", params={"Search": "nothing"}).json()["Total"] == 0


def test_sixty_calls_a_minute_per_key_then_503_or_429(server: SandboxServer, api: httpx.Client) -> None:
    set_rate_limit(server, per_minute=60, status=503, window_seconds=60)
    statuses = [api.get("/ref/account", params={"Limit": 1}).status_code for _ in range(61)]
    assert statuses[:60] == [200] * 60
    assert statuses[60] == 503
    assert _errors(api.get("/ref/account")) == ["You reached 60 calls per minute API limit"]
    # Another application key has its own budget.
    other = sandbox_credentials("another tenant")
    headers = {"api-auth-accountid": other["account_id"], "api-auth-applicationkey": other["application_key"]}
    assert httpx.get(f"{server.url}/cin7/ExternalApi/v2/ref/account", headers=headers).status_code == 200
    set_rate_limit(server, per_minute=1, status=429)
    api.get("/ref/account").raise_for_status()
    assert api.get("/ref/account").status_code == 429
