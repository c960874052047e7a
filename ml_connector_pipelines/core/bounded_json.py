"""JSON from outside (webhook bodies, `.ionapi` files) parsed within a size and nesting bound.

`json.loads` recurses once per nesting level: a document of a few kilobytes of `[[[[...` ends in a
RecursionError, which no caller expects from a parser (it is not a ValueError), so a receiver
answered 500 and the CLI printed a traceback. The nesting is measured first, by a flat scan that
skips string contents, so nothing recursive ever sees a document deeper than the bound.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string (with escapes), or one bracket: strings are skipped so brackets inside them do not count.
# An unterminated string runs to the end (the closing quote is optional): one linear pass, always.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class JsonTooComplex(ValueError):
    """The document is larger or nested deeper than the caller accepts. Carries no content."""


def json_depth(data: bytes) -> int:
    """The deepest nesting of objects and arrays in `data` (0 for a scalar). Unbalanced input gets
    some number; json.loads rejects it afterwards anyway."""
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def check_json_bounds(data: str | bytes, *, max_bytes: int, max_depth: int) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JsonTooComplex(f"larger than {max_bytes} bytes")
    if json_depth(raw) > max_depth:
        raise JsonTooComplex(f"nested deeper than {max_depth} levels")


def loads_bounded(data: str | bytes, *, max_bytes: int, max_depth: int) -> Any:
    """json.loads after check_json_bounds; every failure is a ValueError."""
    check_json_bounds(data, max_bytes=max_bytes, max_depth=max_depth)
    return json.loads(data)
