"""Canonical records <-> typed pandas DataFrames.

Text columns are pandas "string", dates datetime64, integers nullable Int64. Money stays Decimal (object
columns): floats would round amounts. Nested models (a supplier's bank account) are flattened to
`bank_account.<field>` columns; tuples of nested models (PO lines) stay one object column.
"""

from __future__ import annotations

import types
import typing
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import pandas as pd
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_SEP = "."


def _base_type(annotation: Any) -> Any:
    """`X | None` -> X; Literal[...] -> str."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else object
    if origin is typing.Literal:
        return str
    return annotation


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def columns(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Flat column name -> python type, in field order."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        tp = _base_type(field.annotation)
        if _is_model(tp):
            out.update(columns(tp, prefix + name + _SEP))
        else:
            out[prefix + name] = tp
    return out


def _flatten(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        tp = _base_type(field.annotation)
        value = data.get(name)
        if _is_model(tp):
            row.update(_flatten(value or {}, tp, prefix + name + _SEP))
        else:
            row[prefix + name] = value
    return row


def to_frame(records: list[M], model: type[M]) -> pd.DataFrame:
    cols = columns(model)
    rows = [_flatten(r.model_dump(mode="python"), model) for r in records]
    frame = pd.DataFrame(rows, columns=list(cols))
    for col, tp in cols.items():
        if tp is str:
            frame[col] = frame[col].astype("string")
        elif tp is date:
            frame[col] = pd.to_datetime(frame[col]).astype("datetime64[s]")
        elif tp is int:
            frame[col] = frame[col].astype("Int64")
        else:  # Decimal, tuples of lines: keep the exact python objects
            frame[col] = frame[col].astype(object)
    return frame


def _clean(value: Any, tp: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and pd.isna(value):
        return None
    if tp is date and isinstance(value, pd.Timestamp):
        return value.date()
    if tp is Decimal and not isinstance(value, Decimal):
        return Decimal(str(value))
    return value


def _unflatten(row: dict[str, Any], model: type[BaseModel], prefix: str = "") -> dict[str, Any] | None:
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        tp = _base_type(field.annotation)
        if _is_model(tp):
            data[name] = _unflatten(row, tp, prefix + name + _SEP)
        else:
            data[name] = _clean(row.get(prefix + name), tp)
    if prefix and all(v is None for v in data.values()):
        return None  # an absent nested model (e.g. a supplier with no bank account)
    return data


def from_frame(frame: pd.DataFrame, model: type[M]) -> list[M]:
    return [model.model_validate(_unflatten(row, model)) for row in frame.to_dict("records")]
