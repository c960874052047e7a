"""Cin7 Core's own API description (``cin7-openapi.yaml``, a copy of contracts/cin7-openapi.yaml),
made usable by a validator and by the simulator's shape checks.

The document is a mechanical conversion of Cin7's Apiary blueprint, and three of its conversion
artefacts stop any OpenAPI validator from matching a real request, so ``openapi_document()`` fixes
exactly those and nothing else:

1. Query strings are part of the path keys (``/ref/account?Page={Page}&...``) and the query
   parameters are declared ``in: path, required: true``. Each key is cut at ``?``; parameters not
   in the remaining path become optional query parameters; operations of the same base path merge.
2. ``POST /supplier`` and ``POST /ref/account`` lost their request body; the field tables of both
   (tags "Supplier", "Chart of Accounts") are the same for POST and PUT, so they get the PUT body.
3. Schemas were inferred from one example each: a field that is null in another example is typed
   non-nullable. Every typed schema becomes nullable.

And one deliberate tightening (the simulator is strict): every object schema gets
``additionalProperties: false``, so an unknown field in a request or a response fails validation.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).with_name("cin7-openapi.yaml")
SERVER_PATH = "/ExternalApi/v2"
_PATH_PARAM = re.compile(r"{([^}]+)}")
_POST_BODY_FROM_PUT = ("/supplier", "/ref/account")


@cache
def raw_document() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {"$ref": schema["$ref"]}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: _strict(item) for name, item in value.items()}
        elif key in ("example", "examples", "enum", "required", "default"):
            out[key] = value
        else:
            out[key] = _strict(value)
    if "$ref" in out:
        return {"$ref": out["$ref"]}
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("additionalProperties", False)
    if "type" in out:
        out["nullable"] = True
    return out


@cache
def _document() -> dict[str, Any]:
    raw = raw_document()
    paths: dict[str, dict[str, Any]] = {}
    for key, item in raw["paths"].items():
        base = key.split("?", 1)[0].strip().rstrip("/") or "/"
        in_path = set(_PATH_PARAM.findall(base))
        merged = paths.setdefault(base, {})
        for method, operation in item.items():
            operation = copy.deepcopy(operation)
            params = []
            for param in operation.get("parameters", []):
                if param.get("in") == "path" and param["name"] not in in_path:
                    param = {**param, "in": "query", "required": False, "style": "form", "explode": True}
                params.append(param)
            operation["parameters"] = params
            existing = merged.get(method)
            if existing is None:
                merged[method] = operation
            else:  # the same operation spelled with two query strings: union of the parameters
                names = {(p["name"], p["in"]) for p in existing["parameters"]}
                existing["parameters"] += [p for p in params if (p["name"], p["in"]) not in names]
    for base in _POST_BODY_FROM_PUT:
        post, put = paths[base]["post"], paths[base]["put"]
        post.setdefault("requestBody", copy.deepcopy(put["requestBody"]))
    document = {
        "openapi": raw["openapi"],
        "info": {"title": raw["info"]["title"], "version": raw["info"].get("version") or "2"},
        "servers": [{"url": SERVER_PATH}],
        "paths": paths,
        "components": {"schemas": _strict(raw["components"]["schemas"])},
    }
    return document


def openapi_document() -> dict[str, Any]:
    """The normalised document (a fresh copy: validators may annotate what they are given)."""
    return copy.deepcopy(_document())


def operation(method: str, path: str) -> dict[str, Any] | None:
    """The operation for a request path relative to ``/ExternalApi/v2`` (case-insensitive), or None."""
    wanted = "/" + path.strip("/").lower()
    for base, item in _document()["paths"].items():
        if base.lower() == wanted:
            return item.get(method.lower())
    return None


def known_path(path: str) -> bool:
    wanted = "/" + path.strip("/").lower()
    return any(base.lower() == wanted for base in _document()["paths"])


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    schemas = _document()["components"]["schemas"]
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def request_schema(method: str, path: str) -> dict[str, Any] | None:
    op = operation(method, path)
    body = (op or {}).get("requestBody", {}).get("content", {}).get("application/json", {})
    return resolve(body["schema"]) if "schema" in body else None


def query_parameters(method: str, path: str) -> set[str]:
    op = operation(method, path) or {}
    return {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def shape_errors(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Unknown fields and wrong JSON types in ``value`` against a (normalised) schema."""
    schema = resolve(schema)
    if value is None:
        return []
    expected = schema.get("type")
    if expected:
        allowed = _JSON_TYPES.get(expected, (object,))
        wrong_bool = isinstance(value, bool) and expected in ("number", "integer")
        if wrong_bool or not isinstance(value, allowed):
            return [f"{where or 'body'}: expected {expected}, got {type(value).__name__}"]
    errors: list[str] = []
    if isinstance(value, dict) and ("properties" in schema or expected == "object"):
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key not in properties:
                errors.append(f"{where + '.' if where else ''}{key}: unknown field")
            else:
                errors += shape_errors(item, properties[key], f"{where + '.' if where else ''}{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += shape_errors(item, schema["items"], f"{where}[{index}]")
    return errors
