"""Alerts per tenant: each alert to the tenant's own channels, and a daily digest of flagged records.

The channels and their config keys are in `systems/alerts/channels.py` (Slack-compatible incoming
webhook, SMTP); their secrets are the tenant's `alerts` credentials in the vault. `Connector.open`
hands `TenantAlertRouter` to `Alerts`, so every alert raised anywhere reaches the tenant's channels
too (the global ML_CONNECTOR_ALERT_WEBHOOK stays as it is).

The digest lists the records flagged since the previous digest (cursor `alerts_digest`, else the
last 24 hours), from the audit table. The cursor moves only once a channel took the digest, so a
digest that could not be sent is part of the next one. `ml-connector alerts digest TENANT` sends it
now (`--print` only prints it); the `alerts_daily_digest` schedule sends every tenant's at 07:00 UTC.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from ..core.audit import AuditEvent
from ..core.state import State
from ..core.tables import audit_events
from ..core.tenants import CredentialStore, TenantStore
from ..systems.alerts.channels import AlertChannels, alert_routing

logger = logging.getLogger("ml_connector.alerts")
ALERTS_SYSTEM = "alerts"  # the registry system whose credentials hold the channels' secrets
DIGEST_CURSOR = "alerts_digest"
DIGEST_SAMPLE = 200  # records listed in one digest; the count is always complete


class TenantAlertRouter:
    """Alerts -> the tenant's channels (those that take each alert; the others wait for the digest)."""

    def __init__(self, tenants: TenantStore, credentials: CredentialStore) -> None:
        self.tenants = tenants
        self.credentials = credentials

    def channels(self, tenant: str) -> AlertChannels | None:
        record = self.tenants.get(tenant)
        if record is None:
            return None
        routing = alert_routing(record.config, self.credentials.get(tenant, ALERTS_SYSTEM))
        return AlertChannels(routing) if routing.channels else None

    def __call__(self, tenant: str, subject: str, text: str) -> None:
        channels = self.channels(tenant)
        if channels is not None:
            channels.send(subject, text, each_alert=True)


@dataclass
class Digest:
    tenant: str
    since: datetime
    until: datetime
    flagged: list[AuditEvent]

    @property
    def subject(self) -> str:
        return f"[{self.tenant}] {len(self.flagged)} flagged record(s) since {self.since:%Y-%m-%d %H:%M} UTC"

    @property
    def text(self) -> str:
        if not self.flagged:
            return f"No record of {self.tenant} was flagged since {self.since:%Y-%m-%d %H:%M} UTC."
        lines = [
            f"- {e.at:%Y-%m-%d %H:%M} {e.flow} {e.source_id}: {e.reason or ''}"
            for e in self.flagged[:DIGEST_SAMPLE]
        ]
        more = len(self.flagged) - DIGEST_SAMPLE
        tail = [f"... and {more} more (`ml-connector audit {self.tenant}`)"] if more > 0 else []
        return "\n".join(
            [self.subject + ":", *lines, *tail, "Fix them at the source and rerun the partition."]
        )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_digest(state: State, tenant: str, now: datetime | None = None) -> Digest:
    until = _utc(now or datetime.now(UTC))
    cursor = state.cursors.get(tenant, DIGEST_CURSOR)
    since = datetime.fromisoformat(cursor) if cursor else until - timedelta(days=1)
    query = (
        sa.select(audit_events)
        .where(audit_events.c.tenant == tenant, audit_events.c.action == "flagged")
        .order_by(audit_events.c.id)
    )
    with state.store.session() as conn:
        rows = [AuditEvent(**row) for row in conn.execute(query).mappings()]
    flagged = [e for e in rows if since < _utc(e.at) <= until]
    return Digest(tenant, since, until, flagged)


def send_digest(
    state: State, router: TenantAlertRouter, tenant: str, now: datetime | None = None
) -> tuple[Digest, list[str]]:
    """Send the tenant's digest now; (the digest, the channels that took it). Nothing flagged:
    nothing sent. The cursor moves only when a channel took it."""
    digest = build_digest(state, tenant, now)
    channels = router.channels(tenant)
    if channels is None or not digest.flagged:
        return digest, []
    sent = channels.send(digest.subject, digest.text)
    if sent:
        state.cursors.set(tenant, DIGEST_CURSOR, digest.until.isoformat())
    return digest, sent


# Dagster: the daily digest ------------------------------------------------------------------------


@dg.op(required_resource_keys={"state"}, description="Send each tenant's digest of flagged records.")
def send_digests(context: dg.OpExecutionContext) -> None:
    connector = context.resources.state.connector()
    router = TenantAlertRouter(connector.state.tenants, connector.credentials)
    for record in connector.state.tenants.list():
        try:
            digest, sent = send_digest(connector.state, router, record.name)
        except ValueError as exc:  # a tenant's alert config is wrong: say so, send the others
            context.log.warning(f"tenant {record.name}: {exc}")
            continue
        context.log.info(
            f"tenant {record.name}: {len(digest.flagged)} flagged, sent to {', '.join(sent) or 'no channel'}"
        )


@dg.job(name="alerts_digest", description="Each tenant's digest of flagged records, to its channels.")
def alerts_digest_job() -> None:
    send_digests()


alerts_daily_digest = dg.ScheduleDefinition(
    name="alerts_daily_digest",
    job=alerts_digest_job,
    cron_schedule="0 7 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every tenant's digest of the records flagged since the previous one, at 07:00 UTC.",
)
