"""Decode Stripe's form encoding (``metadata[k]=v``, ``types[0]=a``, ``expand[]=x``) into nested values.

Values stay strings, as on the wire; handlers coerce them (``as_int``, ``as_bool``) because only the
endpoint knows a field's type. An empty string is kept: for Stripe it means "unset this value".
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A parameter that cannot be decoded; ``param`` names it for Stripe's error body."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [head]
    rest = "[" + rest
    segments = _SEGMENT.findall(rest)
    if "".join(f"[{s}]" for s in segments) != rest:
        raise FormError(key, f"Invalid parameter name: {key}")
    return [head, *segments]


def _listify(node: Any) -> Any:
    """Dicts whose keys are all list indexes (``types[0]``, ``expand[]``) become lists, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(isinstance(k, int) for k in converted):
        return [converted[k] for k in sorted(converted)]
    if any(isinstance(k, int) for k in converted):
        raise FormError(next(str(k) for k in converted), "Cannot mix list indexes and names")
    return converted


def parse_form(body: str) -> dict[str, Any]:
    """Parse an ``application/x-www-form-urlencoded`` body or query string (both bracket spellings)."""
    root: dict[Any, Any] = {}
    appended: dict[int, int] = {}  # id(container) -> next index for "[]" keys
    for key, value in parse_qsl(body, keep_blank_values=True):
        node = root
        parts = _path(key)
        for depth, part in enumerate(parts):
            name: Any = part
            if part == "" and depth > 0:
                name = appended.get(id(node), 0)
                appended[id(node)] = name + 1
            elif part.isdigit() and depth > 0:
                name = int(part)
            if depth == len(parts) - 1:
                node[name] = value
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = node[name] = {}
                node = child
    return _listify(root)


def as_int(params: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FormError(name, f"Invalid integer: {value}") from None
    if minimum is not None and number < minimum:
        raise FormError(name, f"This value must be greater than or equal to {minimum}.")
    return number


def as_bool(params: dict[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if value in ("true", "false"):
        return value == "true"
    raise FormError(name, f"Invalid boolean: {value}")


def as_list(params: dict[str, Any], name: str) -> list[Any] | None:
    value = params.get(name)
    if value is None:
        return None
    if value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    raise FormError(name, f"Invalid array: {name}")


def as_str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise FormError(name, f"Invalid string: {name}")
    return value


def merge_metadata(current: dict[str, str], value: Any) -> dict[str, str]:
    """Stripe's metadata update: ``metadata=`` clears all, ``metadata[k]=`` removes one key."""
    if value is None:
        return current
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise FormError("metadata", "Invalid hash")
    merged = dict(current)
    for key, item in value.items():
        if not isinstance(item, str):
            raise FormError(f"metadata[{key}]", "Metadata values must be strings")
        if "[" in str(key) or "]" in str(key) or len(str(key)) > 40:
            raise FormError(
                f"metadata[{key}]", "Metadata keys must be at most 40 characters, without brackets"
            )
        if len(item) > 500:
            raise FormError(f"metadata[{key}]", "Metadata values can have up to 500 characters")
        if item == "":
            merged.pop(str(key), None)
        else:
            merged[str(key)] = item
    if len(merged) > 50:
        raise FormError("metadata", "You can have up to 50 metadata keys")
    return merged
