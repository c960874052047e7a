"""The `ml-connector` command: tenants, keys, sandbox, webhooks, audit and the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

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


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


# tenants -------------------------------------------------------------------------------------------


def cmd_tenants_add(args: argparse.Namespace) -> int:
    from .integrations.tenancy import register_tenant
    from .systems.infor.ionapi import parse_ionapi_json

    # Bounded in size and depth; an error names the file, never its content.
    ionapi = parse_ionapi_json(Path(args.ionapi).read_bytes(), args.ionapi)
    config: dict[str, Any] = {"cono": args.cono, "divi": args.divi}
    if args.mongoose_config:
        config["mongoose_config"] = args.mongoose_config
    if args.wise_source_currency:
        config["wise_source_currency"] = args.wise_source_currency
    if args.payment_cron:
        config["payment_cron"] = args.payment_cron
    wise = None
    if args.wise_token or args.wise_client_id:
        wise = {
            "base_url": args.wise_base_url,
            "token": args.wise_token,
            "client_id": args.wise_client_id,
            "client_secret": args.wise_client_secret,
            "webhook_public_keys": [Path(p).read_text() for p in args.wise_webhook_public_key],
        }
    stripe = None
    if args.stripe_key:
        stripe = {
            "api_key": args.stripe_key,
            "base_url": args.stripe_base_url,
            "webhook_secret": args.stripe_webhook_secret,
        }
    connector = _connector(create_key=True)  # the README's first command: creates the key on first use
    register_tenant(
        connector,
        args.name,
        ionapi=ionapi,
        product=args.product,
        config=config,
        wise=wise,
        stripe=stripe,
        instance=_instance(),
    )
    systems = ", ".join(connector.credentials.systems(args.name))
    print(f"tenant {args.name} added ({args.product}; credentials stored encrypted for: {systems})")
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
        }
        for t in connector.state.tenants.list(include_removed=args.all)
    ]
    print_table(rows, ["tenant", "product", "systems", "created", "removed"])
    return 0


def cmd_tenants_remove(args: argparse.Namespace) -> int:
    from .integrations.tenancy import remove_tenant

    remove_tenant(_connector(), args.name, instance=_instance())
    print(f"tenant {args.name} removed; its ledger and audit history are kept")
    return 0


def cmd_tenants_check(args: argparse.Namespace) -> int:
    from .integrations.tenancy import check_tenant

    results = check_tenant(_connector(), args.name)
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
    from .core.store import State
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


def cmd_webhooks_serve(args: argparse.Namespace) -> int:
    from .core.webhooks import create_webhook_app, serve_webhooks
    from .integrations.tenancy import webhook_verifiers

    connector = _connector()
    app = create_webhook_app(connector.state.inbox, webhook_verifiers(connector))
    print(f"webhook receiver on http://{args.host}:{args.port}/webhooks/<source>/<tenant>", flush=True)
    serve_webhooks(app, host=args.host, port=args.port)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    events = _connector().state.audit.history(args.tenant, flow=args.flow, record=args.record)
    rows = [
        {
            "at": e.at.isoformat(timespec="seconds"),
            "flow": e.flow,
            "record": e.source_id,
            "action": e.action,
            "target": e.target_id or "",
            "run": (e.run_id or "")[:8],
            "partition": e.partition or "",
            "reason": e.reason or "",
        }
        for e in events
    ]
    print_table(rows, ["at", "flow", "record", "action", "target", "run", "partition", "reason"])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _ensure_dagster_home()
    return run_demo(ui=args.ui, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-connector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    tenants = sub.add_parser("tenants", help="add, list, remove and check tenants").add_subparsers(
        dest="action", required=True
    )
    add = tenants.add_parser("add", help="validate and store a tenant's credentials (encrypted)")
    add.add_argument("name")
    add.add_argument("--ionapi", required=True, help="the tenant's .ionapi file")
    add.add_argument("--product", choices=["m3", "syteline"], default="m3")
    add.add_argument("--cono", default="100", help="M3 company")
    add.add_argument("--divi", default="AAA", help="M3 division")
    add.add_argument("--mongoose-config", help="SyteLine X-Infor-MongooseConfig")
    add.add_argument("--wise-token", help="Wise personal API token")
    add.add_argument("--wise-client-id")
    add.add_argument("--wise-client-secret")
    add.add_argument("--wise-base-url", default="https://api.wise.com")
    add.add_argument("--wise-webhook-public-key", action="append", default=[], help="extra PEM file to trust")
    add.add_argument("--wise-source-currency", help="currency quotes are funded from (default EUR)")
    add.add_argument("--payment-cron", help="payment cycle, cron (default: Tue and Fri 06:00)")
    add.add_argument("--stripe-key", help="Stripe secret key")
    add.add_argument("--stripe-base-url", default="https://api.stripe.com")
    add.add_argument("--stripe-webhook-secret", help="Stripe endpoint secret (whsec_...)")
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
    wserve.add_argument("--host", default="0.0.0.0")
    wserve.add_argument("--port", type=int, default=8800)
    wserve.set_defaults(func=cmd_webhooks_serve)

    audit = sub.add_parser("audit", help="the record-level audit trail of a tenant")
    audit.add_argument("tenant")
    audit.add_argument("--flow")
    audit.add_argument("--record")
    audit.set_defaults(func=cmd_audit)

    demo = sub.add_parser("demo", help="run the main job on the embedded sandbox and print a summary")
    demo.add_argument("--ui", action="store_true", help="leave the sandbox and `dagster dev` running")
    demo.add_argument("--port", type=int, default=8700, help="sandbox port")
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
