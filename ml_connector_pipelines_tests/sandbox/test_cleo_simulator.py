"""The Cleo simulator against the contract: auth, connection collections, strict bodies, errors as
``{message}``, folder permissions, and the partner's 997 for what we upload."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ml_connector_pipelines.sandbox.cleo.simulator import SANDBOX_PASSWORD, SEEDED_CONNECTION
from ml_connector_pipelines.sandbox.host import SandboxServer

ISA = "ISA*00*          *00*          *ZZ*BUYER          *ZZ*SUP            *250101*1200*U*00401*{ctl}*0*T*>~"


def interchange(ctl: str = "000000007", se_count: int = 5, beg: str = "BEG*00*SA*PO1**20250101~") -> str:
    return (
        ISA.format(ctl=ctl)
        + "GS*PO*BUYER*SUP*20250101*1200*7*X*004010~ST*850*0007~"
        + beg
        + "PO1*1*1*EA*1**BP*X~CTT*1~"
        + f"SE*{se_count}*0007~GE*1*7~IEA*1*{ctl}~"
    )


@pytest.fixture
def api(sandbox_server: SandboxServer, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    user = "sim" + str(abs(hash(request.node.nodeid)) % 10**8)
    base = f"{sandbox_server.url}/cleo/api"
    form = {"grant_type": "password", "username": user, "password": SANDBOX_PASSWORD}
    token = httpx.post(f"{base}/authentication", data=form, timeout=30).json()["access_token"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        client.user = user  # type: ignore[attr-defined]
        yield client


def test_authentication_is_a_password_grant(sandbox_server: SandboxServer) -> None:
    base = f"{sandbox_server.url}/cleo/api"
    ok = httpx.post(
        f"{base}/authentication",
        data={"grant_type": "password", "username": "u1", "password": SANDBOX_PASSWORD},
    )
    assert ok.status_code == 200 and set(ok.json()) == {"access_token", "token_type", "expires_in"}
    bad = httpx.post(
        f"{base}/authentication", data={"grant_type": "password", "username": "u1", "password": "x"}
    )
    assert bad.status_code == 401 and set(bad.json()) == {"message"}
    wrong_grant = httpx.post(f"{base}/authentication", data={"grant_type": "client_credentials"})
    assert wrong_grant.status_code == 400
    as_json = httpx.post(f"{base}/authentication", json={"grant_type": "password"})
    assert as_json.status_code == 415
    assert httpx.get(f"{base}/connections").status_code == 401


def test_connections_collection_paging_filter_and_strict_bodies(api: httpx.Client) -> None:
    for n in range(3):
        created = api.post(
            "/connections", json={"alias": f"P{n}", "type": "sftp", "partnerName": f"Partner {n}"}
        )
        assert created.status_code == 201 and created.json()["_links"]["self"]["href"].endswith(
            created.json()["id"]
        )
    page = api.get("/connections", params={"startIndex": 1, "count": 2}).json()
    assert page["totalResults"] == 4 and len(page["resources"]) == 2  # with the seeded one
    found = api.get("/connections", params={"filter": 'alias eq "P1"'}).json()
    assert [c["partnerName"] for c in found["resources"]] == ["Partner 1"]
    assert api.get("/connections", params={"filter": "alias sw P"}).status_code == 400
    assert api.post("/connections", json={"alias": "P1", "type": "sftp"}).status_code == 400  # duplicate
    assert api.post("/connections", json={"alias": "Q", "type": "sftp", "isaId": "X"}).json() == {
        "message": "unknown attribute(s): isaId"
    }
    assert api.post("/connections", json={"alias": "Q", "type": "http"}).status_code == 400
    href = found["resources"][0]["_links"]["self"]["href"]
    updated = api.put(href, json={"alias": "P1", "type": "sftp", "partnerName": "Renamed"})
    assert updated.status_code == 200 and updated.json()["partnerName"] == "Renamed"
    assert api.delete(href).status_code == 204 and api.get(href).status_code == 404


def test_folders_enforce_their_usage(api: httpx.Client) -> None:
    api.post("/connections", json={"alias": "F1", "type": "sftp"})
    files = "/mailboxes/F1/folders/{}/files"
    assert api.post(files.format("download"), params={"name": "a.x12"}, content=b"x").status_code == 403
    assert api.post(files.format("upload"), params={"name": "bad name"}, content=b"x").status_code == 400
    assert api.post(files.format("upload"), params={"name": "a.txt"}, content=b"x").status_code == 201
    assert api.get(files.format("upload") + "/a.txt/content").status_code == 403
    assert api.delete(files.format("upload") + "/a.txt").status_code == 403
    assert api.get("/mailboxes/NOPE/folders/upload/files").status_code == 404
    seeded = api.get(f"/mailboxes/{SEEDED_CONNECTION}/folders/download/files").json()["resources"]
    [file] = seeded
    content = api.get(file["_links"]["content"]["href"])
    assert content.headers["content-type"] == "application/octet-stream" and content.text.startswith("ISA")
    assert api.delete(file["_links"]["self"]["href"]).status_code == 204


def test_an_uploaded_850_gets_a_997_accepted_or_rejected(api: httpx.Client) -> None:
    api.post("/connections", json={"alias": "A1", "type": "sftp"})
    upload = "/mailboxes/A1/folders/upload/files"
    api.post(upload, params={"name": "good.x12"}, content=interchange().encode())
    api.post(upload, params={"name": "count.x12"}, content=interchange("000000008", se_count=9).encode())
    api.post(upload, params={"name": "nobeg.x12"}, content=interchange("000000009", beg="").encode())
    listed = api.get("/mailboxes/A1/folders/download/files").json()["resources"]
    texts = {f["name"].split("_")[1]: api.get(f["_links"]["content"]["href"]).text for f in listed}
    assert (
        "AK1*PO*7~" in texts["000000007"]
        and "AK5*A~" in texts["000000007"]
        and "AK9*A*1*1*1~" in texts["000000007"]
    )
    assert "AK5*R*4~" in texts["000000008"]
    assert "AK3*BEG*2**3~" in texts["000000009"] and "AK9*R*1*1*0~" in texts["000000009"]
    assert texts["000000007"].startswith("ISA*00*          *00*          *ZZ*SUP            *ZZ*BUYER")


def test_the_control_route_drops_well_formed_and_malformed_810s(
    sandbox_server: SandboxServer, api: httpx.Client
) -> None:
    api.post("/connections", json={"alias": "D1", "type": "sftp"})
    url = f"{sandbox_server.url}/_sandbox/cleo/accounts/{api.user}/mailboxes/D1/invoices"  # type: ignore[attr-defined]
    line = {"quantity": "2", "unit_price": "1.50", "buyer_part": "ITEM"}
    assert httpx.post(url, json={"invoice_number": "I1", "lines": [line]}).status_code == 201
    assert (
        httpx.post(url, json={"invoice_number": "I2", "lines": [line], "malformed": "bad_total"}).status_code
        == 201
    )
    assert (
        httpx.post(url, json={"invoice_number": "I3", "lines": [line], "malformed": "nonsense"}).status_code
        == 400
    )
    names = [f["name"] for f in api.get("/mailboxes/D1/folders/download/files").json()["resources"]]
    assert [n.split("_")[1] for n in names] == ["I1", "I2"]


def test_faults_answer_in_cleos_error_shape(sandbox_server: SandboxServer, api: httpx.Client) -> None:
    body = {"profile": "none", "systems": ["cleo"], "overrides": {"server_error": 1.0}}
    httpx.put(f"{sandbox_server.url}/_sandbox/faults", json=body).raise_for_status()
    try:
        response = api.get("/connections")
    finally:
        sandbox_server.set_faults("none")
    assert response.status_code >= 500 and set(response.json()) == {"message"}
