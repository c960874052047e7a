"""Issue 14, as an operator meets it: tenant names, `tenants add` validation, the typed tenant config,
sandbox tenants, clear errors with exit code 2, `audit` filters and formats, `flagged`, pause/resume.

Everything runs the real CLI in-process against a fresh home and the live sandbox over HTTP.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

import pytest

from ml_connector_pipelines.integrations.partitions import TENANTS
from ml_connector_pipelines.integrations.tenancy import Connector
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi
from ml_connector_pipelines.systems.tenant_config import README_BEGIN, README_END, markdown_table

from .conftest import CliEnv

README = Path(__file__).parents[2] / "README.md"


def new_name() -> str:
    return f"OP{uuid.uuid4().hex[:8].upper()}"


def add_args(cli: CliEnv, sandbox: SandboxServer, name: str) -> list[str]:
    ionapi = cli.write_ionapi(sandbox_ionapi(sandbox.url, name), f"{name}.ionapi")
    return [
        "tenants", "add", name, "--ionapi", str(ionapi),
        "--wise-token", f"wise-sandbox-{name.lower()}", "--wise-base-url", f"{sandbox.url}/wise",
        "--stripe-key", f"sk_test_{name.lower()}", "--stripe-base-url", f"{sandbox.url}/stripe",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["", "A|B", "bad name!", "x" * 65, "_LEADING"])
def test_tenant_names_follow_one_rule(cli: CliEnv, sandbox_server: SandboxServer, name: str) -> None:
    result = cli(
        *add_args(cli, sandbox_server, "GOODNAME")[:2], name, *add_args(cli, sandbox_server, "G")[3:]
    )
    assert result.code == 2
    assert f"tenant name {name!r} is not valid: use 1 to 64 letters, digits, '_' or '-'" in result.err
    assert cli.instance().get_dynamic_partitions(TENANTS.name) == []


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            ["--payment-cron", "not a cron"],
            "tenant config 'payment_cron': 'not a cron' is not a cron expression",
        ),
        (["--wise-source-currency", "XYZ"], "'wise_source_currency': 'XYZ' is not an ISO 4217 currency code"),
        (["--wise-token", "not-a-wise-token-123"], "checking wise failed (AuthenticationFailed"),
        (["--stripe-key", "rk_live_nope"], "checking stripe failed"),
    ],
)
def test_tenants_add_refuses_a_bad_option_and_stores_nothing(
    cli: CliEnv, sandbox_server: SandboxServer, option: list[str], expected: str
) -> None:
    name = new_name()
    result = cli(*add_args(cli, sandbox_server, name), *option)

    assert result.code == 2, result.out
    assert expected in result.err
    assert "not-a-wise-token-123" not in result.err
    assert Connector.open().state.tenants.get(name, include_removed=True) is None
    assert not cli.instance().has_dynamic_partition(TENANTS.name, name)


def test_re_adding_a_tenant_needs_replace(cli: CliEnv, sandbox_server: SandboxServer) -> None:
    name = new_name()
    assert cli(*add_args(cli, sandbox_server, name)).code == 0

    again = cli(*add_args(cli, sandbox_server, name), "--product", "syteline", "--mongoose-config", "X")
    assert again.code == 2
    assert f"tenant {name!r} already exists; add it again with --replace" in again.err
    assert Connector.open().state.tenants.get(name).product == "m3"

    replaced = cli(
        *add_args(cli, sandbox_server, name), "--product", "syteline", "--mongoose-config", "X", "--replace"
    )
    assert replaced.code == 0, replaced.err
    assert f"tenant {name} replaced" in replaced.out
    assert Connector.open().state.tenants.get(name).product == "syteline"


def test_tenants_config_shows_every_key_and_sets_validated_values(
    cli: CliEnv, sandbox_server: SandboxServer
) -> None:
    name = new_name()
    assert cli(*add_args(cli, sandbox_server, name)).code == 0

    shown = cli("tenants", "config", name)
    assert shown.code == 0
    keys = ["wise_create_transfers", "stripe_closed_invoice_action", "rate_limit_per_second", "page_size"]
    keys += ["ar_dimensions", "bank_type", "extension_program", "push_time_budget_seconds", "payment_cron"]
    for key in keys:
        assert key in shown.out
    assert max(len(line) for line in shown.out.splitlines()) < 200

    result = cli(
        "tenants", "config", name, "payment_cron=0 7 * * 1", "wise_create_transfers=true",
        'ar_dimensions=["1010","100"]', "page_size=200",
    )  # fmt: skip
    assert result.code == 0, result.err
    config = Connector.open().state.tenants.get(name).config
    assert config["payment_cron"] == "0 7 * * 1" and config["wise_create_transfers"] is True
    assert config["ar_dimensions"] == ["1010", "100"] and config["page_size"] == 200
    typed = json.loads(cli("tenants", "config", name, "--format", "json").out)
    assert typed["page_size"]["set"] == "yes" and typed["bank_type"]["value"] == "2"

    for bad, expected in [
        ("page_size=-1", "'page_size': Input should be greater than 0"),
        ("stripe_closed_invoice_action=delete", "'stripe_closed_invoice_action'"),
        ("colour=blue", "'colour' is not a tenant config key"),
        ("payment_cron", "is not key=value"),
    ]:
        refused = cli("tenants", "config", name, bad)
        assert refused.code == 2 and expected in refused.err, refused.err
    assert Connector.open().state.tenants.get(name).config["page_size"] == 200

    assert cli("tenants", "config", name, "page_size=").code == 0
    assert "page_size" not in Connector.open().state.tenants.get(name).config
    assert cli("tenants", "config", "NOPE").code == 2


def test_the_readme_table_is_the_model() -> None:
    text = README.read_text()
    table = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert table == markdown_table(), "regenerate: python -m ml_connector_pipelines.systems.tenant_config"


def test_a_sandbox_tenant_carries_its_loopback_permission(
    cli: CliEnv, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ML_CONNECTOR_ALLOW_LOOPBACK_HTTP")
    name = new_name()
    refused = cli(*add_args(cli, sandbox_server, name))
    assert refused.code == 2
    assert "`ml-connector tenants add --sandbox`" in refused.err
    assert "ML_CONNECTOR_ALLOW_LOOPBACK_HTTP=1" in refused.err

    added = cli(*add_args(cli, sandbox_server, name), "--sandbox")
    assert added.code == 0, added.err
    assert cli("tenants", "pause", name, "--reason", "testing").code == 0
    row = next(line for line in cli("tenants", "list").out.splitlines() if line.startswith(name))
    assert row.split()[3:5] == ["paused", "yes"]
    assert cli("tenants", "resume", name).code == 0
    checked = cli("tenants", "check", name)
    assert checked.code == 0, checked.out
    # Only that tenant: another one with the same loopback URLs is still refused.
    assert cli(*add_args(cli, sandbox_server, new_name())).code == 2


def test_bad_input_is_a_clear_error_with_exit_code_2(cli: CliEnv, sandbox_server: SandboxServer) -> None:
    name = new_name()
    assert cli(*add_args(cli, sandbox_server, name)).code == 0
    for argv, expected in [
        (["tenants", "remove", "NOPE"], "no tenant 'NOPE'"),
        (["tenants", "check", "NOPE"], "no tenant 'NOPE'"),
        (["tenants", "pause", "NOPE"], "no tenant 'NOPE'"),
        (["audit", "NOPE"], "no tenant 'NOPE'"),
        (["flagged", "NOPE"], "no tenant 'NOPE'"),
        (["audit", name, "--flow", "bogus"], "unknown flow 'bogus'; known flows: "),
        (["audit", name, "--action", "eaten"], "unknown action 'eaten'"),
        (["audit", name, "--since", "yesterday"], "--since 'yesterday' is not a date"),
    ]:
        result = cli(*argv)
        assert result.code == 2, (argv, result.out)
        assert expected in result.err and "Traceback" not in result.err


def test_audit_filters_formats_and_flagged(cli: CliEnv, sandbox_server: SandboxServer) -> None:
    name = new_name()
    assert cli(*add_args(cli, sandbox_server, name)).code == 0
    audit = Connector.open().state.audit
    long_reason = "IBAN rejected by Wise: " + "the account number does not match the bank code " * 5
    audit.record(name, "wise_recipients", "SUP-1", "flagged", run_id="run-aaaa-1", reason=long_reason)
    audit.record(name, "wise_recipients", "SUP-2", "flagged", run_id="run-aaaa-1", reason="name is empty")
    audit.record(name, "wise_recipients", "SUP-2", "created", run_id="run-bbbb-2", target_id="R-2")
    audit.record(name, "stripe_customers", "C-1", "created", run_id="run-bbbb-2", target_id="cus_1")

    table = cli("audit", name)
    assert table.code == 0
    assert max(len(line) for line in table.out.splitlines()) < 200  # reasons are cut, not padded

    only_flagged = json.loads(cli("audit", name, "--flagged", "--format", "json").out)
    assert [r["record"] for r in only_flagged] == ["SUP-1", "SUP-2"]
    assert only_flagged[0]["reason"] == long_reason  # the full text in json
    by_run = list(csv.DictReader(io.StringIO(cli("audit", name, "--run", "run-bbbb", "--format", "csv").out)))
    assert {r["record"] for r in by_run} == {"SUP-2", "C-1"}
    created = json.loads(cli("audit", name, "--action", "created", "--format", "json").out)
    assert [r["record"] for r in created] == ["SUP-2", "C-1"]
    assert json.loads(cli("audit", name, "--since", "2999-01-01", "--format", "json").out) == []

    flagged = cli("flagged", name)
    assert flagged.code == 0
    assert "SUP-1" in flagged.out and "SUP-2" not in flagged.out  # SUP-2 was created since
    assert f"ml-connector replay {name} --flow wise_recipients --record SUP-1" in flagged.out
    assert "1 record(s) need a human" in flagged.out


def test_the_webhook_receiver_listens_on_loopback_unless_told(cli: CliEnv) -> None:
    from ml_connector_pipelines.cli import build_parser

    assert build_parser().parse_args(["webhooks", "serve"]).host == "127.0.0.1"
    assert build_parser().parse_args(["webhooks", "serve", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_every_config_option_of_tenants_add_is_a_typed_config_key() -> None:
    """A system that adds a `tenants add` option writing to the tenant config must declare the key in
    its config model (`SystemSpec.config`), or `tenants add` would refuse its own option."""
    from ml_connector_pipelines.systems.registry import SYSTEMS
    from ml_connector_pipelines.systems.tenant_config import key_systems

    for spec in SYSTEMS.values():
        for option in spec.cli_options:
            if option.target == "config":
                assert option.key in key_systems(), (spec.name, option.flag)
