"""The code location: every integration's definitions merged, plus the shared resources and main job.

Each integration package owns its assets, checks, sensors and schedules (`integrations/<pair>/`);
this module only puts them together.
"""

from __future__ import annotations

import dagster as dg

from .integrations.alert_routing import alerts_daily_digest, alerts_digest_job
from .integrations.cin7 import definitions as cin7
from .integrations.cleo import definitions as cleo
from .integrations.infor import definitions as infor
from .integrations.kit.plan_job import write_preview_job
from .integrations.partitions import TENANT_DAY
from .integrations.procurify import definitions as procurify
from .integrations.resources import build_resources
from .integrations.storage import io_manager_from_env
from .integrations.stripe import definitions as stripe
from .integrations.wise import definitions as wise

# Modules, not their `defs`: Dagster loads this module and wants exactly one Definitions in it.
INTEGRATIONS = [infor.defs, wise.defs, stripe.defs, cleo.defs, cin7.defs, procurify.defs]


def _daily_assets() -> list[dg.AssetKey]:
    """Every asset partitioned tenant x day: the main job's selection."""
    keys: list[dg.AssetKey] = []
    for defs in INTEGRATIONS:
        for asset in defs.assets or []:
            if isinstance(asset, dg.AssetsDefinition) and asset.partitions_def == TENANT_DAY:
                keys.extend(asset.keys)
    return keys


main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.assets(*_daily_assets()),
    description="Extract one tenant-day from Infor and push it to every configured target.",
)


defs = dg.Definitions.merge(
    *INTEGRATIONS,
    dg.Definitions(
        jobs=[main_job, write_preview_job, alerts_digest_job],
        schedules=[alerts_daily_digest],
        resources={**build_resources(), **io_manager_from_env()},
    ),
)
