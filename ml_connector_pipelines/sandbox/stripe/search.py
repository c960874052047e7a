"""A minimal parser for Stripe's search query language (docs.stripe.com/search).

Supported: ``field:"value"`` (exact, case-insensitive), ``field~"sub"`` (substring, 3+ characters),
``metadata["key"]:"value"``, numeric ``created>1700000000`` (``>``, ``<``, ``>=``, ``<=``, ``:``),
a leading ``-`` to negate, clauses joined by spaces / ``AND`` or by ``OR`` (never both).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_JOINER = re.compile(r"\s*(AND|OR)\b\s*", re.IGNORECASE)
_CLAUSE = re.compile(
    r"""\s*(?P<neg>-)?
    (?:metadata\[(?P<mq>["'])(?P<mkey>.+?)(?P=mq)\]|(?P<field>[a-z_]+))
    (?P<op>:|~|>=|<=|>|<)
    (?:(?P<vq>["'])(?P<value>.*?)(?P=vq)|(?P<number>-?\d+))\s*""",
    re.VERBOSE,
)


class SearchQueryError(ValueError):
    pass


@dataclass(frozen=True)
class Clause:
    field: str  # "metadata" for metadata clauses
    metadata_key: str | None
    op: str
    value: str
    negated: bool


def parse_query(query: str, fields: set[str]) -> tuple[list[Clause], str]:
    """Returns the clauses and how they combine ("and" / "or")."""
    clauses: list[Clause] = []
    joiners: set[str] = set()
    pos = 0
    while pos < len(query):
        if clauses:
            joined = _JOINER.match(query, pos)
            if joined:
                joiners.add(joined.group(1).lower())
                pos = joined.end()
        match = _CLAUSE.match(query, pos)
        if match is None or match.end() == pos:
            raise SearchQueryError(f"Invalid search query near position {pos}: {query[pos : pos + 30]!r}")
        field = "metadata" if match.group("mkey") else match.group("field")
        if field not in fields:
            raise SearchQueryError(f"Field '{field}' is not supported for search on this resource")
        value = match.group("value") if match.group("vq") else match.group("number")
        if match.group("op") == "~" and len(value) < 3:
            raise SearchQueryError("Substring search (~) needs at least 3 characters")
        clauses.append(Clause(field, match.group("mkey"), match.group("op"), value, bool(match.group("neg"))))
        pos = match.end()
    if not clauses:
        raise SearchQueryError("The search query is empty")
    if len(joiners) > 1:
        raise SearchQueryError("AND and OR cannot be combined in one query")
    if len(clauses) > 10:
        raise SearchQueryError("A search query can have at most 10 clauses")
    return clauses, joiners.pop() if joiners else "and"


def _matches(clause: Clause, obj: dict[str, Any]) -> bool:
    if clause.field == "metadata":
        actual: Any = (obj.get("metadata") or {}).get(clause.metadata_key or "")
    else:
        actual = obj.get(clause.field)
    if actual is None:
        return False
    if isinstance(actual, int) and not isinstance(actual, bool):
        try:
            wanted = int(clause.value)
        except ValueError:
            return False
        return {
            ":": actual == wanted,
            ">": actual > wanted,
            "<": actual < wanted,
            ">=": actual >= wanted,
            "<=": actual <= wanted,
        }.get(clause.op, False)
    text, wanted_text = str(actual).lower(), clause.value.lower()
    if clause.op == ":":
        return text == wanted_text
    if clause.op == "~":
        return wanted_text in text
    return False


def compile_query(query: str, fields: set[str]) -> Callable[[dict[str, Any]], bool]:
    clauses, combine = parse_query(query, fields)

    def predicate(obj: dict[str, Any]) -> bool:
        results = (_matches(c, obj) != c.negated for c in clauses)
        return any(results) if combine == "or" else all(results)

    return predicate
