"""The code location: every integration's definitions merged, plus the shared resources and main job.

Each integration package owns its assets, checks, sensors and schedules (`integrations/<pair>/`);
this module only puts them together.
"""

from __future__ import annotations

import dagster as dg

from .integrations.infor import definitions as infor
from .integrations.partitions import TENANT_DAY
from .integrations.resources import build_resources
from .integrations.run_alerts import failed_run_alert
from .integrations.stripe import definitions as stripe
from .integrations.wise import definitions as wise

# Modules, not their `defs`: Dagster loads this module and wants exactly one Definitions in it.
INTEGRATIONS = [infor.defs, wise.defs, stripe.defs]


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
    *INTEGRATIONS, dg.Definitions(jobs=[main_job], sensors=[failed_run_alert], resources=build_resources())
)
