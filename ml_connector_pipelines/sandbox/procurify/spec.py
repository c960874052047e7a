"""Procurify's OpenAPI document, shipped beside the simulator (a verbatim copy of
contracts/procurify-openapi.yaml), and the query parameters each operation declares."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).with_name("procurify-openapi.yaml")


@cache
def document() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


@cache
def query_parameters(path: str, method: str = "get") -> frozenset[str]:
    """The query parameters the document lists for one operation (path as written there)."""
    operation = document()["paths"][path][method]
    return frozenset(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")
