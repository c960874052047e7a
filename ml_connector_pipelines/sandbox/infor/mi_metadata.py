"""The M3 MI metadata the simulator enforces: which programs and transactions exist, their input fields
(with the required flag) and their output fields.

`m3-mi-metadata.json` is a copy of the programs we use from ``contracts/m3-mi-metadata.json``
(generated from M3 14.x metadata by github.com/GaryWayneSmith/M3H5, Apache-2.0). ``CUGEX1MI`` (user
extension fields) is a real, standard program the metadata does not carry; it is allowed here
explicitly, with only the fields the connector's contract uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

METADATA_FILE = Path(__file__).with_name("m3-mi-metadata.json")

_CUGEX_KEYS = [f"PK{n:02d}" for n in range(1, 9)]
_CUGEX_VALUES = ["A030", "A130", "A230", "A330"]
# Not in the metadata: allowed on purpose (see docs/infor.md). FILE + PK01 identify the record.
EXTRA_PROGRAMS: dict[str, dict[str, tuple[list[str], list[str], list[str]]]] = {
    "CUGEX1MI": {
        "AddFieldValue": (["FILE", "PK01"], [*_CUGEX_KEYS[1:], *_CUGEX_VALUES], []),
        "ChgFieldValue": (["FILE", "PK01"], [*_CUGEX_KEYS[1:], *_CUGEX_VALUES], []),
        "GetFieldValue": (
            ["FILE", "PK01"],
            _CUGEX_KEYS[1:],
            ["FILE", *_CUGEX_KEYS, *_CUGEX_VALUES, "LMDT"],
        ),
    }
}


@dataclass(frozen=True)
class Transaction:
    program: str
    name: str
    required: frozenset[str]
    inputs: frozenset[str]  # required ones included
    outputs: tuple[str, ...]


@cache
def transactions() -> dict[tuple[str, str], Transaction]:
    programs = json.loads(METADATA_FILE.read_text())["programs"]
    known: dict[tuple[str, str], Transaction] = {}
    for program, spec in programs.items():
        for name, trx in spec["transactions"].items():
            known[(program, name)] = Transaction(
                program,
                name,
                frozenset(field["name"] for field in trx["inputs"] if field["required"]),
                frozenset(field["name"] for field in trx["inputs"]),
                tuple(field["name"] for field in trx["outputs"]),
            )
    for program, extra in EXTRA_PROGRAMS.items():
        for name, (required, optional, outputs) in extra.items():
            known[(program, name)] = Transaction(
                program, name, frozenset(required), frozenset(required + optional), tuple(outputs)
            )
    return known


def lookup(program: str, transaction: str) -> Transaction | None:
    return transactions().get((program, transaction))
