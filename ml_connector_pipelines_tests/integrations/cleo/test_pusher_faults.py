"""Nothing happens twice when answers are lost: commit-then-timeout on every kind of upload, a run
killed between the upload and its ledger write, and a poll killed between storing and deleting."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.integrations.cleo.pushers import (
    INBOX_SOURCE,
    PURCHASE_ORDERS_850,
    EdiSetup,
    InboundProcessor,
    MailboxPoller,
    PurchaseOrderPusher,
    consume_inbox,
)
from ml_connector_pipelines.integrations.kit.pushers import push_all
from ml_connector_pipelines.systems.cleo.models import TradingPartner

from .conftest import CleoTenant
from .test_pushers import ap_invoices, poll_and_process, set_up_partner


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the flow catches it."""


class DiesAfter:
    """The real transport, with the process dying right after one kind of call succeeded."""

    def __init__(self, inner: Any, method: str) -> None:
        self.inner = inner
        self.method = method
        self.requests_made = 0

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)
        if name != self.method:
            return call

        def then_die(*args: Any, **kwargs: Any) -> Any:
            call(*args, **kwargs)
            raise Killed(f"killed after {name}")

        return then_die


class KilledAfterUpload(EdiSetup):
    def transport(self, partner: TradingPartner) -> Any:
        return DiesAfter(super().transport(partner), "upload")


class KilledAfterStoring(EdiSetup):
    def transport(self, partner: TradingPartner) -> Any:
        return DiesAfter(super().transport(partner), "delete")  # the file is deleted, the run dies


def orders(t: CleoTenant, count: int) -> list:
    return [t.order.model_copy(update={"po_number": f"{t.order.po_number}-{n}"}) for n in range(count)]


def test_commit_then_timeout_on_uploads_creates_each_850_once(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    if t.partner.transport == "sftp":
        pytest.skip("the sandbox injects faults on HTTP; the SFTP variant is the kill test below")
    set_up_partner(t)
    body = {"profile": "none", "seed": 11, "systems": ["cleo"], "overrides": {"commit_then_timeout": 0.3}}
    httpx.put(f"{t.sandbox.url}/_sandbox/faults", json=body, timeout=30).raise_for_status()
    pending = orders(t, 8)
    for run in range(4):  # a failed record stays pending; the next run looks it up first
        pusher = PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850, f"run-{run}", lease_seconds=0), t.edi())
        pending = [o for o in pending if pusher.sync(o).action == "failed"]
        if not pending:
            break
    injected = httpx.get(f"{t.sandbox.url}/_sandbox/faults", timeout=30).json()["injected"]
    t.sandbox.set_faults("none")
    assert injected.get("commit_then_timeout", 0) > 0
    assert pending == []
    sent = Counter(f["name"].rsplit("_", 1)[0] for f in t.folder("upload"))
    assert sent == Counter({f"850_{o.po_number}": 1 for o in orders(t, 8)})
    for order in orders(t, 8):
        entry = t.state.ledger.get(t.name, PURCHASE_ORDERS_850, order.po_number)
        assert entry.status == "done" and entry.target_id.split("#")[0] in {
            f["name"] for f in t.folder("upload")
        }


def test_a_run_killed_between_upload_and_ledger_write_is_recovered_without_a_second_850(
    cleo_tenant: CleoTenant,
) -> None:
    t = cleo_tenant
    set_up_partner(t)
    with pytest.raises(Killed):
        PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850, "run-killed"), t.edi(KilledAfterUpload)).sync(
            t.order
        )
    entry = t.state.ledger.get(t.name, PURCHASE_ORDERS_850, t.order.po_number)
    assert entry.status == "pending" and entry.target_id is None
    assert len(t.folder("upload")) == 1

    # The next run (the dead run's lease has run out) finds the file instead of uploading again.
    session = t.session(PURCHASE_ORDERS_850, "run-next", lease_seconds=0)
    result = PurchaseOrderPusher(session, t.edi()).sync(t.order)
    assert (result.action, result.reason) == ("created", "recovered")
    [sent] = t.folder("upload")
    assert result.target_id == f"{sent['name']}#000000001"


def test_a_poll_killed_after_deleting_keeps_the_file_and_a_repoll_stores_nothing_twice(
    cleo_tenant: CleoTenant,
) -> None:
    t = cleo_tenant
    set_up_partner(t)
    t.drop_810(invoice_number="K-1", po_number="X", lines=t.invoice_lines())
    t.drop_810(invoice_number="K-2", po_number="X", lines=t.invoice_lines())
    with pytest.raises(Killed):
        MailboxPoller(t.state.inbox, t.name, t.edi(KilledAfterStoring)).poll(t.partner)
    # The first file was stored before it was deleted; the second is still in Cleo.
    assert len(t.state.inbox.pending(INBOX_SOURCE, t.name)) == 1
    assert len(t.folder("download")) == 1
    result = MailboxPoller(t.state.inbox, t.name, t.edi()).poll(t.partner)
    assert len(result.stored) == 1 and t.folder("download") == []
    assert len(t.state.inbox.pending(INBOX_SOURCE, t.name)) == 2


def test_inbound_under_faults_creates_each_ap_invoice_and_997_once(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    set_up_partner(t)
    assert PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850), t.edi()).sync(t.order).action == "created"
    poll_and_process(t, "run-ack")
    for n in range(4):
        t.drop_810(invoice_number=f"F-{n}", po_number=t.order.po_number, lines=t.invoice_lines())
    body = {"profile": "flaky", "seed": 5, "systems": ["cleo"]}
    httpx.put(f"{t.sandbox.url}/_sandbox/faults", json=body, timeout=30).raise_for_status()
    for run in range(3):
        try:
            poll_and_process(t, f"run-{run}")
        except Exception:  # a listing that ran out of retries: the next poll picks it up
            continue
    t.sandbox.set_faults("none")
    poll_and_process(t, "run-final")
    for n in range(4):
        assert len(ap_invoices(t, f"F-{n}")) == 1
    acks = Counter(f["name"].rsplit("_", 1)[0] for f in t.folder("upload") if f["name"].startswith("997_"))
    assert len(acks) == 4 and set(acks.values()) == {1}


def test_concurrent_pushes_never_share_a_control_number(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    set_up_partner(t)
    t.control_numbers = t.state.next_sequence  # the state store's atomic sequence, as in production
    session_a = t.session(PURCHASE_ORDERS_850, "run-a")
    session_b = t.session(PURCHASE_ORDERS_850, "run-b")
    batch = orders(t, 12)
    # Two runs at once over disjoint halves, four workers each.
    threads = [
        threading.Thread(
            target=push_all,
            args=(PurchaseOrderPusher(session, t.edi()), session, half, lambda o: o.po_number),
            kwargs={"workers": 4},
        )
        for session, half in ((session_a, batch[::2]), (session_b, batch[1::2]))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    controls = [f["name"].rsplit("_", 1)[1] for f in t.folder("upload")]
    assert len(controls) == 12 and len(set(controls)) == 12


def test_a_run_killed_after_booking_an_810_never_books_it_twice(cleo_tenant: CleoTenant) -> None:
    t = cleo_tenant
    set_up_partner(t)
    assert PurchaseOrderPusher(t.session(PURCHASE_ORDERS_850), t.edi()).sync(t.order).action == "created"
    poll_and_process(t, "run-ack")
    t.drop_810(invoice_number="KILL-1", po_number=t.order.po_number, lines=t.invoice_lines())
    MailboxPoller(t.state.inbox, t.name, t.edi()).poll(t.partner)
    dying = DiesAfter(t.infor, "create_ap_invoice")
    processor = InboundProcessor(t.sessions("run-killed"), t.edi(), lambda: dying, t.division)
    with pytest.raises(Killed):
        consume_inbox(t.state, t.name, processor, "run-killed")
    assert len(ap_invoices(t, "KILL-1")) == 1
    # The next run (leases let go at once here) takes the file again: still one AP invoice.
    sessions: dict[str, Any] = {}

    def session_for(flow: str) -> Any:
        return sessions.setdefault(flow, t.session(flow, "run-next", lease_seconds=0))

    inbox_rows = t.state.inbox.pending(INBOX_SOURCE, t.name, lease_seconds=0)
    assert len(inbox_rows) == 1  # the killed run never marked the file processed
    t.state.inbox.release([row.id for row in inbox_rows])
    results = consume_inbox(
        t.state, t.name, InboundProcessor(session_for, t.edi(), lambda: t.infor, t.division), "run-next"
    )
    outcome = next(r for r in results if r.source_id.endswith("/KILL-1"))
    # With the adapter's find_ap_invoice the lost answer is recovered; without one, Infor's duplicate
    # check refuses the second booking and the record is flagged. Either way: one AP invoice.
    assert outcome.action in ("created", "flagged"), outcome.reason
    assert len(ap_invoices(t, "KILL-1")) == 1
