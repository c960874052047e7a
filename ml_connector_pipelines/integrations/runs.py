"""Has a Dagster run ended? The check the ledger and the inbox use to take over a dead run's claims.

A claim (a ledger row `pending` for a run, an inbox event held by a run) normally blocks other runs
until its lease runs out (15 minutes). `run_finished_checker(instance)` answers, per run id, whether
the holder can still be working on it, so a rerun takes its claims over at once instead:

- Dagster reports the run SUCCESS, FAILURE or CANCELED: ended (final, remembered).
- The run is still STARTED in Dagster but every process that worked for it is gone. A run worker
  killed with SIGKILL, or a host that lost power, leaves its run STARTED: Dagster's run monitoring
  only notices with launchers that can check a worker's health (Docker, Kubernetes), not with the
  default launcher or `dagster job execute`. So each process that opens a SyncSession tags its run
  with `ml_connector/worker.<pid>` = `<host> <boot id> <pid> <process start time>`
  (`register_worker`), and a process on the same host (same name and boot) checks those pids. A
  process on another host, or a pid that now belongs to another process, counts as alive: the
  answer errs towards waiting, never towards two runs pushing one record.
- Unknown run id (not in this instance's storage: another instance, or the run was deleted from
  the history): not ended. Every run that can claim is in the storage before it starts, so an
  unknown id means we cannot vouch for it, and the lease decides.

Answers that a run is still going are cached for `cache_seconds`, so a partition full of records
held by one live run asks the storage once in a while, not once per record.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import dagster as dg

WORKER_TAG_PREFIX = "ml_connector/worker."
DEFAULT_CACHE_SECONDS = 2.0

_registered: set[tuple[str, int]] = set()  # (run id, pid) already tagged by this process


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


def _start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot, Linux), or None when it does not exist.
    '-' where /proc is missing: existence is then all that can be told."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        # Field 22; the command name (field 2) may hold spaces, so split after its closing ')'.
        return stat.read_text().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, belongs to someone else
    return "-"


def _worker_identity(pid: int) -> str:
    return f"{socket.gethostname()} {_boot_id()} {pid} {_start_time(pid) or '-'}"


def _worker_gone(identity: str) -> bool:
    """True only when the process is provably gone: same host and boot, and its pid is free or
    now belongs to a process started later."""
    try:
        host, boot, pid, started = identity.split(" ")
    except ValueError:
        return False
    if host != socket.gethostname() or boot != _boot_id():
        return False
    now = _start_time(int(pid))
    return now is None or (started != "-" and now != "-" and now != started)


def _workers_gone(tags: Mapping[str, str]) -> bool:
    workers = [value for key, value in tags.items() if key.startswith(WORKER_TAG_PREFIX)]
    return bool(workers) and all(_worker_gone(worker) for worker in workers)


def register_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag the run with this process, so others can tell when it died (once per process and run)."""
    pid = os.getpid()
    if (run_id, pid) in _registered:
        return
    instance.add_run_tags(run_id, {f"{WORKER_TAG_PREFIX}{pid}": _worker_identity(pid)})
    _registered.add((run_id, pid))


def run_finished_checker(
    instance: dg.DagsterInstance, cache_seconds: float = DEFAULT_CACHE_SECONDS
) -> Callable[[str], bool]:
    """run id -> True when that run has ended (see the module docstring)."""
    ended: set[str] = set()
    still_going: dict[str, float] = {}  # run id -> when it was last seen going

    def run_finished(run_id: str) -> bool:
        if run_id in ended:
            return True
        seen = still_going.get(run_id)
        if seen is not None and time.monotonic() - seen < cache_seconds:
            return False
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            ended.add(run_id)  # a finished run never starts again
            return True
        if run is not None and _workers_gone(run.tags):
            return True  # not remembered: a new step process of the run may still register
        still_going[run_id] = time.monotonic()
        return False

    return run_finished


def run_finished_for(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> Callable[[str], bool]:
    """For a step about to claim records: registers this process with its run and returns the
    check for the other runs' claims. The one call a session or inbox consumer needs."""
    register_worker(context.instance, context.run.run_id)
    return run_finished_checker(context.instance)
