"""Data-quality checks on source extracts (any system): pure functions over the extract DataFrame.

Only a broken extract blocks the partition (duplicate keys, a source schema change): pushing it could
create duplicates downstream. Record-level problems never hold up the others: a record missing a
required field is quarantined by the extract (left out of its frame, named and alerted), and a bad
currency or a negative amount is reported here and flagged per record by the push assets.
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
        False,  # one record's problem: quarantined, never the whole partition
        f"{', '.join(required)} present on every record",
        _ids(frame, mask.fillna(True), key),
    )


def missing_required(frame: pd.DataFrame, key: list[str], required: list[str]) -> list[tuple[int, str, str]]:
    """(row position, record id, first empty required field) of each record missing one."""
    found: list[tuple[int, str, str]] = []
    for position, row in enumerate(frame[list(dict.fromkeys([*key, *required]))].itertuples(index=False)):
        values = dict(zip(dict.fromkeys([*key, *required]), row, strict=True))
        empty = [col for col in required if _empty(values[col])]
        if empty:
            found.append(
                (position, "/".join("" if _empty(values[k]) else str(values[k]) for k in key), empty[0])
            )
    return found


def _empty(value: object) -> bool:
    return (
        value is None
        or value is pd.NA
        or (isinstance(value, float) and value != value)
        or (isinstance(value, str) and not value.strip())
    )


def source_schema(rejected_fields: list[str], rows_read: int) -> CheckOutcome:
    """A schema change in the source (a column renamed or gone) makes one field fail on most rows:
    blocking, since the extract is no longer what the pushes expect. Scattered bad rows are not."""
    fields = set(rejected_fields)
    broken = rows_read >= 2 and len(fields) == 1 and len(rejected_fields) * 2 >= rows_read
    return CheckOutcome(
        "source_schema",
        not broken,
        True,
        f"field {next(iter(fields))} unreadable on {len(rejected_fields)} of {rows_read} rows"
        if broken
        else "the source rows have the fields the extract reads",
        [],
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
