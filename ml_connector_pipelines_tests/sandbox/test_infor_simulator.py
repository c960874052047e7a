"""The Infor simulator over real HTTP: auth, M3 transactions, SyteLine IDOs, seed data, control routes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import InforSimulator, sandbox_ionapi

TENANT = "ACME_TST"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(seed=7, simulators=[InforSimulator]) as srv:
        yield srv


class Gateway:
    """A bare-bones caller of one tenant: just enough HTTP to exercise the wire format."""

    def __init__(self, server: SandboxServer, tenant: str) -> None:
        self.server, self.tenant = server, tenant
        self.ion = sandbox_ionapi(server.url, tenant)
        self.base = f"{self.ion['iu']}/{tenant}"
        self.token = self.password_grant().json()["access_token"]

    def password_grant(self, **overrides: str) -> httpx.Response:
        form = {
            "grant_type": "password",
            "username": self.ion["saak"],
            "password": self.ion["sask"],
            "client_id": self.ion["ci"],
            "client_secret": self.ion["cs"],
            **overrides,
        }
        return httpx.post(self.ion["pu"] + self.ion["ot"], data=form)

    def m3(self, program: str, transaction: str, matrix: str = "", **inputs: Any) -> httpx.Response:
        url = f"{self.base}/M3/m3api-rest/v2/execute/{program}/{transaction}{matrix}"
        return httpx.get(url, params=inputs, headers={"Authorization": f"Bearer {self.token}"})

    def ok(self, program: str, transaction: str, matrix: str = "", **inputs: Any) -> list[dict[str, str]]:
        response = self.m3(program, transaction, matrix, **inputs)
        assert response.status_code == 200, response.text
        result = response.json()["results"][0]
        assert "errorMessage" not in result, result
        return result["records"]

    def nok(self, program: str, transaction: str, **inputs: Any) -> dict[str, Any]:
        response = self.m3(program, transaction, **inputs)
        assert response.status_code == 200
        body = response.json()
        assert body["nrOfFailedTransactions"] == 1 and body["results"][0]["errorType"] == "ServerReturnedNOK"
        return body["results"][0]

    def select(self, query: str, maxrecs: int = 0) -> list[list[str]]:
        records = self.ok("EXPORTMI", "Select", f";maxrecs={maxrecs}", QERY=query)
        return [r["REPL"].split(";") for r in records]

    def ido(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "X-Infor-MongooseConfig": f"{self.tenant}_SITE1"}
        return httpx.request(
            method, f"{self.base}/CSI/IDORequestService/ido/{path}", headers=headers, **kwargs
        )

    def state(self) -> dict[str, Any]:
        return self.server.get_state("infor")["tenants"][self.tenant]

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.request(
            method, f"{self.server.url}/_sandbox/infor/tenants/{self.tenant}/{path}", json=body
        )


@pytest.fixture(scope="module")
def gw(server: SandboxServer) -> Gateway:
    return Gateway(server, TENANT)


# Auth -----------------------------------------------------------------------------------------------


def test_password_grant_with_basic_client_auth_and_refresh(server: SandboxServer) -> None:
    gw = Gateway(server, "AUTH_A")
    basic = base64.b64encode(f"{gw.ion['ci']}:{gw.ion['cs']}".encode()).decode()
    token = httpx.post(
        gw.ion["pu"] + gw.ion["ot"],
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "password", "username": gw.ion["saak"], "password": gw.ion["sask"]},
    )
    assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
    assert token.json()["expires_in"] == 7200
    refreshed = httpx.post(
        gw.ion["pu"] + gw.ion["ot"],
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "refresh_token", "refresh_token": token.json()["refresh_token"]},
    )
    assert refreshed.status_code == 200
    gw.token = refreshed.json()["access_token"]
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 200
    assert gw.state()["tokens_issued"] == 3


def test_bad_credentials_and_wrong_tenant_are_rejected(server: SandboxServer) -> None:
    gw = Gateway(server, "AUTH_B")
    assert gw.password_grant(client_secret="nope").status_code == 401
    bad = gw.password_grant(password="nope")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert gw.password_grant(username="OTHER#sandbox-saak").status_code == 400
    other = Gateway(server, "AUTH_C")
    other.token = gw.token  # a token of AUTH_B used on AUTH_C
    assert other.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 401
    gw.token = "unknown"
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 401


def test_token_lifetime_refresh_switch_and_revocation(server: SandboxServer) -> None:
    gw = Gateway(server, "AUTH_D")
    assert gw.control("PUT", "auth", {"token_lifetime": 0, "issue_refresh_token": False}).status_code == 200
    short = gw.password_grant().json()
    assert "refresh_token" not in short and short["expires_in"] == 0
    gw.token = short["access_token"]
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 401  # already expired
    gw.control("PUT", "auth", {"token_lifetime": 3600, "issue_refresh_token": True})
    gw.token = gw.password_grant().json()["access_token"]
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 200
    assert gw.control("POST", "revoke_tokens").json()["revoked"] >= 2
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 401


def test_revoking_a_refresh_token_revokes_its_grant(server: SandboxServer) -> None:
    gw = Gateway(server, "AUTH_E")
    grant = gw.password_grant().json()
    gw.token = grant["access_token"]
    revoke = httpx.post(
        gw.ion["pu"] + gw.ion["or"],
        auth=(gw.ion["ci"], gw.ion["cs"]),
        data={"token": grant["refresh_token"], "token_type_hint": "refresh_token"},
    )
    assert revoke.status_code == 200
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 401
    refresh = gw.password_grant(grant_type="refresh_token", refresh_token=grant["refresh_token"])
    assert refresh.status_code == 400


def test_fault_injection_revokes_tokens_early(server: SandboxServer) -> None:
    gw = Gateway(server, "AUTH_F")
    faults = {"profile": "none", "systems": ["infor"], "overrides": {"token_revocation": 1.0}}
    httpx.put(f"{server.url}/_sandbox/faults", json=faults).raise_for_status()
    try:
        assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 401
    finally:
        server.set_faults("none")
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 401  # stays revoked
    gw.token = gw.password_grant().json()["access_token"]
    assert gw.m3("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS").status_code == 200


# Seed data ------------------------------------------------------------------------------------------


def test_seed_has_valid_bank_details_and_spread(gw: Gateway) -> None:
    state = gw.state()
    suppliers = state["suppliers"]
    assert len(suppliers) == 60 and len(state["customers"]) == 40 and len(state["ap_invoices"]) == 120
    assert (
        len(state["ar_invoices"]) == 80
        and len(state["purchase_orders"]) == 30
        and len(state["gl_accounts"]) == 40
    )
    accounts = [s["bank_account"] for s in suppliers]
    invalid = []
    for account in (a for a in accounts if a["kind"] == "iban"):
        try:
            IBAN(account["iban"])
        except SchwiftyException:
            invalid.append(account["iban"])
    assert len(invalid) == 2
    for account in (a for a in accounts if a["kind"] == "aba"):
        d = [int(c) for c in account["aba_routing"]]
        assert (
            len(d) == 9
            and (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0
        )
        assert (
            account["country"] == "US"
            and account["state"]
            and account["account_type"] in ("CHECKING", "SAVINGS")
        )
    assert all(len(a["sort_code"]) == 6 for a in accounts if a["kind"] == "sort_code")
    assert {a["kind"] for a in accounts} == {"iban", "sort_code", "aba", "email", "local"}
    assert len({s["currency"] for s in suppliers}) >= 12
    today = date.fromisoformat(state["today"])
    dates = {date.fromisoformat(s["modified_date"]) for s in suppliers}
    assert min(dates) >= today - timedelta(days=9) and max(dates) == today and len(dates) >= 5


def test_seed_is_deterministic_per_seed_and_tenant(server: SandboxServer) -> None:
    first, second = Gateway(server, "SEED_A"), Gateway(server, "SEED_B")
    a, b = first.state()["suppliers"], second.state()["suppliers"]
    assert [s["name"] for s in a] != [s["name"] for s in b]
    first.control("PUT", "seed", {"suppliers": 60})
    assert first.state()["suppliers"] == a
    big = first.control("PUT", "seed", {"suppliers": 2000, "seed": 99}).json()
    assert big["counts"]["suppliers"] == 2000 and big["counts"]["customers"] == 40


# M3 -------------------------------------------------------------------------------------------------


def test_exportmi_keyset_paging_returns_each_row_once(gw: Gateway) -> None:
    state = gw.state()
    day = state["suppliers"][0]["modified_date"]
    expected = sorted(s["supplier_id"] for s in state["suppliers"] if s["modified_date"] == day)
    seen: list[str] = []
    last = ""
    while True:
        rows = gw.select(
            f"IDSUNO,IDSUNM,IDLMDT from CIDMAS where IDLMDT={day.replace('-', '')} "
            f"and IDSUNO>'{last}' order by IDSUNO",
            maxrecs=2,
        )
        seen += [r[0] for r in rows]
        if len(rows) < 2:
            break
        last = rows[-1][0]
    assert seen == expected


def test_exportmi_header_row_errors_and_400s(gw: Gateway) -> None:
    records = gw.ok(
        "EXPORTMI",
        "Select",
        ";maxrecs=1",
        QERY="OKCUNO,OKCUNM from OCUSMA order by OKCUNO",
        SEPC="|",
        HDRS="1",
    )
    assert records[0]["REPL"] == "OKCUNO|OKCUNM" and records[1]["REPL"].startswith("C00001|")
    assert gw.nok("EXPORTMI", "Select", QERY="XXNO from NOSUCH")["errorField"] == "QERY"
    assert gw.select("IDSUNO from CIDMAS where IDSUNO='NOPE'") == []
    missing = gw.m3("EXPORTMI", "Select")
    assert missing.status_code == 400 and missing.json()["errorType"] == "MandatoryInputFieldNotFound"
    assert missing.json()["wasTerminated"] is True and missing.json()["errorField"] == "QERY"
    unknown = gw.m3("CRS999MI", "Lst")
    assert unknown.status_code == 400 and unknown.json()["errorType"] == "TransactionNotFound"


def test_bank_account_read_and_change(gw: Gateway) -> None:
    supplier = next(s for s in gw.state()["suppliers"] if s["bank_account"]["kind"] == "sort_code")
    (record,) = gw.ok("CRS692MI", "LstByAccHolder", BKTP="2", ACHO=supplier["supplier_id"])
    assert record["BRNO"] == supplier["bank_account"]["sort_code"] and record["IBAN"] == ""
    assert "SWBI" not in record and "BACN" not in record  # GetBankAccount's fields, not the list's
    (full,) = gw.ok("CRS692MI", "GetBankAccount", BKTP="2", ACHO=supplier["supplier_id"])
    assert full["SWBI"] == supplier["bank_account"]["bic"]
    assert full["BACN"] == supplier["bank_account"]["account_number"]
    everyone = gw.ok("CRS692MI", "LstByType", BKTP="2", maxrecs="0")
    assert supplier["supplier_id"] in {r["ACHO"] for r in everyone} and "SWBI" not in everyone[0]
    branches = gw.ok("CRS691MI", "LstByNumber", maxrecs="0")
    assert supplier["bank_account"]["bic"] in {b["SWIC"] for b in branches}
    assert gw.ok("CRS692MI", "LstByAccHolder", BKTP="9", ACHO=supplier["supplier_id"]) == []
    gw.ok(
        "CRS692MI",
        "ChgBasicData",
        BKTP="2",
        ACHO=supplier["supplier_id"],
        BKID=record["BKID"],
        DIVI="AAA",
        BKIN="1",
        IBAN="GB33BUKB20201555555555",
        BRNO="?",
    )
    changed = next(s for s in gw.state()["suppliers"] if s["supplier_id"] == supplier["supplier_id"])
    assert (
        changed["bank_account"]["kind"] == "iban"
        and changed["bank_account"]["iban"] == "GB33BUKB20201555555555"
    )
    assert changed["bank_account"]["sort_code"] is None and changed["modified_date"] == gw.state()["today"]
    today = gw.state()["today"].replace("-", "")
    assert [supplier["supplier_id"]] == [
        r[0]
        for r in gw.select(f"IDSUNO from CIDMAS where IDLMDT={today} and IDSUNO='{supplier['supplier_id']}'")
    ]


def test_purchase_order_entry_and_lookup(gw: Gateway) -> None:
    (entry,) = gw.ok("PPS370MI", "StartEntry", BAOR="EXT")
    (head,) = gw.ok(
        "PPS370MI",
        "AddHead",
        MSGN=entry["MSGN"],
        FACI="A01",
        WHLO="100",
        SUNO="S00001",
        DWDT="20261201",
        CUCD="EUR",
        YRE1="PROC-PO-77",
    )
    for item in ("BLT-M8-40", "NUT-M8"):
        gw.ok(
            "PPS370MI",
            "AddLine",
            MSGN=entry["MSGN"],
            PUNO=head["PUNO"],
            ITNO=item,
            ORQA="10",
            PUPR="1.25",
            PITD="item",
        )
    assert gw.select("IAPUNO from MPHEAD where IAYRE1='PROC-PO-77'") == []  # not there before FinishEntry
    gw.ok("PPS370MI", "FinishEntry", MSGN=entry["MSGN"])
    assert gw.select("IAPUNO,IASUNO from MPHEAD where IAYRE1='PROC-PO-77'") == [[head["PUNO"], "S00001"]]
    lines = gw.select(
        f"IBPUNO,IBPNLI,IBITNO,IBORQA from MPLINE where IBPUNO>='{head['PUNO']}' "
        f"and IBPUNO<='{head['PUNO']}' order by IBPUNO"
    )
    assert lines == [[head["PUNO"], "1", "BLT-M8-40", "10"], [head["PUNO"], "2", "NUT-M8", "10"]]
    po = next(p for p in gw.state()["purchase_orders"] if p["po_number"] == head["PUNO"])
    assert po["external_ref"] == "PROC-PO-77" and po["lines"][1]["unit_price"] == "1.25"
    assert (
        gw.nok(
            "PPS370MI", "AddHead", MSGN=entry["MSGN"], FACI="A01", WHLO="100", SUNO="S00001", DWDT="20261201"
        )["errorField"]
        == "MSGN"
    )


def test_enterprise_search_and_the_gets_on_what_it_finds(gw: Gateway) -> None:
    """Search* (SQRY) find ledger rows and POs by their index fields; answers carry only the
    metadata's outputs; anything outside the sandbox's Lucene subset, or an unknown field, is NOK."""
    from ml_connector_pipelines.sandbox.infor.mi_metadata import lookup

    state = gw.state()
    invoice = next(i for i in state["ap_invoices"] if i["status"] == "open")
    day = invoice["modified_date"].replace("-", "")
    hits = gw.ok("APS200MI", "SearchSupInvoic", ";maxrecs=0", SQRY=f"TRCD:40 AND LMDT:{day}")
    expected = {
        i["invoice_number"] for i in state["ap_invoices"] if i["modified_date"] == invoice["modified_date"]
    }
    assert {hit["SINO"] for hit in hits} == expected
    outputs = set(lookup("APS200MI", "SearchSupInvoic").outputs)  # type: ignore[union-attr]
    assert all(set(hit) <= outputs for hit in hits) and "SUNO" not in hits[0]
    hit = next(h for h in hits if h["SINO"] == invoice["invoice_number"])
    (got,) = gw.ok("APS200MI", "GetInvoice", YEA4=hit["YEA4"], JRNO=hit["JRNO"], JSNO=hit["JSNO"])
    assert (got["SUNO"], got["CUAM"], got["TRCD"]) == (invoice["supplier_id"], invoice["amount"], "40")
    assert set(got) <= set(lookup("APS200MI", "GetInvoice").outputs)  # type: ignore[union-attr]
    assert (
        gw.nok("APS200MI", "GetInvoice", YEA4=hit["YEA4"], JRNO="9999999", JSNO="1")["errorField"] == "JRNO"
    )
    # Prefix match; escaped syntax characters; refused syntax and fields.
    prefix = invoice["invoice_number"][:-1].replace("-", "\\-")  # invoice numbers hold "-"
    assert hit["SINO"] in {h["SINO"] for h in gw.ok("APS200MI", "SearchSupInvoic", SQRY=f"SINO:{prefix}*")}
    for query in ("TRCD:40 OR LMDT:1", "(TRCD:40)", "TRCD:[1 TO 9]", "SINO:A-B", "invoice", "XXXX:1"):
        assert gw.nok("APS200MI", "SearchSupInvoic", SQRY=query)["errorField"] == "SQRY", query
    assert gw.m3("APS200MI", "SearchSupInvoic").status_code == 400  # SQRY is required

    order = state["purchase_orders"][0]
    (head,) = gw.ok("PPS200MI", "SearchHead", SQRY=f"PUNO:{order['po_number']}")
    assert (head["SUNO"], head["PUNO"]) == (order["supplier_id"], order["po_number"])
    assert "CUCD" not in head and set(head) <= set(lookup("PPS200MI", "SearchHead").outputs)  # type: ignore[union-attr]
    (basic,) = gw.ok("PPS001MI", "GetHeadBasic", PUNO=order["po_number"])
    assert basic["CUCD"] == order["currency"]
    lines = gw.ok("PPS200MI", "LstLine", PUNO=order["po_number"])
    assert [line["ITNO"] for line in lines] == [line["item_number"] for line in order["lines"]]
    assert gw.nok("PPS001MI", "GetHeadBasic", PUNO="NOSUCH")["errorField"] == "PUNO"

    ar = next(i for i in state["ar_invoices"])
    number = ar["invoice_number"].replace("-", "\\-")
    found = gw.ok("ARS200MI", "SearchInvoices", SQRY=f"TRCD:10 AND CINO:{number}")
    assert [(h["CINO"], h["TRCD"]) for h in found] == [(ar["invoice_number"], "10")]
    (posting,) = gw.ok(
        "ARS200MI", "GetInvoice", YEA4=found[0]["YEA4"], JRNO=found[0]["JRNO"], JSNO=found[0]["JSNO"]
    )
    assert (posting["CUNO"], posting["CUAM"]) == (ar["customer_id"], ar["amount"])


def test_supplier_invoice_batch_validation_and_duplicates(gw: Gateway) -> None:
    invoice = {"DIVI": "AAA", "SUNO": "S00002", "IVDT": "20261115", "SINO": "CLEO-810-1", "CUAM": "150.00"}
    (head,) = gw.ok("APS450MI", "AddHead", **invoice)
    gw.ok("APS450MI", "AddLine", INBN=head["INBN"], RDTP="8", NLAM="100")
    assert "differs" in gw.nok("APS455MI", "ValidByBatchNo", INBN=head["INBN"], DIVI="AAA")["errorMessage"]
    # AIT1 is not an input of APS450MI/AddLine (metadata): refused before the program runs.
    refused = gw.m3("APS450MI", "AddLine", INBN=head["INBN"], RDTP="8", NLAM="50", AIT1="4000")
    assert refused.status_code == 400 and refused.json()["errorType"] == "InputFieldNotFound"
    assert refused.json()["errorField"] == "AIT1"
    by_invoice = {"SPYN": "S00002", "SUNO": "S00002", "SINO": "CLEO-810-1", "DIVI": "AAA"}
    assert [r["SUPA"] for r in gw.ok("APS450MI", "LstInvBySupInv", **by_invoice)] == ["10"]
    gw.ok("APS450MI", "AddLine", INBN=head["INBN"], RDTP="8", NLAM="50")
    gw.ok("APS455MI", "ValidByBatchNo", INBN=head["INBN"], DIVI="AAA")
    assert [r["SUPA"] for r in gw.ok("APS450MI", "LstInvBySupInv", **by_invoice)] == ["50"]
    assert gw.select(
        "EPSUNO,EPSINO,EPRECO,EPCUAM from FPLEDG where EPSUNO='S00002' and EPSINO='CLEO-810-1'"
    ) == [["S00002", "CLEO-810-1", "0", "150"]]
    (got,) = gw.ok("APS450MI", "GetHead", INBN=head["INBN"])
    assert got["LMDT"] == gw.state()["today"].replace("-", "") and "STAT" not in got  # real outputs only
    assert gw.nok("APS450MI", "AddHead", **invoice)["errorMessage"] == "Invoice already exists"
    stored = next(i for i in gw.state()["ap_invoices"] if i["invoice_number"] == "CLEO-810-1")
    assert stored["status"] == "open" and [line["amount"] for line in stored["lines"]] == ["100", "50"]


def test_customer_payment_and_refund(gw: Gateway) -> None:
    invoice = next(
        i for i in gw.state()["ar_invoices"] if i["status"] == "open" and i["open_amount"] == i["amount"]
    )
    wrong = gw.m3("ARS040MI", "AddBatchHead", DIVI="AAA", PYDT="20261120", CUCD=invoice["currency"])
    assert wrong.status_code == 400 and wrong.json()["errorType"] == "InputFieldNotFound"
    head = {"PBID": "9000000001", "BOPE": "1", "DIVI": "AAA", "ACDT": "20261120"}
    assert gw.m3("ARS040MI", "AddBatchHead", PBID="9000000001").json()["errorField"] == "BOPE"
    assert gw.ok("ARS040MI", "AddBatchHead", **head) == [{"PBID": "9000000001"}]
    assert "already exists" in gw.nok("ARS040MI", "AddBatchHead", **head)["errorMessage"]
    line = {
        "PBID": "9000000001",
        "CUNO": invoice["customer_id"],
        "CINO": invoice["invoice_number"],
        "INYR": str(invoice["invoice_year"]),
        "CUCD": invoice["currency"],
        "AIT1": "1010",
    }
    gw.ok("ARS040MI", "AddBatchLine", **line, TRNO="1", PYAM=invoice["amount"], CKNO="pi_123")
    gw.ok("ARS040MI", "AddBatchLine", **line, TRNO="2", PYAM="-10", CKNO="re_456")
    again = gw.nok("ARS040MI", "AddBatchLine", **line, TRNO="1", PYAM=invoice["amount"], CKNO="pi_123")
    assert "already exists" in again["errorMessage"]
    bad = gw.nok("ARS040MI", "AddBatchLine", **{**line, "CINO": "0"}, TRNO="3", PYAM="1", CKNO="x")
    assert bad["errorField"] == "CINO"
    assert gw.m3("ARS040MI", "LstBatchLines", CKNO="pi_123").json()["errorType"] == "TransactionNotFound"
    gw.ok("ARS040MI", "ControlBatch", DIVI="AAA", PBID="9000000001")
    # Looked up in the AR ledger: payments are transaction code 20, credits on the invoice.
    found = gw.select("ESCINO,ESTRCD,ESCUAM from FSLEDG where ESCKNO='pi_123' and ESTRCD=20")
    assert found == [[invoice["invoice_number"], "20", "-" + invoice["amount"]]]
    state = gw.state()
    after = next(i for i in state["ar_invoices"] if i["invoice_number"] == invoice["invoice_number"])
    assert after["open_amount"] == "10" and after["status"] == "open"
    assert {p["reference"] for p in state["ar_payments"]} >= {"pi_123", "re_456"}


def test_extension_fields(gw: Gateway) -> None:
    keys = {"FILE": "FPLEDG", "PK01": "AAA", "PK02": "S00003", "PK03": "INV-1", "PK04": "2026"}
    assert gw.nok("CUGEX1MI", "GetFieldValue", **keys)["errorMessage"] == "Record does not exist"
    assert gw.nok("CUGEX1MI", "ChgFieldValue", **keys, A030="paid")["errorMessage"] == "Record does not exist"
    gw.ok("CUGEX1MI", "AddFieldValue", **keys, A030="queued", A130="tr_1", A230="2026-11-20T10:00:00Z")
    assert gw.nok("CUGEX1MI", "AddFieldValue", **keys)["errorMessage"] == "Record already exists"
    gw.ok("CUGEX1MI", "ChgFieldValue", **keys, A030="paid")
    (row,) = gw.ok("CUGEX1MI", "GetFieldValue", **keys)
    assert (row["A030"], row["A130"]) == ("paid", "tr_1")
    ext = next(e for e in gw.state()["extensions"] if e["invoice_key"] == "AAA/S00003/INV-1/2026")
    assert ext["status"] == "paid" and ext["external_id"] == "tr_1"


# SyteLine -------------------------------------------------------------------------------------------


def test_ido_requires_mongoose_config(gw: Gateway) -> None:
    response = httpx.get(
        f"{gw.base}/CSI/IDORequestService/ido/load/SLVendors", headers={"Authorization": f"Bearer {gw.token}"}
    )
    assert response.status_code == 400 and response.json()["Message"] == "MongooseConfig header required"


def test_ido_bookmark_paging_reads_every_vendor_once(gw: Gateway) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {
        "properties": "VendNum,Name,IBAN,RecordDate",
        "orderby": "Name DESC",
        "recordCap": 7,
    }
    while True:
        body = gw.ido("GET", "load/SLVendors", params=params).json()
        assert all("_ItemId" in item for item in body["Items"])
        seen += [item["VendNum"] for item in body["Items"]]
        if not body["MoreRowsExist"]:
            break
        params = {**params, "loadtype": "NEXT", "bookmark": body["Bookmark"]}
    suppliers = gw.state()["suppliers"]
    assert sorted(seen) == sorted(s["supplier_id"] for s in suppliers) and len(seen) == len(set(seen))
    names = {s["supplier_id"]: s["name"] for s in suppliers}
    assert [names[v] for v in seen] == sorted(names.values(), reverse=True)
    day = gw.state()["today"]
    recent = gw.ido(
        "GET", "load/SLVendors", params={"filter": f"RecordDate >= '{day}'", "recordcap": 0}
    ).json()
    assert {i["VendNum"] for i in recent["Items"]} == {
        s["supplier_id"] for s in suppliers if s["modified_date"] >= day
    }


def _props(**values: str) -> list[dict[str, Any]]:
    return [{"Name": k, "Value": v, "Modified": True, "IsNull": False} for k, v in values.items()]


def test_ido_writes_land_in_state(gw: Gateway) -> None:
    po = gw.ido(
        "POST",
        "update/SLPos",
        params={"refresh": "true"},
        json={
            "IDOName": "SLPos",
            "RefreshAfterSave": True,
            "Changes": [
                {
                    "Action": 1,
                    "Properties": _props(VendNum="S00004", OrderDate="2026-11-21", Uf_ExternalRef="CIN7-9"),
                }
            ],
        },
    ).json()
    assert po["Success"] is True
    po_number = po["Changes"][0]["PoNum"]
    item = gw.ido(
        "POST",
        "update/SLPoItems",
        json={
            "Changes": [
                {
                    "Action": 1,
                    "Properties": _props(PoNum=po_number, Item="BOX-40", QtyOrdered="3", ItemCost="2.5"),
                }
            ]
        },
    ).json()
    assert item["Success"] is True and item["Changes"][0]["PoLine"] == "1"
    bad = gw.ido(
        "POST",
        "update/SLAptrxs",
        json={
            "Changes": [
                {
                    "Action": 1,
                    "Properties": _props(VendNum="NOPE", InvNum="X", InvDate="2026-11-20", InvAmt="1"),
                }
            ]
        },
    ).json()
    assert bad["Success"] is False and "NOPE" in bad["Message"]
    voucher = next(
        i for i in gw.ido("GET", "load/SLAptrxs", params={"filter": "VendNum = 'S00005'"}).json()["Items"]
    )
    update = gw.ido(
        "POST",
        "update/SLAptrxs",
        json={
            "Changes": [
                {"Action": 2, "ItemId": voucher["_ItemId"], "Properties": _props(Uf_PayoutStatus="sent")}
            ]
        },
    ).json()
    assert update["Success"] is True and update["Changes"][0]["Uf_PayoutStatus"] == "sent"
    invoice = next(i for i in gw.state()["ar_invoices"] if i["status"] == "open" and i["currency"] != "JPY")
    pay = gw.ido(
        "POST",
        "update/SLArPayments",
        json={
            "Changes": [
                {
                    "Action": 1,
                    "Properties": _props(
                        Site="AAA",
                        CustNum=invoice["customer_id"],
                        InvNum=invoice["invoice_number"],
                        InvYear=str(invoice["invoice_year"]),
                        Amount=invoice["open_amount"],
                        Reference="ch_9",
                    ),
                }
            ]
        },
    ).json()
    assert pay["Success"] is True
    state = gw.state()
    assert (
        next(p for p in state["purchase_orders"] if p["po_number"] == po_number)["external_ref"] == "CIN7-9"
    )
    assert any(e["status"] == "sent" and e["keys"][1] == "S00005" for e in state["extensions"])
    paid = next(i for i in state["ar_invoices"] if i["invoice_number"] == invoice["invoice_number"])
    assert paid["status"] == "paid" and any(p["reference"] == "ch_9" for p in state["ar_payments"])


# Control routes -------------------------------------------------------------------------------------


def test_patch_record_moves_it_to_today(gw: Gateway) -> None:
    supplier = next(s for s in gw.state()["suppliers"] if s["bank_account"]["kind"] == "iban")
    patched = gw.control(
        "PATCH",
        f"records/suppliers/{supplier['supplier_id']}",
        {"bank_account": {"iban": "DE89370400440532013000"}},
    )
    assert patched.status_code == 200
    after = next(s for s in gw.state()["suppliers"] if s["supplier_id"] == supplier["supplier_id"])
    assert (
        after["bank_account"]["iban"] == "DE89370400440532013000"
        and after["modified_date"] == gw.state()["today"]
    )
    (row,) = gw.ok("CRS692MI", "LstByAccHolder", BKTP="2", ACHO=supplier["supplier_id"])
    assert row["IBAN"] == "DE89370400440532013000"
    assert gw.control("PATCH", "records/suppliers/NOPE", {"name": "x"}).status_code == 400


def test_credentials_and_ionapi(server: SandboxServer) -> None:
    creds = httpx.get(f"{server.url}/_sandbox/credentials").json()["infor"]
    assert creds["ionapi_template"]["ci"] == "{tenant}~sandbox-client"
    ion = httpx.get(f"{server.url}/_sandbox/infor/tenants/NEW_T/ionapi").json()
    assert ion["pu"] == f"{server.url}/infor/NEW_T/as/" and ion["saak"].startswith("NEW_T#")


def test_every_table_and_ido_serves_its_declared_columns(gw: Gateway) -> None:
    columns = {
        "CIDMAS": 7,
        "OCUSMA": 11,
        "FPLEDG": 12,
        "FSLEDG": 13,
        "MPHEAD": 10,
        "MPLINE": 8,
        "FCHACC": 6,
    }
    for table, count in columns.items():
        rows = gw.select(f"* from {table}", maxrecs=3)
        assert len(rows) == 3 and all(len(row) == count for row in rows), table
    for name in ("SLVendors", "SLCustomers", "SLAptrxs", "SLArtrans", "SLPos", "SLPoItems", "SLChartAccts"):
        body = gw.ido("GET", f"load/{name}", params={"properties": "*", "recordcap": 2}).json()
        assert len(body["Items"]) == 2 and all(
            all(isinstance(v, str) for v in i.values()) for i in body["Items"]
        )
    assert gw.ido("GET", "load/SLNothing").status_code == 404
    assert gw.ido("GET", "load/SLVendors", params={"properties": "Nope"}).status_code == 400


def test_m3_options_as_query_params_and_filters(gw: Gateway) -> None:
    records = gw.ok(
        "CRS692MI",
        "LstByAccHolder",
        BKTP="2",
        ACHO="S00001",
        returncols="ACHO,IBAN,BANA,BRNO",
        excludempty="true",
    )
    assert set(records[0]) <= {"ACHO", "IBAN", "BANA", "BRNO"} and records[0]["ACHO"] == "S00001"
    assert len(gw.ok("EXPORTMI", "Select", maxrecs="4", QERY="EPSINO from FPLEDG")) == 4
    assert len(gw.ok("EXPORTMI", "Select", QERY="EPSINO from FPLEDG")) == 100  # the default maxrecs
    big = gw.ido("GET", "load/SLAptrxs", params={"filter": "InvAmt >= 10000 AND Stat = 'O'", "recordcap": 0})
    amounts = [float(i["InvAmt"]) for i in big.json()["Items"]]
    assert amounts and min(amounts) >= 10000
    assert (
        gw.m3("EXPORTMI", "Select", ";cono=200", QERY="IDSUNO from CIDMAS").json()["nrOfFailedTransactions"]
        == 1
    )


def test_record_date_is_a_date_time_so_only_a_range_finds_a_day(gw: Gateway) -> None:
    day = gw.state()["today"]
    params: dict[str, Any] = {"properties": "VendNum,RecordDate", "recordcap": 0}
    on_the_date = gw.ido("GET", "load/SLVendors", params={**params, "filter": f"RecordDate = '{day}'"})
    assert on_the_date.json()["Items"] == []
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    in_range = f"RecordDate >= '{day} 00:00:00' AND RecordDate < '{next_day} 00:00:00'"
    items = gw.ido("GET", "load/SLVendors", params={**params, "filter": in_range}).json()["Items"]
    changed = {s["supplier_id"] for s in gw.state()["suppliers"] if s["modified_date"] == day}
    assert items and {i["VendNum"] for i in items} == changed
    assert all(i["RecordDate"].startswith(day + " ") and i["RecordDate"][11:19] != "00:00:00" for i in items)


def test_m3_refuses_exportmi_for_a_tenant_that_locks_it(gw: Gateway) -> None:
    assert gw.control("PUT", "config", {"exportmi": False}).status_code == 200
    refused = gw.nok("EXPORTMI", "Select", QERY="IDSUNO from CIDMAS")
    assert "not authorized" in refused["errorMessage"]
    listed = gw.ok("CRS620MI", "LstSuppliers", maxrecs="2", FRSU="S00002")
    assert [r["SUNO"] for r in listed] == ["S00002", "S00003"] and "STAT" not in listed[0]
    assert gw.control("PUT", "config", {"exportmi": True}).status_code == 200
    assert gw.select("IDSUNO from CIDMAS", maxrecs=1)


def test_ido_prev_page_and_atomic_update(gw: Gateway) -> None:
    params: dict[str, Any] = {"properties": "PoNum,PoLine", "recordcap": 5}
    first = gw.ido("GET", "load/SLPoItems", params=params).json()
    second = gw.ido(
        "GET", "load/SLPoItems", params={**params, "loadtype": "NEXT", "bookmark": first["Bookmark"]}
    )
    back = gw.ido(
        "GET", "load/SLPoItems", params={**params, "loadtype": "PREV", "bookmark": second.json()["Bookmark"]}
    )
    assert back.json()["Items"] == first["Items"] and back.json()["MoreRowsExist"] is False
    assert second.json()["Items"][0] != first["Items"][-1]
    before = len(gw.state()["purchase_orders"])
    mixed = gw.ido(
        "POST",
        "update/SLPos",
        json={
            "Changes": [
                {"Action": 1, "Properties": _props(VendNum="S00001", OrderDate="2026-11-21")},
                {"Action": 1, "Properties": _props(VendNum="S00001", OrderDate="not a date")},
            ]
        },
    ).json()
    assert mixed["Success"] is False and "OrderDate" in mixed["Message"]
    assert len(gw.state()["purchase_orders"]) == before
