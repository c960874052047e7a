"""Partitions shared by every integration: tenant (dynamic) x modified date (daily)."""

from __future__ import annotations

from datetime import date

import dagster as dg

TENANTS = dg.DynamicPartitionsDefinition(name="tenants")
# end_offset=1 makes today's partition available: extracts are incremental by modified date.
DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
TENANT_DAY = dg.MultiPartitionsDefinition({"date": DAYS, "tenant": TENANTS})


def tenant_day(context: dg.AssetExecutionContext) -> tuple[str, date]:
    """The (tenant, modified date) of the partition being materialized."""
    keys = context.partition_key.keys_by_dimension  # type: ignore[union-attr]
    return keys["tenant"], date.fromisoformat(keys["date"])


def partition_key(tenant: str, day: date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"tenant": tenant, "date": day.isoformat()})
