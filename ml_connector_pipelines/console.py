"""Plain-text tables for the terminal, shared by the CLI and the demo."""

from __future__ import annotations

from typing import Any


def _cell(value: Any, max_width: int | None) -> str:
    text = " ".join(str(value).split())  # one line per row
    if max_width is not None and len(text) > max_width:
        return text[: max_width - 1] + "…"
    return text


def print_table(rows: list[dict[str, Any]], columns: list[str], max_width: int | None = None) -> None:
    """Columns as wide as their widest cell, cut at `max_width` characters (the full text is in
    `--format json|csv`); the last column is never padded."""
    cells = [{c: _cell(r.get(c, ""), max_width) for c in columns} for r in rows]
    widths = {c: max([len(c), *(len(r[c]) for r in cells)]) for c in columns}

    def line(values: dict[str, str]) -> str:
        return "  ".join(values[c].ljust(widths[c]) for c in columns).rstrip()

    print(line({c: c for c in columns}))
    print(line({c: "-" * widths[c] for c in columns}))
    for row in cells:
        print(line(row))
