"""The typed tenant config: every per-tenant option, its default and its meaning, in one model.

The model is assembled from the connector's own keys (`ConnectorConfig`) plus each registry system's
config model (`SystemSpec.config`, a `SystemConfig` subclass), so a new system adds its keys in its own
package:

    # systems/cin7/config.py
    class Cin7Config(SystemConfig):
        cin7_sale_status: str = Field("AUTHORISED", description="...")
    # systems/cin7/spec.py
    SYSTEM = SystemSpec(name="cin7", ..., config=Cin7Config)

Stored configs are plain JSON in the tenant row; every write (`tenants add`, `tenants config`,
`register_tenant`) goes through `validate_config`, so a stored config always parses. Readers may use
`tenant_config(raw)` for the typed view with defaults filled in.
The README table is generated from the model: `python -m ml_connector_pipelines.systems.tenant_config`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import BaseModel, Field, PositiveFloat, ValidationError, create_model

from .config_fields import SystemConfig
from .registry import SYSTEMS

README_BEGIN = (
    "<!-- tenant-config-table:begin (generated: python -m ml_connector_pipelines.systems.tenant_config) -->"
)
README_END = "<!-- tenant-config-table:end -->"


class ConnectorConfig(SystemConfig):
    """Keys of the connector itself, not of one system."""

    push_time_budget_seconds: PositiveFloat = Field(
        3600.0,
        description="no record of a push starts after this many seconds (the rest wait for the next run)",
    )
    paused: bool = Field(
        False, description="paused tenants are skipped by every schedule, sensor and asset (`tenants pause`)"
    )
    paused_reason: str | None = Field(None, description="why the tenant is paused (shown in every skip)")
    sandbox: bool = Field(
        False,
        description="the tenant runs on the sandbox: plain http to loopback hosts is allowed for it only "
        "(`tenants add --sandbox`)",
    )


def _sources() -> list[tuple[str, type[BaseModel]]]:
    return [("connector", ConnectorConfig)] + [
        (spec.name, spec.config) for spec in SYSTEMS.values() if spec.config is not None
    ]


def _untyped_systems() -> list[str]:
    """Systems with no config model yet: their `tenants add` config options are declared untyped,
    and any key named `<system>_...` is theirs (kept as given, not validated)."""
    return [spec.name for spec in SYSTEMS.values() if spec.config is None]


def _untyped_options() -> dict[str, tuple[str, str]]:
    """key -> (system, help) for the config options of systems without a config model."""
    found: dict[str, tuple[str, str]] = {}
    for spec in SYSTEMS.values():
        if spec.config is None:
            for option in spec.cli_options:
                if option.target == "config" and option.key not in found:
                    found[option.key] = (spec.name, option.help)
    return found


def _untyped_key(key: str) -> bool:
    return any(key.startswith(f"{system}_") for system in _untyped_systems())


@cache
def key_systems() -> dict[str, str]:
    """Each config key -> the system (or "connector") that defines it. Two typed models may not share
    a key."""
    owners: dict[str, str] = {}
    for system, model in _sources():
        for key in model.model_fields:
            if key in owners:
                raise TypeError(f"tenant config key {key!r} is defined by {owners[key]} and {system}")
            owners[key] = system
    for key, (system, _) in _untyped_options().items():
        owners.setdefault(key, system)
    return owners


@cache
def tenant_config_model() -> type[SystemConfig]:
    key_systems()  # refuses a key two systems define
    fields: dict[str, Any] = {}
    for _, model in _sources():
        for key, info in model.model_fields.items():
            fields[key] = (info.annotation, info)
    for key, (_system, help_text) in _untyped_options().items():
        if key not in fields:
            fields[key] = (Any, Field(None, description=f"{help_text} (not typed yet: stored as given)"))
    return create_model("TenantConfig", __base__=SystemConfig, **fields)


def _message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"]) or "config"
        text = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            text = f"is not a tenant config key; known: {', '.join(sorted(key_systems()))}"
        parts.append(f"tenant config {key!r}: {text}")
    return "; ".join(parts)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as stored (only the keys given, normalized); ValueError naming each bad key."""
    untyped = {k: v for k, v in config.items() if _untyped_key(k) and k not in key_systems()}
    try:
        model = tenant_config_model().model_validate({k: v for k, v in config.items() if k not in untyped})
    except ValidationError as exc:
        raise ValueError(_message(exc)) from None
    return {**model.model_dump(mode="json", exclude_unset=True), **untyped}


def tenant_config(config: dict[str, Any]) -> BaseModel:
    """The typed view of a stored config, defaults filled in (untyped `<system>_` keys left out)."""
    return tenant_config_model().model_validate({k: v for k, v in config.items() if not _untyped_key(k)})


def parse_assignments(assignments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """`key=value` words -> (keys to set, keys to unset: `key=`). A value is read as JSON when it
    parses (true, 5, ["1010","100"]) and as a string otherwise."""
    updates: dict[str, Any] = {}
    unset: list[str] = []
    for word in assignments:
        key, sep, raw = word.partition("=")
        if not sep or not key:
            raise ValueError(f"{word!r} is not key=value (e.g. payment_cron='0 6 * * 1')")
        if key not in key_systems() and not _untyped_key(key):
            raise ValueError(f"{key!r} is not a tenant config key; known: {', '.join(sorted(key_systems()))}")
        if raw == "":
            unset.append(key)
            continue
        try:
            updates[key] = json.loads(raw)
        except json.JSONDecodeError:
            updates[key] = raw
    return updates, unset


def _shown(value: Any) -> str:
    return "" if value is None else json.dumps(value) if not isinstance(value, str) else value


def describe(config: dict[str, Any]) -> list[dict[str, str]]:
    """One row per key: its value (set or default), whether set, its system and meaning."""
    model = tenant_config_model()
    typed = tenant_config(config)
    extra = [
        {
            "key": k,
            "value": _shown(v),
            "set": "yes",
            "system": k.split("_", 1)[0],
            "meaning": "(not typed yet)",
        }
        for k, v in config.items()
        if _untyped_key(k) and k not in model.model_fields
    ]
    rows = [
        {
            "key": key,
            "value": _shown(getattr(typed, key)),
            "set": "yes" if key in config else "default",
            "system": key_systems()[key],
            "meaning": info.description or "",
        }
        for key, info in model.model_fields.items()
    ]
    return rows + extra


def markdown_table() -> str:
    lines = ["| key | system | default | meaning |", "| --- | --- | --- | --- |"]
    for key, info in tenant_config_model().model_fields.items():
        default = _shown(info.default) or "(unset)"
        lines.append(f"| `{key}` | {key_systems()[key]} | `{default}` | {info.description or ''} |")
    return "\n".join(lines)


def readme_with_table(readme: str) -> str:
    """The README text with the generated table between its markers."""
    head, begin, rest = readme.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"README has no {README_BEGIN} ... {README_END} markers")
    return f"{head}{README_BEGIN}\n{markdown_table()}\n{README_END}{tail}"


if __name__ == "__main__":  # rewrite the README's table in place
    from pathlib import Path

    path = Path(__file__).parents[2] / "README.md"
    path.write_text(readme_with_table(path.read_text()))
    print(f"tenant config table written to {path}")
