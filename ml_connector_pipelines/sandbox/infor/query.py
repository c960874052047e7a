"""The two small query languages the simulator understands, and keyset paging over sorted rows.

- EXPORTMI ``QERY``: ``cols from TABLE [where cond (and cond)*] [order by COL]``
- IDO ``filter``: ``cond (AND cond)*``
- M3 Enterprise Search ``SQRY`` (the ``Search*`` transactions), a strict subset of its Lucene syntax:
  ``FIELD:value (AND FIELD:value)*``, a value ending in an unescaped ``*`` matches as a prefix, and
  ``\\`` escapes the next character. OR, NOT, groups, ranges and bare words are refused [I].

A cond is ``COL op value`` with op in = > >= < <= and value a number or a 'quoted string' ('' escapes
a quote). Values compare as numbers when both sides are numbers, else as strings; ``sort_key`` encodes
that same total order, so sorting, bisecting and filtering always agree (which keyset paging needs).
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, total_ordering
from typing import Any

Row = dict[str, str]
SortKey = tuple[int, Any]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>>=|<=|<>|=|<|>)|(?P<punct>[,*])|(?P<word>[^\s,=<>']+))"
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class QueryError(ValueError):
    pass


def sort_key(value: str) -> SortKey:
    """Numbers sort (and compare) numerically before all other strings."""
    return (0, Decimal(value)) if _NUMBER.match(value) else (1, value)


_COMPARE: dict[str, Callable[[SortKey, SortKey], bool]] = {
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: str

    @cached_property
    def key(self) -> SortKey:
        return sort_key(self.value)

    def matches(self, row: Row) -> bool:
        return _COMPARE[self.op](sort_key(row.get(self.column, "")), self.key)


@dataclass(frozen=True)
class Select:
    columns: tuple[str, ...]  # empty means "*"
    table: str
    conditions: tuple[Condition, ...]
    order_by: str | None


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError(f"cannot parse query near {text[pos : pos + 20]!r}")
        kind = match.lastgroup or "word"
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _conditions(tokens: list[tuple[str, str]], column_case: str) -> tuple[Condition, ...]:
    """column_case "upper" for M3 (field names are upper case), "keep" for IDO property names."""
    conditions, i = [], 0
    while i < len(tokens):
        if i + 3 > len(tokens):
            raise QueryError("incomplete condition")
        (k1, column), (k2, op), (k3, value) = tokens[i : i + 3]
        if k1 != "word" or k2 != "op" or op == "<>" or k3 not in ("word", "str"):
            raise QueryError(f"bad condition starting at {column!r}")
        if k3 == "str":
            value = value[1:-1].replace("''", "'")
        elif not _NUMBER.match(value):
            raise QueryError(f"value {value!r} must be a number or a 'quoted string'")
        conditions.append(Condition(column.upper() if column_case == "upper" else column, op, value))
        i += 3
        if i < len(tokens):
            if tokens[i][0] != "word" or tokens[i][1].lower() != "and" or i + 1 == len(tokens):
                raise QueryError(f"expected AND, got {tokens[i][1]!r}")
            i += 1
    return tuple(conditions)


def parse_select(query: str) -> Select:
    tokens = _tokens(query)
    lowered = [value.lower() if kind == "word" else None for kind, value in tokens]
    if "from" not in lowered:
        raise QueryError("missing FROM")
    at_from = lowered.index("from")
    columns = [value.upper() for kind, value in tokens[:at_from] if kind == "word"]
    if not columns and ("punct", "*") not in tokens[:at_from]:
        raise QueryError("no columns selected")
    if at_from + 1 >= len(tokens):
        raise QueryError("missing table name")
    table = tokens[at_from + 1][1].upper()
    rest = tokens[at_from + 2 :]
    order_by = None
    rest_lower = lowered[at_from + 2 :]
    for i in range(len(rest_lower) - 1):
        if rest_lower[i] == "order" and rest_lower[i + 1] == "by":
            if len(rest) != i + 3:
                raise QueryError("ORDER BY takes exactly one column")
            order_by = rest[i + 2][1].upper()
            rest = rest[:i]
            break
    conditions: tuple[Condition, ...] = ()
    if rest:
        if rest[0][1].lower() != "where":
            raise QueryError(f"expected WHERE, got {rest[0][1]!r}")
        conditions = _conditions(rest[1:], "upper")
    return Select(tuple(columns), table, conditions, order_by)


@dataclass(frozen=True)
class SearchTerm:
    field: str
    value: str
    prefix: bool  # the value ended in an unescaped *

    def matches(self, text: str) -> bool:
        return text.startswith(self.value) if self.prefix else text == self.value


_SEARCH_FIELD = re.compile(r"[A-Z][A-Z0-9]{3}")


def parse_search(query: str) -> tuple[SearchTerm, ...]:
    """``FIELD:value AND FIELD:value ...``; anything else is a QueryError."""
    terms: list[SearchTerm] = []
    i, n = 0, len(query)
    while True:
        while i < n and query[i] == " ":
            i += 1
        colon = query.find(":", i)
        if colon < 0 or not _SEARCH_FIELD.fullmatch(query[i:colon]):
            raise QueryError(f"expected FIELD:value at {query[i:]!r}")
        field, i = query[i:colon], colon + 1
        value, prefix = [], False
        while i < n and query[i] != " ":
            char = query[i]
            if char == "\\" and i + 1 < n:
                value.append(query[i + 1])
                i += 2
                continue
            if char == "*" and (i + 1 == n or query[i + 1] == " "):
                prefix = True
            elif char in '+-&|!(){}[]^"~*?:/':
                raise QueryError(f"unescaped {char!r} in the value of {field}")
            else:
                value.append(char)
            i += 1
        if not value and not prefix:
            raise QueryError(f"{field} has no value")
        terms.append(SearchTerm(field, "".join(value), prefix))
        while i < n and query[i] == " ":
            i += 1
        if i == n:
            return tuple(terms)
        if not query.startswith("AND ", i):
            raise QueryError(f"only AND joins terms, at {query[i:]!r}")
        i += 4


def parse_filter(text: str) -> tuple[Condition, ...]:
    return _conditions(_tokens(text), "keep") if text.strip() else ()


# Sorted views ---------------------------------------------------------------------------------------


@total_ordering
class Descending:
    """Wraps one sort-key element so it sorts in reverse (IDO ``orderby Prop DESC``)."""

    __slots__ = ("key",)

    def __init__(self, key: SortKey) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and self.key == other.key

    def __lt__(self, other: Descending) -> bool:
        return other.key < self.key

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True)
class SortedRows:
    """Rows sorted by ``columns`` (with per-column direction), plus their keys for bisecting."""

    columns: tuple[str, ...]
    descending: tuple[bool, ...]
    rows: list[Row]
    keys: list[tuple[Any, ...]]

    @classmethod
    def build(
        cls, rows: list[Row], columns: tuple[str, ...], descending: tuple[bool, ...] | None = None
    ) -> SortedRows:
        desc = descending or (False,) * len(columns)
        keyed = sorted(((cls._key(row, columns, desc), row) for row in rows), key=lambda pair: pair[0])
        return cls(columns, desc, [row for _, row in keyed], [key for key, _ in keyed])

    @staticmethod
    def _key(row: Row, columns: tuple[str, ...], desc: tuple[bool, ...]) -> tuple[Any, ...]:
        return tuple(
            Descending(sort_key(row.get(c, ""))) if d else sort_key(row.get(c, ""))
            for c, d in zip(columns, desc, strict=True)
        )

    def key_of(self, values: list[str]) -> tuple[Any, ...]:
        return self._key(dict(zip(self.columns, values, strict=False)), self.columns, self.descending)

    def after(self, values: list[str]) -> int:
        """Index of the first row strictly after the row whose sort values are ``values``."""
        return bisect_right(self.keys, self.key_of(values))

    def before(self, values: list[str]) -> int:
        return bisect_left(self.keys, self.key_of(values))

    def scan(self, conditions: tuple[Condition, ...], limit: int) -> list[Row]:
        """Rows matching every condition, in order, at most ``limit`` (0 = all).

        Conditions on the leading ascending sort column narrow the scan by bisecting, so a keyset page
        (``KEY > 'last' order by KEY``) costs O(page), not O(table).
        """
        start, stop = 0, len(self.rows)
        lead = self.columns[0] if self.columns and not self.descending[0] else None
        for cond in conditions:
            if cond.column != lead:
                continue
            probe = (cond.key,)
            if cond.op in (">", ">="):
                start = max(start, self._bisect(probe, right=cond.op == ">"))
            if cond.op in ("<", "<="):
                stop = min(stop, self._bisect(probe, right=cond.op == "<="))
            if cond.op == "=":
                start = max(start, self._bisect(probe, right=False))
                stop = min(stop, self._bisect(probe, right=True))
        found: list[Row] = []
        for row in self.rows[start:stop]:
            if all(cond.matches(row) for cond in conditions):
                found.append(row)
                if limit and len(found) >= limit:
                    break
        return found

    def _bisect(self, probe: tuple[Any, ...], right: bool) -> int:
        # Compare on the leading column only: bisect over a key view of that element.
        if right:
            return bisect_right(self.keys, probe, key=lambda k: k[:1])
        return bisect_left(self.keys, probe, key=lambda k: k[:1])
