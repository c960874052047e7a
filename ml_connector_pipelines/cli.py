"""The `ml-connector` command: tenants, keys, sandbox, webhooks, audit and the demo."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from .console import print_table
from .core.errors import ConnectorError

DEMO_INSTANCE_YAML = """\
# Local instance for the demo and `dagster dev`: SQLite storage in this folder.
# The production instance (Postgres, queued runs) is the project's top-level dagster.yaml.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 2
"""


def _ensure_dagster_home() -> None:
    # The same default as the Makefile, so the CLI and `make demo` share run history and partitions.
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DEMO_INSTANCE_YAML)


def _instance() -> Any:
    import dagster as dg

    _ensure_dagster_home()
    return dg.DagsterInstance.get()


def _connector(create_key: bool = False) -> Any:
    from .core.settings import Settings
    from .core.vault import ensure_master_key
    from .integrations.tenancy import Connector

    notice = ensure_master_key(Settings.from_env()) if create_key else None  # refuses in production
    if notice:
        print(notice, file=sys.stderr)
    return Connector.open()


# tenants -------------------------------------------------------------------------------------------


def _option_dest(system: str, flag: str) -> str:
    return f"{system}__{flag.lstrip('-').replace('-', '_')}"


def _read_option_file(path: str, kind: str) -> Any:
    from .systems.infor.ionapi import parse_ionapi_json

    if kind == "text":
        return Path(path).read_text()
    # Bounded in size and depth (a deeply nested file is exit 2, not a RecursionError); an error
    # names the file and line, never the content.
    return parse_ionapi_json(Path(path).read_bytes(), path)


def tenant_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The tenant config and, per registry system, the credentials `tenants add` was given. A system
    counts as given when one of its single-valued credential options differs from its default."""
    from .systems.registry import SYSTEMS

    config: dict[str, Any] = {}
    credentials: dict[str, dict[str, Any]] = {}
    for spec in SYSTEMS.values():
        creds: dict[str, Any] = {}
        given = False
        for option in spec.cli_options:
            # A config option two systems share (e.g. --procurement-cron) is parsed once, under the first.
            value = getattr(args, _option_dest(spec.name, option.flag), None)
            if value is None or value == []:
                continue
            if option.file:
                value = (
                    [_read_option_file(v, option.file) for v in value]
                    if option.repeat
                    else (_read_option_file(value, option.file))
                )
            if option.target == "config":
                config[option.key] = value
            elif option.file == "json":
                creds, given = {**value, **creds}, True
            else:
                creds[option.key] = value
                given = given or (not option.repeat and value != option.default)
        if given:
            credentials[spec.name] = creds
    return config, credentials


def cmd_tenants_add(args: argparse.Namespace) -> int:
    from .core.tenants import check_tenant_name
    from .integrations.tenancy import TenantExists, register_tenant

    check_tenant_name(args.name)  # before any file is read
    config, credentials = tenant_options(args)
    if args.sandbox:
        config["sandbox"] = True
    connector = _connector(create_key=True)  # the README's first command: creates the key on first use
    if connector.state.tenants.get(args.name) is not None and not args.replace:
        raise TenantExists(args.name)
    register_tenant(
        connector,
        args.name,
        product=args.product,
        config=config,
        instance=_instance(),
        check=not args.no_check,
        ionapi=credentials.pop("infor", None),
        **credentials,
    )
    systems = ", ".join(connector.credentials.systems(args.name))
    checked = "not checked (--no-check)" if args.no_check else "each system answered"
    print(
        f"tenant {args.name} {'replaced' if args.replace else 'added'} ({args.product}; credentials "
        f"stored encrypted for: {systems}; {checked})"
    )
    return 0


def cmd_tenants_config(args: argparse.Namespace) -> int:
    """Show the tenant's config (every key, set or default), or set `key=value` ones (validated)."""
    from .integrations.tenancy import set_config
    from .systems.tenant_config import describe, parse_assignments

    connector = _connector()
    record = connector.state.tenants.get(args.name)
    if record is None:
        from .core.tenants import UnknownTenantError

        raise UnknownTenantError(args.name)
    if args.assignments:
        updates, unset = parse_assignments(args.assignments)
        record = set_config(connector, args.name, updates, unset)
        changed = [*updates, *(f"{key} (back to its default)" for key in unset)]
        print(f"tenant {args.name}: set {', '.join(changed)}")
    rows = describe(record.config)
    if args.format == "json":
        print(json.dumps({row["key"]: row for row in rows}, indent=2))
    else:
        print_table(rows, ["key", "value", "set", "system", "meaning"], max_width=60)
    return 0


def cmd_tenants_pause(args: argparse.Namespace) -> int:
    from .integrations.tenancy import set_config

    pause = args.action == "pause"
    updates = {"paused": True, "paused_reason": args.reason} if pause else {}
    set_config(_connector(), args.name, updates, [] if pause else ["paused", "paused_reason"])
    if pause:
        print(
            f"tenant {args.name} paused: schedules, sensors and assets skip it; webhooks are still "
            f"received and wait in the inbox until `ml-connector tenants resume {args.name}`"
        )
    else:
        print(f"tenant {args.name} resumed: events waiting in its inbox are processed at the next tick")
    return 0


def cmd_tenants_list(args: argparse.Namespace) -> int:
    connector = _connector()
    rows = [
        {
            "tenant": t.name,
            "product": t.product,
            "systems": ",".join(connector.credentials.systems(t.name)),
            "created": t.created_at.isoformat(timespec="seconds"),
            "removed": t.removed_at.isoformat(timespec="seconds") if t.removed_at else "",
            "status": "removed" if t.removed_at else "paused" if t.config.get("paused") else "active",
            "sandbox": "yes" if t.config.get("sandbox") else "",
        }
        for t in connector.state.tenants.list(include_removed=args.all)
    ]
    print_table(rows, ["tenant", "product", "systems", "status", "sandbox", "created", "removed"])
    return 0


def cmd_tenants_remove(args: argparse.Namespace) -> int:
    from .integrations.tenancy import remove_tenant

    remove_tenant(_connector(), args.name, instance=_instance())
    print(f"tenant {args.name} removed; its ledger and audit history are kept")
    return 0


def cmd_tenants_check(args: argparse.Namespace) -> int:
    from .integrations.tenancy import check_tenant

    results = check_tenant(_connector(), args.name)  # an unknown tenant: error, exit 2
    print_table([{"system": k, "result": v} for k, v in results.items()], ["system", "result"])
    return 0 if all(v == "OK" for v in results.values()) else 1


# keys ----------------------------------------------------------------------------------------------


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from .core.vault import generate_key

    print(generate_key())
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Re-encrypt every credential with a new primary key, never leaving one unreadable.

    Key file: a new key is written in front of the old ones (atomically) BEFORE anything is
    re-encrypted, so every ciphertext is readable with the file at every moment. Keys in the
    environment: the operator puts a new key (`keys generate`) first in ML_CONNECTOR_MASTER_KEY and
    this re-encrypts with it; no key is ever printed here.
    """
    from .core.settings import Settings
    from .core.state import State
    from .core.tenants import CredentialStore
    from .core.vault import Vault, generate_key, read_key_file, write_key_file

    settings = Settings.from_env()
    Vault.from_settings(settings)  # fails clearly when no key exists yet
    if settings.master_keys:
        keys = settings.master_keys
    else:
        keys = [generate_key(), *read_key_file(settings.master_key_file)]
        write_key_file(settings.master_key_file, keys)
    vault = Vault(keys)
    count = CredentialStore(State.open(settings).store, vault).rotate_all(vault)
    where = "ML_CONNECTOR_MASTER_KEY" if settings.master_keys else str(settings.master_key_file)
    print(f"re-encrypted {count} credentials with the first key of {where}")
    print("Older keys still decrypt; remove them once every process runs with the new list.")
    return 0


# sandbox -------------------------------------------------------------------------------------------


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from .sandbox.host import SandboxServer

    server = SandboxServer(
        host=args.host, port=args.port, seed=args.seed, faults=args.faults, latency_ms=args.latency_ms
    )
    print(
        f"sandbox serving {', '.join(s.name for s in server.simulators)} at {server.url}/<system>/",
        flush=True,
    )
    print(f"faults: {args.faults}; health: {server.url}/_sandbox/health", flush=True)
    server.serve_forever()
    return 0


def cmd_sandbox_ionapi(args: argparse.Namespace) -> int:
    from .sandbox.infor.simulator import sandbox_ionapi

    print(json.dumps(sandbox_ionapi(f"http://127.0.0.1:{args.port}", args.tenant), indent=2))
    return 0


def cmd_sandbox_credentials(args: argparse.Namespace) -> int:
    from .sandbox.host import SandboxContext, default_simulators

    ctx = SandboxContext(base_url=f"http://127.0.0.1:{args.port}")
    print(json.dumps({cls.name: cls(ctx).credentials() for cls in default_simulators()}, indent=2))
    return 0


# webhooks, audit, demo ------------------------------------------------------------------------------


# What each worker process of `webhooks serve --workers N` imports to build its own receiver.
WEBHOOK_APP_FACTORY = "ml_connector_pipelines.cli:webhook_app"


def webhook_app() -> Any:
    """The receiver of this installation (its state store and every tenant's verifiers)."""
    from .core.webhooks import create_webhook_app
    from .integrations.tenancy import webhook_verifiers

    connector = _connector()
    return create_webhook_app(connector.state.inbox, webhook_verifiers(connector), freeze_heap=True)


def cmd_webhooks_serve(args: argparse.Namespace) -> int:
    from .core.webhooks import serve_webhooks

    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    # One worker builds the app here, so a broken configuration fails before the port opens.
    app = webhook_app() if args.workers == 1 else WEBHOOK_APP_FACTORY
    print(
        f"webhook receiver on http://{args.host}:{args.port}/webhooks/<source>/<tenant> "
        f"({args.workers} worker{'s' if args.workers > 1 else ''})",
        flush=True,
    )
    serve_webhooks(app, host=args.host, port=args.port, workers=args.workers)
    return 0


AUDIT_COLUMNS = ["at", "flow", "record", "action", "target", "run", "partition", "reason"]


def _known_flows(connector: Any, tenant: str) -> set[str]:
    """Flow names: every asset of the code location (flows are named after their assets), plus
    whatever the tenant's audit trail holds (flows since renamed)."""
    from .definitions import defs

    names = {key.path[-1] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    return names | {e.flow for e in connector.state.audit.history(tenant)}


def _known_tenant(connector: Any, tenant: str) -> None:
    from .core.tenants import UnknownTenantError

    # A removed tenant's history stays readable, as does history written before tenant records.
    if connector.state.tenants.get(tenant, include_removed=True) is None and not (
        connector.state.audit.history(tenant)
    ):
        raise UnknownTenantError(tenant)


def _parse_day(value: str | None, flag: str) -> Any:
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from None


def _emit(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        print(out.getvalue(), end="")
    else:
        print_table(rows, columns, max_width=80)


def cmd_audit(args: argparse.Namespace) -> int:
    from .core.audit import ACTIONS

    connector = _connector()
    _known_tenant(connector, args.tenant)
    if args.flow and args.flow not in _known_flows(connector, args.tenant):
        known = ", ".join(sorted(_known_flows(connector, args.tenant)))
        raise ValueError(f"unknown flow {args.flow!r}; known flows: {known}")
    if args.action and args.action not in ACTIONS:
        raise ValueError(f"unknown action {args.action!r}; actions: {', '.join(ACTIONS)}")
    since, until = _parse_day(args.since, "--since"), _parse_day(args.until, "--until")
    events = connector.state.audit.history(args.tenant, flow=args.flow, record=args.record)
    events = [
        e
        for e in events
        if (args.action is None or e.action == args.action)
        and (not args.flagged or e.action == "flagged")
        and (args.run is None or (e.run_id or "").startswith(args.run))
        and (since is None or e.at.date() >= since)
        and (until is None or e.at.date() <= until)
    ]
    full = args.format != "table"
    rows = [
        {
            "at": e.at.isoformat(timespec="seconds"),
            "flow": e.flow,
            "record": e.source_id,
            "action": e.action,
            "target": e.target_id or "",
            "run": e.run_id or "" if full else (e.run_id or "")[:8],
            "partition": e.partition or "",
            "reason": e.reason or "",
        }
        for e in events
    ]
    _emit(rows, AUDIT_COLUMNS, args.format)
    return 0


def needs_a_human(connector: Any, tenant: str, flow: str | None = None) -> list[dict[str, Any]]:
    """Records whose latest outcome is `flagged`: what a person must fix, with the replay command."""
    latest: dict[tuple[str, str], Any] = {}
    for event in connector.state.audit.history(tenant, flow=flow):
        if event.action not in ("alert", "replayed"):
            latest[(event.flow, event.source_id)] = event
    return [
        {
            "at": e.at.isoformat(timespec="seconds"),
            "flow": e.flow,
            "record": e.source_id,
            "reason": e.reason or "",
            "replay": f"ml-connector replay {tenant} --flow {e.flow} --record {e.source_id}",
        }
        for e in latest.values()
        if e.action == "flagged"
    ]


def cmd_flagged(args: argparse.Namespace) -> int:
    connector = _connector()
    _known_tenant(connector, args.tenant)
    rows = needs_a_human(connector, args.tenant, args.flow)
    _emit(rows, ["at", "flow", "record", "reason", "replay"], args.format)
    if args.format == "table":
        print(
            f"\n{len(rows)} record(s) need a human: fix each at its source, then run its replay command"
            if rows
            else "\nnothing needs a human"
        )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .definitions import defs
    from .integrations.kit.replay import replay
    from .integrations.resources import build_resources

    if not args.flagged and not args.record:
        raise ValueError("say what to replay: --record ID or --flagged")
    connector = _connector()
    report = replay(
        connector.state, defs, _instance(), build_resources(), args.tenant, args.flow, record=args.record
    )
    print(f"replayed {len(report.records)} record(s) of {args.flow}: {', '.join(report.records)}")
    for run_id, success in report.runs.items():
        print(f"run {run_id}: {'success' if success else 'FAILED'}")
    return 0 if all(report.runs.values()) else 1


def cmd_plan(args: argparse.Namespace) -> int:
    """The write preview of one tenant-day: nothing is written to a target, the ledger or the audit."""
    from datetime import UTC, date, datetime

    from . import definitions  # noqa: F401  (imports every pair: their push flows register)
    from .integrations.kit.plan import plan_partition
    from .integrations.resources import build_resources
    from .integrations.runs import run_finished_checker

    _connector()  # the vault's redaction is installed before any secret is read
    day = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    finished = run_finished_checker(_instance())  # a dead run's claims do not count, as in a run
    plans = plan_partition(build_resources(), args.tenant, day, args.flow or None, finished)
    print(f"write preview for {args.tenant} on {day.isoformat()}: nothing below has been done")
    for plan in plans:
        counts = ", ".join(f"{n} {action}" for action, n in sorted(plan.counts.items()))
        print(f"\n{plan.flow} -> {plan.target}: {plan.note or counts or 'nothing to do'}")
        if not plan.note and plan.rows():
            print_table(plan.rows(), ["flow", "record", "action", "target", "reason"])
    return 0


def cmd_alerts_digest(args: argparse.Namespace) -> int:
    """The tenant's digest of flagged records: sent to its channels now, or only printed."""
    from .integrations.alert_routing import TenantAlertRouter, build_digest, send_digest

    connector = _connector()
    if connector.state.tenants.get(args.tenant) is None:
        raise ValueError(f"unknown tenant {args.tenant!r}")
    if args.print:
        digest = build_digest(connector.state, args.tenant)
        print(digest.text)
        return 0
    router = TenantAlertRouter(connector.state.tenants, connector.credentials)
    digest, sent = send_digest(connector.state, router, args.tenant)
    print(digest.text)
    where = ", ".join(sent) if sent else "nowhere (nothing flagged, or no channel configured)"
    print(f"\nsent to {where}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _ensure_dagster_home()
    return run_demo(ui=args.ui, port=args.port, ui_port=args.ui_port)


def _add_system_options(parser: argparse.ArgumentParser) -> None:
    """Each registry system's `tenants add` options, in a group of its own."""
    from .systems.registry import SYSTEMS

    shared: set[str] = set()
    for spec in SYSTEMS.values():
        group = parser.add_argument_group(spec.title)
        for option in spec.cli_options:
            if option.target == "config":
                # Tenant config is one namespace: two systems may offer the same key (Cleo and
                # Procurify both run on the tenant's procurement cycle); it is one option.
                if option.flag in shared:
                    continue
                shared.add(option.flag)
            kwargs: dict[str, Any] = {
                "dest": _option_dest(spec.name, option.flag),
                "metavar": "FILE" if option.file else "VALUE",
                "help": option.help or None,
            }
            if option.repeat:
                kwargs.update(action="append", default=[])
            else:
                kwargs["default"] = option.default
            if option.choices:
                kwargs["choices"] = option.choices
            if spec.required and option.file == "json":
                kwargs["required"] = True  # the system of record's credentials file
            group.add_argument(option.flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-connector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    tenants = sub.add_parser("tenants", help="add, list, remove and check tenants").add_subparsers(
        dest="action", required=True
    )
    add = tenants.add_parser("add", help="validate and store a tenant's credentials (encrypted)")
    add.add_argument("name")
    add.add_argument("--product", choices=["m3", "syteline"], default="m3", help="Infor product")
    add.add_argument(
        "--replace",
        action="store_true",
        help="change an existing tenant: its product, the given options and systems' credentials",
    )
    add.add_argument("--no-check", action="store_true", help="store the credentials without pinging")
    add.add_argument(
        "--sandbox",
        action="store_true",
        help="a sandbox tenant: plain http to loopback hosts is allowed for it only",
    )
    _add_system_options(add)
    add.set_defaults(func=cmd_tenants_add)
    lst = tenants.add_parser("list")
    lst.add_argument("--all", action="store_true", help="include removed tenants")
    lst.set_defaults(func=cmd_tenants_list)
    rm = tenants.add_parser("remove", help="stop syncing a tenant (keeps its audit history)")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_tenants_remove)
    chk = tenants.add_parser("check", help="ping every configured system")
    chk.add_argument("name")
    chk.set_defaults(func=cmd_tenants_check)
    cfg = tenants.add_parser(
        "config",
        help="show a tenant's config (every key, its value or default, its meaning) or set keys",
        description="Show the config, or set keys: `tenants config ACME payment_cron='0 6 * * 1' "
        "wise_create_transfers=true` (JSON values are parsed; `key=` goes back to the default).",
    )
    cfg.add_argument("name")
    cfg.add_argument("assignments", nargs="*", metavar="key=value")
    cfg.add_argument("--format", choices=["table", "json"], default="table")
    cfg.set_defaults(func=cmd_tenants_config)
    pause = tenants.add_parser("pause", help="skip a tenant everywhere until resumed (nothing is lost)")
    pause.add_argument("name")
    pause.add_argument("--reason", default=None, help="shown in every skip")
    pause.set_defaults(func=cmd_tenants_pause)
    resume = tenants.add_parser("resume", help="resume a paused tenant")
    resume.add_argument("name")
    resume.set_defaults(func=cmd_tenants_pause)

    keys = sub.add_parser("keys", help="master key management").add_subparsers(dest="action", required=True)
    keys.add_parser("rotate", help="re-encrypt every credential with a new primary key").set_defaults(
        func=cmd_keys_rotate
    )
    keys.add_parser(
        "generate", help="print a new key (to put first in ML_CONNECTOR_MASTER_KEY)"
    ).set_defaults(func=cmd_keys_generate)

    sandbox = sub.add_parser("sandbox", help="the simulators").add_subparsers(dest="action", required=True)
    serve = sandbox.add_parser("serve", help="serve every simulator under http://HOST:PORT/<system>/")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8700)
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--faults", default="none", help="none, flaky, storm, chaos or gateway_timeout")
    serve.add_argument("--latency-ms", type=int, default=0)
    serve.set_defaults(func=cmd_sandbox_serve)
    ion = sandbox.add_parser("ionapi", help="print a valid .ionapi file for a sandbox tenant")
    ion.add_argument("--tenant", required=True)
    ion.add_argument("--port", type=int, default=8700)
    ion.set_defaults(func=cmd_sandbox_ionapi)
    cred = sandbox.add_parser("credentials", help="print, as JSON, the credentials each simulator accepts")
    cred.add_argument("--port", type=int, default=8700)
    cred.set_defaults(func=cmd_sandbox_credentials)

    webhooks = sub.add_parser("webhooks", help="the webhook receiver").add_subparsers(
        dest="action", required=True
    )
    wserve = webhooks.add_parser("serve")
    wserve.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (a container passes 0.0.0.0)"
    )
    wserve.add_argument("--port", type=int, default=8800)
    wserve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on the port (each verifies and stores; on Postgres, use about one per core)",
    )
    wserve.set_defaults(func=cmd_webhooks_serve)

    audit = sub.add_parser("audit", help="the record-level audit trail of a tenant")
    audit.add_argument("tenant")
    audit.add_argument("--flow")
    audit.add_argument("--record", help="a source id")
    audit.add_argument("--action", help="created, updated, flagged, failed, skipped, replayed, ...")
    audit.add_argument("--run", help="a run id or its first characters")
    audit.add_argument("--since", metavar="YYYY-MM-DD")
    audit.add_argument("--until", metavar="YYYY-MM-DD")
    audit.add_argument("--flagged", action="store_true", help="flagged rows only")
    audit.add_argument("--format", choices=["table", "json", "csv"], default="table")
    audit.set_defaults(func=cmd_audit)

    flagged = sub.add_parser(
        "flagged", help="what needs a human: flagged records, the reason and the replay command for each"
    )
    flagged.add_argument("tenant")
    flagged.add_argument("--flow")
    flagged.add_argument("--format", choices=["table", "json", "csv"], default="table")
    flagged.set_defaults(func=cmd_flagged)

    rep = sub.add_parser(
        "replay",
        help="retry flagged records once their cause is fixed: requeue flagged events (inbox flows) "
        "or rerun the partitions they came from (extract flows); each replay is an audit row",
    )
    rep.add_argument("tenant")
    rep.add_argument("--flow", required=True, help="e.g. infor_ar_payments, wise_recipients")
    which = rep.add_mutually_exclusive_group(required=True)
    which.add_argument("--record", help="one record (its source id, as `audit` shows it)")
    which.add_argument("--flagged", action="store_true", help="every flagged record of the flow")
    rep.set_defaults(func=cmd_replay)

    plan = sub.add_parser(
        "plan", help="write preview: what each push of a tenant-day would do, writing nothing"
    )
    plan.add_argument("tenant")
    plan.add_argument("--flow", action="append", help="one push flow (repeatable); default: all")
    plan.add_argument("--date", help="the partition's modified date, YYYY-MM-DD (default: today, UTC)")
    plan.set_defaults(func=cmd_plan)

    alerts = sub.add_parser("alerts", help="per-tenant alert channels").add_subparsers(
        dest="action", required=True
    )
    digest = alerts.add_parser("digest", help="send the tenant's digest of flagged records now")
    digest.add_argument("tenant")
    digest.add_argument("--print", action="store_true", help="only print it: send nothing, keep the cursor")
    digest.set_defaults(func=cmd_alerts_digest)

    demo = sub.add_parser("demo", help="run the main job on the embedded sandbox and print a summary")
    demo.add_argument("--ui", action="store_true", help="leave the sandbox and `dagster dev` running")
    demo.add_argument("--port", type=int, default=8700, help="sandbox port")
    demo.add_argument("--ui-port", type=int, default=3000, help="Dagster UI port (with --ui)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConnectorError, ValueError, FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
