"""Canary secrets through every path; no plaintext may come out anywhere.

Two tenants are added with the CLI, each credential holding a unique canary: one whose Wise token and
Stripe key the sandbox accepts, and one whose `.ionapi` secrets (cs, sask), Wise token and Stripe key
are all rejected, so the canaries are sent, refused, and turned into errors. Then: `tenants check`,
the main job (extracts and every push; one run succeeds, one fails), `tenants list`, `audit`.
Afterwards every place a secret could leak to is scanned: CLI output, captured logs and stderr, the
Dagster event log (failure stack traces and metadata included), every file under DAGSTER_HOME and
ML_CONNECTOR_HOME (the SQLite bytes), and every row of every state table.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from ml_connector_pipelines.core.settings import Settings
from ml_connector_pipelines.core.tables import metadata
from ml_connector_pipelines.definitions import build_resources, defs
from ml_connector_pipelines.integrations.partitions import partition_key
from ml_connector_pipelines.integrations.tenancy import Connector
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.sandbox.infor.simulator import sandbox_ionapi

from .conftest import CliEnv, CliResult


class Canaries:
    """Secrets that share one random marker, so a single search finds any of them, whole or in part."""

    def __init__(self) -> None:
        self.marker = uuid.uuid4().hex
        self.wise_token = f"wise-sandbox-CANARY-{self.marker}"  # accepted by the Wise sandbox
        self.stripe_key = f"sk_test_CANARY{self.marker}"  # accepted by the Stripe sandbox
        self.stripe_webhook_secret = f"whsec_CANARY{self.marker}"
        self.infor_client_secret = f"cs-CANARY-{self.marker}"  # rejected by the Infor sandbox
        self.infor_sask = f"sask-CANARY-{self.marker}"
        self.bad_wise_token = f"revoked-CANARY-{self.marker}"  # rejected by the Wise sandbox
        self.bad_stripe_key = f"sk_live_CANARY{self.marker}"  # rejected by the Stripe sandbox

    def leaks(self, where: str, text: str | bytes) -> list[str]:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        # The marker alone: catches a secret that was cut, prefixed or quoted on its way out.
        return [where] if self.marker.encode() in data else []


@pytest.fixture
def canaries() -> Canaries:
    return Canaries()


def run_main(name: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The main job (Infor extracts, then every push) for one tenant and today."""
    return defs.resolve_job_def("main").execute_in_process(
        partition_key=partition_key(name, datetime.now(UTC).date()),
        instance=instance,
        resources=build_resources(db_url=Settings.from_env().db_url),
        raise_on_error=False,
    )


def test_no_canary_secret_appears_anywhere(
    cli: CliEnv,
    sandbox_server: SandboxServer,
    canaries: Canaries,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    good, bad = f"GOOD{canaries.marker[:6].upper()}", f"BAD{canaries.marker[:6].upper()}"
    outputs: list[tuple[str, CliResult]] = []

    def run(*argv: str) -> CliResult:
        result = cli(*argv)
        outputs.append((" ".join(argv[:2]), result))
        return result

    good_ionapi = cli.write_ionapi(sandbox_ionapi(sandbox_server.url, good), "good.ionapi")
    bad_ionapi = cli.write_ionapi(
        {
            **sandbox_ionapi(sandbox_server.url, bad),
            "cs": canaries.infor_client_secret,
            "sask": canaries.infor_sask,
        },
        "bad.ionapi",
    )
    wise_url, stripe_url = f"{sandbox_server.url}/wise", f"{sandbox_server.url}/stripe"
    assert run(
        "tenants", "add", good, "--ionapi", str(good_ionapi),
        "--wise-token", canaries.wise_token, "--wise-base-url", wise_url,
        "--stripe-key", canaries.stripe_key, "--stripe-base-url", stripe_url,
        "--stripe-webhook-secret", canaries.stripe_webhook_secret,
    ).code == 0  # fmt: skip
    # Checked first (refused: the error names the system, never the secret), then stored unchecked.
    for check, code in ((), 2), (("--no-check",), 0):
        assert run(
            "tenants", "add", bad, "--ionapi", str(bad_ionapi),
            "--wise-token", canaries.bad_wise_token, "--wise-base-url", wise_url,
            "--stripe-key", canaries.bad_stripe_key, "--stripe-base-url", stripe_url, *check,
        ).code == code  # fmt: skip

    # The canaries really are in use: stored, sent, accepted by one tenant and refused for the other.
    connector = Connector.open()
    assert connector.credentials.get(bad, "infor")["sask"] == canaries.infor_sask
    good_check = run("tenants", "check", good)  # OK for Wise and Stripe only if the canary was sent
    assert good_check.code == 0, good_check.out
    bad_check = run("tenants", "check", bad)
    assert bad_check.code == 1
    assert bad_check.out.count("AuthenticationFailed") == 3, bad_check.out

    instance = dg.DagsterInstance.get()
    succeeded = run_main(good, instance)
    failed = run_main(bad, instance)
    assert succeeded.success
    # The pushes really used the canary key: the Stripe sandbox keeps one account per key.
    assert sandbox_server.get_state("stripe")["accounts"][canaries.stripe_key]["customers"]
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "AuthenticationFailed" in str(failure.step_failure_data.error)

    # Careless logging of a decrypted secret, from any library or from an op, is masked before any
    # handler or the event log sees it.
    logging.getLogger("some.sdk").debug(
        "Authorization: Bearer %s", connector.credentials.get(good, "wise")["token"]
    )

    @dg.op
    def careless(context):  # type: ignore[no-untyped-def]  # unannotated: this module uses PEP 563
        context.log.info(f"using key {Connector.open().credentials.get(good, 'stripe')['api_key']}")

    @dg.job
    def careless_job():  # type: ignore[no-untyped-def]
        careless()

    logged = careless_job.execute_in_process(instance=instance)
    assert any(e.user_message == "using key ***" for e in instance.all_logs(logged.run_id))
    assert "Authorization: Bearer ***" in caplog.text

    run("tenants", "list", "--all")
    connector.state.audit.record(
        bad, "infor_extract", "-", "failed", run_id=failed.run_id, reason=str(failure)
    )
    run("audit", good)
    run("audit", bad)
    listed = next(result for argv, result in outputs if argv == "tenants list")
    assert good in listed.out and bad in listed.out

    leaks: list[str] = []
    for argv, result in outputs:
        leaks += canaries.leaks(f"`ml-connector {argv}` output", result.out + result.err)
    leaks += canaries.leaks("captured log records", caplog.text)
    leaks += canaries.leaks("stdout/stderr", "".join(cli.capsys.readouterr()))

    for dagster_run in instance.get_runs():
        leaks += canaries.leaks(f"run {dagster_run.run_id} (config, tags)", dg.serialize_value(dagster_run))
        for entry in instance.all_logs(dagster_run.run_id):
            leaks += canaries.leaks(f"event log of run {dagster_run.run_id}", dg.serialize_value(entry))
    assert len(instance.get_runs()) == 3

    for root in (cli.dagster_home, cli.home):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            leaks += canaries.leaks(f"file {path}", path.read_bytes())
    assert (cli.home / "state.db").is_file()

    engine = sa.create_engine(Settings.from_env().db_url)
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            leaks += canaries.leaks(f"table {table.name}", "\n".join(repr(tuple(row)) for row in rows))
    engine.dispose()
    instance.dispose()

    assert leaks == []


def test_the_scan_finds_a_canary(canaries: Canaries, tmp_path: Path) -> None:
    """The scanner itself: a canary written anywhere, in any form the scan reads, is found."""
    path = tmp_path / "leak.db"
    path.write_bytes(b"\x00\x01" + canaries.stripe_key[3:].encode() + b"\x00")
    assert canaries.leaks("file", path.read_bytes()) == ["file"]
    assert canaries.leaks("log", f"Bearer {canaries.wise_token}") == ["log"]
