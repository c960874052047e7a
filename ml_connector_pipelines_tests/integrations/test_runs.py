"""A run that died or failed holding claims never blocks the rerun (issue 16 item 1), with a real
Dagster instance: its run status, and for a SIGKILLed worker the process it tagged the run with."""

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ml_connector_pipelines.integrations.runs import register_worker, run_finished_checker
from ml_connector_pipelines.integrations.wise.assets import RECIPIENTS, wise_recipients
from ml_connector_pipelines_tests.conftest import TenantEnv
from ml_connector_pipelines_tests.integrations.wise.wise_env import PIPELINE, infor_records, ledger, wise_user


def test_a_failed_run_holding_claims_does_not_block_the_rerun(tenant: TenantEnv) -> None:
    day = datetime.now(UTC).date()
    suppliers = [s["supplier_id"] for s in infor_records(tenant, "suppliers", day) if s["bank_account"]]
    assert suppliers
    ledger_store = tenant.connector.state.ledger

    @dg.op
    def claim_then_fail(context: dg.OpExecutionContext) -> None:
        # What a run killed mid-push leaves: the records claimed, nothing sent, the run failed.
        for supplier_id in suppliers:
            assert ledger_store.claim(tenant.name, RECIPIENTS, supplier_id, context.run.run_id)
        raise RuntimeError("worker lost")

    dead = dg.GraphDefinition(name="dead_run", node_defs=[claim_then_fail]).to_job()
    failed = dead.execute_in_process(instance=tenant.instance, raise_on_error=False)
    assert not failed.success
    assert tenant.instance.get_run_by_id(failed.run_id).status == dg.DagsterRunStatus.FAILURE

    rerun = tenant.materialize([*PIPELINE[:2], wise_recipients], day)
    assert rerun.success
    entries = ledger(tenant, RECIPIENTS)
    assert all(entries[s].status in ("done", "flagged") for s in suppliers)
    done = {entries[s].target_id for s in suppliers if entries[s].status == "done"}
    assert done
    active = {str(r["id"]) for r in wise_user(tenant)["recipients"] if r["active"]}
    assert done <= active


DIES_HOLDING_A_CLAIM = textwrap.dedent(
    """
    import os, signal, sys
    import dagster as dg
    from ml_connector_pipelines.integrations.runs import run_finished_for

    @dg.op
    def push(context):
        run_finished_for(context)  # what a SyncSession does before its first claim
        print(context.run.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 mid-push

    job = dg.GraphDefinition(name="killed", node_defs=[push]).to_job()
    job.execute_in_process(instance=dg.DagsterInstance.get())
    """
)


def test_a_run_whose_worker_was_killed_counts_as_ended(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    killed = subprocess.run(
        [sys.executable, "-c", DIES_HOLDING_A_CLAIM], env=env, capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    run_id = killed.stdout.split()[0]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.STARTED  # Dagster itself never learns it died
        assert run_finished_checker(instance)(run_id)
        assert not run_finished_checker(instance)("no-such-run")  # unknown: the lease decides


def test_a_live_run_is_not_ended() -> None:
    seen: dict[str, Any] = {}

    @dg.op
    def look_at_itself(context: dg.OpExecutionContext) -> None:
        register_worker(context.instance, context.run.run_id)
        seen["ended"] = run_finished_checker(context.instance)(context.run.run_id)

    with dg.DagsterInstance.ephemeral() as instance:
        job = dg.GraphDefinition(name="live", node_defs=[look_at_itself]).to_job()
        result = job.execute_in_process(instance=instance)
        assert seen == {"ended": False}
        assert run_finished_checker(instance)(result.run_id)  # and once it succeeded, it has ended
