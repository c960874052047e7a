"""Validated field types shared by the tenant config models of every system (no Dagster).

A system's config model (`SystemSpec.config`) is a pydantic model whose fields are tenant config keys;
these types give its crons and currencies one check and one error message each.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import pycountry
from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, BaseModel, ConfigDict

CURRENCY_CODES = frozenset(c.alpha_3 for c in pycountry.currencies)


def _cron(value: str) -> str:
    try:
        CronSim(value, datetime.now(UTC))
    except CronSimError:
        raise ValueError(
            f"{value!r} is not a cron expression (5 fields: minute hour day month weekday, "
            "e.g. '0 6 * * 2,5')"
        ) from None
    return value


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in CURRENCY_CODES:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. EUR, USD, GBP)")
    return code


Cron = Annotated[str, AfterValidator(_cron)]
Currency = Annotated[str, AfterValidator(_currency)]


class SystemConfig(BaseModel):
    """Base of every system's tenant config model: unknown keys are refused, every field documented
    (`Field(description=...)`, shown by `ml-connector tenants config` and the README table)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
