"""Cleo's part of `ml-connector demo`: the demo tenant gets an EDI supplier on the sandbox's Cleo,
`cleo_edi` sends its open POs as 850s, the supplier answers with one good 810 and one malformed 810,
the mailbox sensor's poll stores them and `cleo_inbound_job` books the good one in Infor AP (the
malformed one is flagged with its position), with a 997 back for each."""

from collections.abc import Callable
from datetime import date
from typing import Any

import httpx

from ...sandbox.host import SandboxServer
from ...sandbox.infor.simulator import sandbox_ionapi
from ..partitions import partition_key
from ..tenancy import Connector, open_client, register_tenant
from .assets import poll_mailboxes

Run = Callable[[str, Any, Any, str], Any]


def run_cleo_demo(
    connector: Connector, sandbox: SandboxServer, instance: Any, tenant: str, run: Run
) -> list[Any]:
    infor = sandbox.get_state("infor")["tenants"][tenant]
    order = next(po for po in infor["purchase_orders"] if po["status"] == "open" and po["lines"])
    gl = next(account for account in infor["gl_accounts"] if account["dimension"] == 1)
    partner = {
        "alias": f"SUP-{order['supplier_id']}",
        "isa_id": f"SUP{order['supplier_id']}",
        "supplier_id": order["supplier_id"],
        "transport": "sftp",
        "gl_account": gl["account_id"],
    }
    secrets = sandbox.simulator("cleo").credentials()
    keys = ("base_url", "password", "sftp_host", "sftp_port", "sftp_host_key")
    register_tenant(
        connector,
        tenant,
        ionapi=sandbox_ionapi(sandbox.url, tenant),
        config={"cleo_trading_partners": [partner], "cleo_isa_id": tenant},
        cleo={"username": tenant, **{key: secrets[key] for key in keys}},
        instance=instance,
    )
    day = date.fromisoformat(order["modified_date"])
    results = [
        run("cleo_edi", partition_key(tenant, day), instance, f"Cleo EDI for {tenant} / {day}: 850s out")
    ]
    lines = [
        {"quantity": line["quantity"], "unit_price": line["unit_price"], "buyer_part": line["item_number"]}
        for line in order["lines"]
    ]
    url = f"{sandbox.url}/_sandbox/cleo/accounts/{tenant}/mailboxes/{partner['alias']}/invoices"
    body = {"sender_id": partner["isa_id"], "po_number": order["po_number"], "lines": lines}
    for extra in ({"invoice_number": "EDI-1"}, {"invoice_number": "EDI-2", "malformed": "bad_quantity"}):
        httpx.post(url, json={**body, **extra}, timeout=30).raise_for_status()
    print(f"- supplier {order['supplier_id']} sent two 810s for PO {order['po_number']} (one malformed)")
    with open_client(connector, tenant, "cleo") as client:
        stored = poll_mailboxes(tenant, connector.state, client)
    print(f"- Cleo mailboxes polled over SFTP: {stored} files stored in the inbox, then deleted in Cleo")
    results.append(run("cleo_inbound_job", tenant, instance, "Cleo files to Infor AP invoices and 997s"))
    return results
