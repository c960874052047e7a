"""The Cleo entry of the system registry."""

from __future__ import annotations

from typing import Any

from ...core.http import RateLimit
from ..spec import ClientContext, CliOption, SystemSpec
from .client import CleoClient
from .models import CleoCredentials

# Cleo publishes no rate limit (contracts/cleo.md §7): 5 requests/s per credential is the connector's
# assumption; the client still backs off on 429.
RATE_LIMIT = RateLimit(per_second=5, burst=5)


def open_cleo(credentials: dict[str, Any], context: ClientContext) -> CleoClient:
    loopback = {"allow_loopback_http": context.allow_loopback_http}
    model = CleoCredentials.model_validate(credentials, context=loopback)
    return CleoClient(model, rate_limit=RATE_LIMIT, rate_store=context.rate_store)


def ping_cleo(client: CleoClient) -> None:
    client.ping()


SYSTEM = SystemSpec(
    name="cleo",
    title="Cleo Integration Cloud (X12 EDI)",
    credentials=CleoCredentials,
    open_client=open_cleo,
    ping=ping_cleo,
    rate_limit=RATE_LIMIT,
    cli_options=(
        CliOption("--cleo-base-url", "base_url", "Cleo host, e.g. https://acme.cleointegration.com"),
        CliOption("--cleo-username", "username"),
        CliOption("--cleo-password", "password"),
        CliOption("--cleo-sftp-host", "sftp_host", "partner mailbox SFTP host (partners on SFTP)"),
        CliOption("--cleo-sftp-port", "sftp_port", default="22"),
        CliOption(
            "--cleo-sftp-host-key", "sftp_host_key", "file with the SFTP server's public key", file="text"
        ),
        CliOption(
            "--cleo-partners",
            "cleo_trading_partners",
            "JSON file listing the EDI trading partners",
            target="config",
            file="json",
        ),
        CliOption("--cleo-isa-id", "cleo_isa_id", "our X12 interchange id", target="config"),
        CliOption(
            "--procurement-cron",
            "procurement_cron",
            "EDI cycle, cron (default weekdays 05:00)",
            target="config",
        ),
    ),
)
