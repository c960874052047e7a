"""`ml-connector` end to end, in-process: tenants, keys, sandbox, audit.

Each test gets a fresh ML_CONNECTOR_HOME (key file) and DAGSTER_HOME from the `cli` fixture; systems
are the live sandbox over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.tables import credentials
from ml_connector_pipelines.core.vault import Vault, VaultError
from ml_connector_pipelines.integrations.partitions import TENANTS
from ml_connector_pipelines.integrations.tenancy import Connector
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.systems.infor.ionapi import IonApi

from ..conftest import free_port
from .conftest import CliEnv


def new_name() -> str:
    return f"CLI{uuid.uuid4().hex[:8].upper()}"


def add_tenant(cli: CliEnv, sandbox: SandboxServer, name: str, *extra: str) -> None:
    ionapi = cli.write_ionapi(sandbox_ionapi(sandbox.url, name), f"{name}.ionapi")
    result = cli(
        "tenants", "add", name, "--ionapi", str(ionapi),
        "--wise-token", f"wise-sandbox-{name.lower()}", "--wise-base-url", f"{sandbox.url}/wise",
        "--stripe-key", f"sk_test_{name.lower()}", "--stripe-base-url", f"{sandbox.url}/stripe",
        *extra,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert f"tenant {name} added" in result.out


def stored_ciphertexts(tenant: str) -> dict[str, str]:
    engine = sa.create_engine(Settings.from_env().db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(credentials.c.system, credentials.c.ciphertext).where(credentials.c.tenant == tenant)
        ).all()
    engine.dispose()
    return {row.system: row.ciphertext for row in rows}


def test_tenants_add_stores_encrypted_credentials_and_adds_the_partition(
    cli: CliEnv, sandbox_server: SandboxServer
) -> None:
    name = new_name()
    add_tenant(cli, sandbox_server, name, "--product", "syteline", "--mongoose-config", f"{name}_SITE")

    connector = Connector.open()
    tenant = connector.state.tenants.get(name)
    assert tenant is not None and tenant.product == "syteline"
    assert tenant.config["mongoose_config"] == f"{name}_SITE"
    assert connector.credentials.systems(name) == ["infor", "stripe", "wise"]
    assert connector.credentials.get(name, "wise")["token"] == f"wise-sandbox-{name.lower()}"
    # Ciphertext only: no secret is readable in the database itself.
    for ciphertext in stored_ciphertexts(name).values():
        assert name.lower() not in ciphertext and "sandbox-client-secret" not in ciphertext
    assert cli.instance().has_dynamic_partition(TENANTS.name, name)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("drop cs", ".ionapi key 'cs': is missing (OAuth client secret)"),
        ("https only", ".ionapi key 'iu': uses plain http; allowed for loopback hosts only in sandbox mode"),
        ("not json", "error: .ionapi: "),
        ("deeply nested", "is nested deeper than 4 levels"),
        ("crlf in a url", ".ionapi key 'iu': contains control characters"),
    ],
)
def test_tenants_add_rejects_a_malformed_ionapi_and_stores_nothing(
    cli: CliEnv, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    name = new_name()
    ionapi = sandbox_ionapi(sandbox_server.url, name)
    path = cli.write_ionapi(ionapi)
    if content == "drop cs":
        del ionapi["cs"]
        path = cli.write_ionapi(ionapi)
    elif content == "https only":
        monkeypatch.delenv("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP")
    elif content == "deeply nested":
        path.write_text('{"ti": ' + "[" * 20_000 + "]" * 20_000 + "}")
    elif content == "crlf in a url":
        path = cli.write_ionapi({**ionapi, "iu": ionapi["iu"] + "\r\nHost: evil"})
    else:
        path.write_text("{ this is not json")

    result = cli("tenants", "add", name, "--ionapi", str(path), "--wise-token", "wise-sandbox-x1234567")

    assert result.code == 2
    assert expected in result.err
    if content == "not json":
        assert f"{path} is not valid JSON (line 1)" in result.err
    assert "sandbox-client-secret" not in result.err
    connector = Connector.open()
    assert connector.state.tenants.get(name, include_removed=True) is None
    assert connector.credentials.systems(name) == []
    assert not cli.instance().has_dynamic_partition(TENANTS.name, name)


def test_tenants_list_and_remove_keep_the_audit_history(cli: CliEnv, sandbox_server: SandboxServer) -> None:
    kept, removed = new_name(), new_name()
    add_tenant(cli, sandbox_server, kept)
    add_tenant(cli, sandbox_server, removed)
    Connector.open().state.audit.record(
        removed, "infor_wise_recipients", "SUP-1", "created", run_id="run-before-removal", target_id="R-9"
    )

    listed = cli("tenants", "list")
    assert listed.code == 0
    assert kept in listed.out and removed in listed.out
    assert "infor,stripe,wise" in listed.out

    result = cli("tenants", "remove", removed)
    assert result.code == 0 and "audit history are kept" in result.out
    assert removed not in cli("tenants", "list").out
    assert removed in cli("tenants", "list", "--all").out
    assert not cli.instance().has_dynamic_partition(TENANTS.name, removed)
    assert cli.instance().has_dynamic_partition(TENANTS.name, kept)

    audit = cli("audit", removed)
    assert audit.code == 0
    assert "SUP-1" in audit.out and "R-9" in audit.out and "run-befo" in audit.out


def test_tenants_check_pings_every_system(cli: CliEnv, sandbox_server: SandboxServer) -> None:
    name = new_name()
    add_tenant(cli, sandbox_server, name)

    result = cli("tenants", "check", name)

    assert result.code == 0, result.out
    lines = {line.split()[0]: line.split()[1:] for line in result.out.splitlines()[2:]}
    assert lines == {"infor": ["OK"], "stripe": ["OK"], "wise": ["OK"]}


def test_tenants_check_reports_a_wrong_key_and_exits_1(cli: CliEnv, sandbox_server: SandboxServer) -> None:
    name = new_name()
    ionapi = cli.write_ionapi(sandbox_ionapi(sandbox_server.url, name))
    added = cli(
        "tenants", "add", name, "--ionapi", str(ionapi),
        "--wise-token", "not-a-wise-token-123", "--wise-base-url", f"{sandbox_server.url}/wise",
        "--no-check",
    )  # fmt: skip
    assert added.code == 0, added.err
    assert "not checked (--no-check)" in added.out

    result = cli("tenants", "check", name)

    assert result.code == 1
    rows = {line.split()[0]: line for line in result.out.splitlines()[2:]}
    assert rows["infor"].split()[1] == "OK"
    assert "AuthenticationFailed" in rows["wise"] and "401" in rows["wise"]
    assert "not-a-wise-token-123" not in result.out + result.err


def test_tenants_check_of_an_unknown_tenant_fails(cli: CliEnv) -> None:
    result = cli("tenants", "check", "NOBODY")
    assert result.code == 2
    assert "no tenant 'NOBODY' (see `ml-connector tenants list`)" in result.err


def test_sandbox_ionapi_prints_a_valid_ionapi(cli: CliEnv) -> None:
    result = cli("sandbox", "ionapi", "--tenant", "ACME_1", "--port", "8765")

    assert result.code == 0
    ionapi = IonApi.from_dict(json.loads(result.out), allow_loopback_http=True)
    assert ionapi.tenant == "ACME_1"
    assert ionapi.api_base == "http://127.0.0.1:8765/infor/ACME_1"
    assert ionapi.token_url.startswith("http://127.0.0.1:8765/infor/ACME_1/as/")


def test_sandbox_credentials_lists_every_simulator(cli: CliEnv) -> None:
    result = cli("sandbox", "credentials", "--port", "8765")

    assert result.code == 0
    creds = json.loads(result.out)
    assert {"infor", "wise", "stripe", "cleo", "cin7", "procurify"} <= set(creds)
    assert creds["infor"]["ionapi_template"]["iu"] == "http://127.0.0.1:8765/infor"
    assert creds["wise"]["example_token"].startswith(creds["wise"]["personal_token_prefix"])
    assert creds["stripe"]["api_base"] == "http://127.0.0.1:8765/stripe"


def test_sandbox_serve_with_a_fault_profile() -> None:
    port = free_port()
    cli_path = Path(sys.executable).with_name("ml-connector")
    command = [str(cli_path), "sandbox", "serve", "--port", str(port), "--faults", "storm", "--seed", "3"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()  # printed once the port is bound, before serving
        assert f"http://127.0.0.1:{port}/<system>/" in banner
        health = None
        for _ in range(200):  # wait for uvicorn to accept connections (bounded, not a timing assertion)
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert health is not None and health.status_code == 200
        assert {"cin7", "cleo", "infor", "procurify", "stripe", "wise"} <= set(health.json()["systems"])
        faults = httpx.get(f"http://127.0.0.1:{port}/_sandbox/faults", timeout=5).json()
        assert "storm" in json.dumps(faults)
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_sandbox_serve_rejects_an_unknown_fault_profile(cli: CliEnv) -> None:
    result = cli("sandbox", "serve", "--port", "0", "--faults", "hurricane")
    assert result.code == 2
    assert "unknown fault profile 'hurricane'" in result.err
    assert "none, flaky, storm, chaos" in result.err


def test_keys_rotate_with_a_key_file(cli: CliEnv, sandbox_server: SandboxServer) -> None:
    name = new_name()
    add_tenant(cli, sandbox_server, name)
    key_file = cli.home / "master.key"
    first_key = key_file.read_text().split()

    result = cli("keys", "rotate")
    assert result.code == 0, result.err
    assert "re-encrypted 3 credentials" in result.out
    keys = key_file.read_text().split()
    assert len(keys) == 2 and keys[1:] == first_key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not any(key in result.out + result.err for key in keys)  # keys are never printed

    # Readable with the new key file, and the rotated ciphertexts need the new key: the old one alone fails.
    connector = Connector.open()
    assert connector.credentials.get(name, "stripe")["api_key"] == f"sk_test_{name.lower()}"
    rotated = stored_ciphertexts(name)
    assert Vault(keys[:1]).decrypt_json(rotated["wise"])["token"] == f"wise-sandbox-{name.lower()}"
    with pytest.raises(VaultError):
        Vault(first_key).decrypt_json(rotated["wise"])

    again = cli("keys", "rotate")
    assert again.code == 0, again.err
    keys_after = key_file.read_text().split()
    assert len(keys_after) == 3 and keys_after[1:] == keys
    assert Vault(keys_after[:1]).decrypt_json(stored_ciphertexts(name)["infor"])["ti"] == name
    assert cli("tenants", "check", name).code == 0


def test_keys_rotate_with_keys_in_the_environment(
    cli: CliEnv, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key = (cli.home / "master.key").read_text().strip()
    monkeypatch.setenv("ML_CONNECTOR_MASTER_KEY", old_key)
    name = new_name()
    add_tenant(cli, sandbox_server, name)

    # The operator generates a key and puts it first; rotating re-encrypts with it and prints no key.
    new_key = cli("keys", "generate").out.strip()
    assert Vault([new_key])
    monkeypatch.setenv("ML_CONNECTOR_MASTER_KEY", f"{new_key},{old_key}")
    result = cli("keys", "rotate")

    assert result.code == 0, result.err
    assert "re-encrypted 3 credentials" in result.out
    assert new_key not in result.out and old_key not in result.out
    monkeypatch.setenv("ML_CONNECTOR_MASTER_KEY", new_key)  # the new key alone now reads everything
    assert Connector.open().credentials.get(name, "infor")["ti"] == name


def test_keys_rotate_without_a_key_fails_clearly(cli: CliEnv) -> None:
    (cli.home / "master.key").unlink()
    result = cli("keys", "rotate")
    assert result.code == 2
    assert "no master key" in result.err


def test_audit_filters_by_flow_and_record(cli: CliEnv) -> None:
    audit = Connector.open(create_key=False).state.audit
    audit.record("ACME", "infor_wise_recipients", "SUP-1", "created", target_id="R-1", run_id="aaaaaaaa1")
    audit.record("ACME", "infor_wise_recipients", "SUP-1", "flagged", reason="IBAN rejected by Wise")
    audit.record("ACME", "infor_wise_recipients", "SUP-2", "created", target_id="R-2")
    audit.record("ACME", "infor_stripe_customers", "SUP-1", "created", target_id="cus_1")
    audit.record("OTHER", "infor_wise_recipients", "SUP-1", "created", target_id="R-99")

    result = cli("audit", "ACME", "--flow", "infor_wise_recipients", "--record", "SUP-1")

    assert result.code == 0
    rows = result.out.splitlines()[2:]
    assert len(rows) == 2
    assert "created" in rows[0] and "R-1" in rows[0] and "aaaaaaaa" in rows[0]
    assert "flagged" in rows[1] and "IBAN rejected by Wise" in rows[1]
    whole = cli("audit", "ACME").out.splitlines()[2:]
    assert len(whole) == 4 and not any("R-99" in row for row in whole)


@pytest.mark.parametrize("workers", [1, 2])
def test_webhooks_serve_stores_verified_events_once_and_rejects_the_rest(
    cli: CliEnv, sandbox_server: SandboxServer, workers: int
) -> None:
    name = new_name()
    # A tenant on Wise's own sandbox: it trusts Wise's sandbox key, which signed the published vector.
    add_tenant(cli, sandbox_server, name, "--wise-base-url", "https://api.wise-sandbox.com", "--no-check")
    vector = json.loads((Path(__file__).parents[1] / "systems/wise/wise-webhook-vector.json").read_text())
    body, headers = vector["body"].encode(), {vector["header"]: vector["signature_base64"]}
    port = free_port()
    cli_path = Path(sys.executable).with_name("ml-connector")
    command = [str(cli_path), "webhooks", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]  # with 2, each delivery may land on either process
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/webhooks"
    try:
        for _ in range(200):  # wait for uvicorn to accept connections (bounded, not a timing assertion)
            try:
                assert httpx.get(f"{base}/health", timeout=5).json()["sources"] == ["stripe", "wise"]
                break
            except httpx.TransportError:
                time.sleep(0.05)
        first = httpx.post(f"{base}/wise/{name}", content=body, headers=headers, timeout=10)
        again = httpx.post(f"{base}/wise/{name}", content=body, headers=headers, timeout=10)
        tampered = httpx.post(
            f"{base}/wise/{name}", content=body.replace(b"0000", b"0008", 1), headers=headers
        )
        unknown = httpx.post(f"{base}/wise/NOBODY", content=body, headers=headers, timeout=10)
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0]
    assert f"({workers} worker" in output, output
    assert (first.status_code, first.json()["status"]) == (200, "stored")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert (tampered.status_code, unknown.status_code) == (400, 404)
    [stored] = Connector.open().state.inbox.pending("wise", name)
    assert stored.payload == vector["body"]


def test_tenants_add_on_a_fresh_home_creates_the_master_key_and_says_so(
    cli: CliEnv, sandbox_server: SandboxServer
) -> None:
    key_file = cli.home / "master.key"
    key_file.unlink()  # a fresh home: the README's first command after the demo
    first, second = new_name(), new_name()
    ionapi = cli.write_ionapi(sandbox_ionapi(sandbox_server.url, first))
    result = cli("tenants", "add", first, "--ionapi", str(ionapi))
    assert result.code == 0, result.err
    assert f"created a new master key in {key_file}" in result.err
    assert "move it to ML_CONNECTOR_MASTER_KEY" in result.err
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert key not in result.err and key not in result.out
    # The key it made is the one in use, and it is made once.
    add_tenant(cli, sandbox_server, second)
    assert "master key" not in cli("tenants", "list").err
    assert key_file.read_text().strip() == key
    assert Connector.open().credentials.get(first, "infor")["ti"] == first


@pytest.mark.parametrize("production", ["ML_CONNECTOR_ENV", "postgres state store"])
def test_production_without_a_master_key_still_refuses(
    cli: CliEnv,
    sandbox_server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    production: str,
) -> None:
    key_file = cli.home / "master.key"
    key_file.unlink()
    if production == "ML_CONNECTOR_ENV":
        monkeypatch.setenv("ML_CONNECTOR_ENV", "production")
    else:
        monkeypatch.setenv("ML_CONNECTOR_DB_URL", request.getfixturevalue("postgres_url"))
    name = new_name()
    ionapi = cli.write_ionapi(sandbox_ionapi(sandbox_server.url, name))
    result = cli("tenants", "add", name, "--ionapi", str(ionapi))
    assert result.code == 2
    assert "no master key" in result.err and "ML_CONNECTOR_MASTER_KEY" in result.err
    assert not key_file.exists()
