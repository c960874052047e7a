"""Data-quality checks on Infor extracts: pure functions over the extract DataFrame.

Structural problems (missing keys, duplicate keys) block the partition: pushing a broken extract could
create duplicates downstream. Record-level problems (a bad currency, a negative amount) are reported
here and flagged per record by the push assets, so one bad invoice never holds up the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pycountry

CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    blocking: bool
    description: str
    failing_records: list[str]


def _ids(frame: pd.DataFrame, mask: pd.Series, key: list[str]) -> list[str]:
    return ["/".join(str(v) for v in row) for row in frame.loc[mask, key].itertuples(index=False)][:50]


def required_fields(frame: pd.DataFrame, key: list[str], required: list[str]) -> CheckOutcome:
    mask = pd.Series(False, index=frame.index)
    for col in required:
        values = frame[col]
        mask |= values.isna() | (values.astype("string").str.strip() == "")
    return CheckOutcome(
        "required_fields",
        not mask.any(),
        True,
        f"{', '.join(required)} present on every record",
        _ids(frame, mask.fillna(True), key),
    )


def unique_keys(frame: pd.DataFrame, key: list[str]) -> CheckOutcome:
    mask = frame.duplicated(subset=key, keep=False)
    return CheckOutcome(
        "unique_keys", not mask.any(), True, f"no duplicate {'/'.join(key)}", _ids(frame, mask, key)
    )


def valid_currencies(frame: pd.DataFrame, key: list[str], currency_columns: list[str]) -> CheckOutcome:
    mask = pd.Series(False, index=frame.index)
    for col in currency_columns:
        values = frame[col]
        mask |= values.notna() & ~values.isin(CURRENCIES)
    return CheckOutcome(
        "valid_currencies",
        not mask.any(),
        False,
        f"{', '.join(currency_columns)} are ISO 4217 codes",
        _ids(frame, mask.fillna(False), key),
    )


def non_negative(frame: pd.DataFrame, key: list[str], amount_columns: list[str]) -> CheckOutcome:
    mask = pd.Series(False, index=frame.index)
    for col in amount_columns:
        mask |= frame[col].map(lambda v: v is not None and v == v and v < 0).astype(bool)
    return CheckOutcome(
        "non_negative_amounts",
        not mask.any(),
        False,
        f"{', '.join(amount_columns)} are not negative",
        _ids(frame, mask, key),
    )
