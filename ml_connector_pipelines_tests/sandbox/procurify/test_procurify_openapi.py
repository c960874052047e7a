"""Every Procurify simulator answer validates against Procurify's OpenAPI document, and so does
every request our client sends (openapi-core; see openapi_check.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.procurify.simulator import CLIENT_SECRET, client_id_for
from ml_connector_pipelines.systems.procurify.client import ProcurifyClient

from .openapi_check import ValidatingTransport

EVERY_ENDPOINT = {
    "POST /oauth/token",
    "GET /api/v2/purchase_orders/purchased/all",
    "GET /api/v2/purchase_orders/{x}",
    "GET /api/v3/ap/bills",
    "GET /api/v2/ap/bills/{x}",
    "GET /api/v3/order-items",
    "GET /api/v3/vendors",
    "GET /api/v3/account-codes",
    "GET /api/v3/departments",
    "GET /api/v2/locations",
    "GET /api/v3/users/me",
}


def test_every_response_and_request_matches_the_openapi_document(sandbox_server: SandboxServer) -> None:
    domain = "openapi-check"
    prefix = f"/procurify/{domain}"
    transport = ValidatingTransport(prefix=prefix)
    base = f"{sandbox_server.url}{prefix}"
    # A small page size so every list really pages through `next`.
    with ProcurifyClient(
        base, client_id_for(domain), CLIENT_SECRET, config={"procurify_page_size": 5}, transport=transport
    ) as client:
        client.ping()
        assert len(client.vendors()) > 5
        assert client.account_codes() and client.departments() and client.locations()
        today = datetime.now(UTC).date()
        days = [today - timedelta(days=n) for n in range(3)]
        orders = [order for day in days for order in client.purchase_orders(day)]
        bills = [bill for day in days for bill in client.bills(day)]
        assert orders and bills
        assert all(order.lines for order in orders) and all(bill.items for bill in bills)
        # Filters and lists the flows do not use, so their answers are checked too.
        for path, params in [
            ("/api/v3/order-items/", {"last_modified_0": today.isoformat(), "page_size": 3}),
            ("/api/v2/purchase_orders/receivable/open/", {"pref_vendor": orders[0].vendor.id}),
            ("/api/v2/purchase_orders/purchased/cancelled/", {"date_0": "2020-01-01"}),
            ("/api/v3/ap/bills/", {"vendor": bills[0].vendor.id, "invoice_date_1": today.isoformat()}),
            ("/api/v3/vendors/", {"external_id": "S00001"}),
            ("/api/v3/account-codes/", {"active": "true", "search": "freight"}),
            ("/api/v2/purchase_orders/1/", {}),
        ]:
            client.http.get(path, params=params)
    assert transport.problems == []
    assert EVERY_ENDPOINT <= set(transport.checked), sorted(transport.checked)
