"""The Procurify client over HTTP against the sandbox: token caching and renewal, pagination,
the modified-date window in the tenant's time zone, and Procurify's refusals as typed errors."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.core.errors import ConnectorError, TargetRejected
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.procurify.simulator import CLIENT_SECRET, client_id_for
from ml_connector_pipelines.systems.procurify.client import ProcurifyClient

_numbers = itertools.count(1)


@pytest.fixture
def domain() -> str:
    return f"client-{next(_numbers)}"


def client_for(server: SandboxServer, domain: str, **config: Any) -> ProcurifyClient:
    return ProcurifyClient(
        f"{server.url}/procurify/{domain}", client_id_for(domain), CLIENT_SECRET, config=config
    )


def control(server: SandboxServer, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, f"{server.url}/_sandbox/procurify/{route}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_one_cached_token_and_a_new_one_after_early_revocation(
    sandbox_server: SandboxServer, domain: str
) -> None:
    with client_for(sandbox_server, domain, procurify_page_size=4) as client:
        vendors = client.vendors()  # several pages, followed through `next`
        assert len(vendors) == len({v.id for v in vendors}) > 4
        client.account_codes()
        assert client.auth.tokens_fetched == 1
        control(sandbox_server, "POST", f"tenants/{domain}/revoke_tokens")
        assert client.departments()  # 401, one new token, the same call again
        assert client.auth.tokens_fetched == 2


def test_the_day_window_follows_the_tenant_time_zone(sandbox_server: SandboxServer, domain: str) -> None:
    day = datetime.now(UTC).date() - timedelta(days=2)
    # 04:30 UTC on `day` is 23:30 the evening before in New York; midnight UTC starts `day` in UTC.
    control(
        sandbox_server,
        "PATCH",
        f"tenants/{domain}/records/purchase_orders/5",
        {"last_modified": f"{day.isoformat()}T04:30:00Z"},
    )
    control(
        sandbox_server,
        "PATCH",
        f"tenants/{domain}/records/purchase_orders/6",
        {"last_modified": f"{day.isoformat()}T00:00:00Z"},
    )

    def numbers(client: ProcurifyClient, on: date) -> set[int]:
        return {order.procurify_po for order in client.purchase_orders(on)}

    with client_for(sandbox_server, domain) as utc:
        assert {5, 6} <= numbers(utc, day)
        assert not {5, 6} & numbers(utc, day - timedelta(days=1))  # midnight belongs to one day only
    with client_for(sandbox_server, domain, procurify_timezone="America/New_York") as new_york:
        assert 5 in numbers(new_york, day - timedelta(days=1))
        assert 5 not in numbers(new_york, day)


def test_lines_come_with_their_gl_coding(sandbox_server: SandboxServer, domain: str) -> None:
    today = datetime.now(UTC).date()
    with client_for(sandbox_server, domain) as client:
        orders = [o for n in range(10) for o in client.approved_purchase_orders(today - timedelta(days=n))]
        bills = [b for n in range(10) for b in client.approved_bills(today - timedelta(days=n))]
    assert orders and all(o.state != 1 for o in orders)
    assert all(line.account.account_code.code for o in orders for line in o.lines)
    assert bills and {b.status for b in bills} == {2}
    assert all(a.amount > 0 for b in bills for item in b.items for a in item.cost_allocations)


def test_refusals_are_typed_errors_with_procurifys_message(
    sandbox_server: SandboxServer, domain: str
) -> None:
    control(sandbox_server, "PUT", f"tenants/{domain}/config", {"max_page_size": 50})
    try:
        with client_for(sandbox_server, domain, procurify_page_size=100) as client:
            with pytest.raises(TargetRejected) as raised:
                client.vendors()
            assert raised.value.status == 403 and "suspended" in raised.value.target_message
    finally:
        control(
            sandbox_server, "PUT", f"tenants/{domain}/config", {"suspended": False, "max_page_size": None}
        )
    with client_for(sandbox_server, domain) as client, pytest.raises(ConnectorError, match="another host"):
        client._own("https://evil.example.com/api/v3/vendors/?page=2")


def test_a_po_that_does_not_fit_its_model_is_named_and_the_others_flow(
    sandbox_server: SandboxServer, domain: str
) -> None:
    day = datetime.now(UTC).date()
    for number in (7, 8):
        control(sandbox_server, "PATCH", f"tenants/{domain}/records/purchase_orders/{number}", {})
    control(sandbox_server, "PATCH", f"tenants/{domain}/records/purchase_orders/7", {"state": "unknown"})
    with client_for(sandbox_server, domain) as client:
        numbers = {order.procurify_po for order in client.purchase_orders(day)}
        assert 8 in numbers and 7 not in numbers
        assert [(r.record_id, r.field) for r in client.rejected] == [("PFY-7", "state")]
