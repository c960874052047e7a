"""M3 MI programs through the ION API gateway, REST v2 (contracts/infor.md §3, INFOR_SPEC "M3").

Every transaction is a GET on `/M3/m3api-rest/v2/execute/{PROGRAM}/{TRANSACTION}` below the API base,
with options as matrix parameters (`;maxrecs=..;cono=..`, as Infor's Odin SDK sends them) and the
transaction's input fields as query parameters. Values are strings; dates are YYYYMMDD.

Assumption (the write preview): a transaction only reads when its name starts with Get, Lst, List,
Sel or Search (EXPORTMI's Select included), the read verbs of the MI metadata; every other one is
treated as a write and refused while the HTTP client is read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

from ...core.errors import ConnectorError, TargetRejected
from ...core.http import HttpClient, paginate

EXECUTE_PATH = "/M3/m3api-rest/v2/execute"
# EXPORTMI joins each row's columns with SEPC. Business text can hold ";" or any printable
# character, so use BEL: a control character no M3 field holds, and not whitespace (records are
# right-trimmed, which would otherwise eat the separators of trailing empty columns).
EXPORT_SEPARATOR = "\x07"

Record = dict[str, str]


class M3TransactionError(TargetRejected):
    """M3 refused a transaction: a business error (HTTP 200 with errorMessage) or a bad request (400)."""

    def __init__(
        self,
        path: str,
        status: int,
        message: str,
        *,
        program: str,
        transaction: str,
        error_type: str | None = None,
        error_code: str | None = None,
        error_field: str | None = None,
    ) -> None:
        super().__init__("infor", "GET", path, status, message)
        self.program = program
        self.transaction = transaction
        self.error_type = error_type
        self.error_code = error_code
        self.error_field = error_field


# The transactions a lost answer may be retried for: reads, and writes whose repeat cannot make a
# second record (the caller chose the key, so a repeat answers "already exists", or it sets values).
# Anything not listed (PPS370MI StartEntry/AddHead/AddLine/FinishEntry, APS450MI AddHead/AddLine,
# APS455MI ValidByBatchNo, ...) is sent once; the caller's find_* lookup settles a lost answer.
SAFE_TO_RETRY: frozenset[tuple[str, str]] = frozenset(
    {
        ("EXPORTMI", "Select"),
        ("CRS620MI", "LstByNumber"),
        ("CRS620MI", "GetBasicData"),
        ("CRS620MI", "LstSuppliers"),
        ("CRS620MI", "LstSupplierRef"),
        ("CRS620MI", "LstAddresses"),
        ("MDBREADMI", "LstCEMAIL00"),
        ("CRS610MI", "LstByNumber"),
        ("CRS610MI", "GetBasicData"),
        ("CRS630MI", "LstAccountID"),
        ("CRS691MI", "LstByNumber"),
        ("CRS692MI", "LstByType"),
        ("CRS692MI", "LstByAccHolder"),
        ("CRS692MI", "GetBankAccount"),
        ("CRS692MI", "ChgBasicData"),
        ("ARS200MI", "LstInvByDivi"),
        ("ARS200MI", "GetInvTotInfo"),
        ("ARS200MI", "SearchInvoices"),
        ("ARS200MI", "GetInvoice"),
        ("APS200MI", "SearchSupInvoic"),
        ("APS200MI", "GetInvoice"),
        ("PPS200MI", "SearchHead"),
        ("PPS200MI", "GetHead"),
        ("PPS200MI", "LstLine"),
        ("PPS001MI", "GetHeadBasic"),
        ("APS450MI", "GetHead"),
        ("APS450MI", "LstInvBySupInv"),
        ("ARS040MI", "AddBatchHead"),  # PBID is ours: a repeat answers "already exists"
        ("ARS040MI", "AddBatchLine"),  # PBID + TRNO are ours: likewise
        ("ARS040MI", "ControlBatch"),
        ("CUGEX1MI", "GetFieldValue"),
        ("CUGEX1MI", "AddFieldValue"),  # a repeat answers "already exists", which the caller reads
        ("CUGEX1MI", "ChgFieldValue"),
    }
)


def is_idempotent(program: str, transaction: str) -> bool:
    return (program, transaction) in SAFE_TO_RETRY


# Transactions that only read, by name prefix (Get, Lst/List, Sel, Search; EXPORTMI's Select).
# Every other transaction (Add, Upd, Chg, Del, StartEntry, FinishEntry, ValidByBatchNo...) writes.
READ_TRANSACTION_PREFIXES = ("Get", "Lst", "List", "Sel", "Search")


def is_read(transaction: str) -> bool:
    """Whether a transaction only reads: the write preview lets these through, refuses the rest."""
    return transaction.startswith(READ_TRANSACTION_PREFIXES)


def m3_date(value: date) -> str:
    return value.strftime("%Y%m%d")


def m3_timestamp(value: date) -> str:
    """LMTS for the start of a day: 18 digits, .NET ticks (100 ns since 0001-01-01) [I]."""
    return str((value - date(1, 1, 1)).days * 864_000_000_000)


def is_exportmi_refused(exc: TargetRejected) -> bool:
    """The tenant's MI security refuses EXPORTMI (many tenants lock it) [I: the message wording]."""
    return (
        isinstance(exc, M3TransactionError) and exc.program == "EXPORTMI" and "authoriz" in exc.target_message
    )


def parse_m3_date(value: str) -> date | None:
    value = value.strip()
    if not value or value.strip("0") == "":
        return None
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def m3_literal(value: str) -> str:
    """A quoted string for an EXPORTMI where clause. The grammar has no escape for quotes."""
    if "'" in value:
        raise ValueError(f"value {value!r} contains a quote, which an EXPORTMI query cannot express")
    return f"'{value}'"


# Characters Lucene (M3's Enterprise Search, SQRY) reads as syntax; a value escapes them with "\\".
_SEARCH_SPECIAL = set('+-&|!(){}[]^"~*?:\\/ ')


def search_literal(value: str) -> str:
    """A value for an M3 Enterprise Search query (SQRY): Lucene syntax characters escaped."""
    return "".join(f"\\{char}" if char in _SEARCH_SPECIAL else char for char in value)


def _clean_message(message: str) -> str:
    # M3 pads messages with spaces; collapse them so the flagged-record reason reads well.
    return " ".join(message.split())


class M3Client:
    """Executes MI transactions for one tenant; `cono`/`divi` default to the tenant's company context."""

    def __init__(self, http: HttpClient, *, cono: str | None = None, divi: str | None = None) -> None:
        self.http = http
        self.cono = cono
        self.divi = divi

    def execute(
        self,
        program: str,
        transaction: str,
        *,
        maxrecs: int | None = None,
        returncols: Sequence[str] | None = None,
        cono: str | int | None = None,
        divi: str | None = None,
        **fields: Any,
    ) -> list[Record]:
        """Run one transaction and return its records (flat FIELD -> string dicts, right-trimmed)."""
        matrix = {
            "maxrecs": maxrecs,
            "returncols": ",".join(returncols) if returncols else None,
            "cono": cono if cono is not None else self.cono,
            "divi": divi if divi is not None else self.divi,
        }
        path = f"{EXECUTE_PATH}/{program}/{transaction}"
        request_path = path + "".join(
            f";{name}={value}" for name, value in matrix.items() if value is not None
        )
        params = {name: str(value) for name, value in fields.items() if value is not None}
        try:
            response = self.http.get(
                request_path,
                params=params,
                idempotent=is_idempotent(program, transaction),
                writes=not is_read(transaction),
            )
        except TargetRejected as exc:
            if exc.status != 400:
                raise
            # A request-level failure (unknown transaction, missing mandatory field): v2 answers 400
            # with the error keys at the top level; the HTTP layer keeps only the message.
            raise M3TransactionError(
                path, 400, exc.target_message, program=program, transaction=transaction
            ) from exc
        body = response.json()
        results = body.get("results") or []
        for result in results:
            if result.get("errorMessage"):
                raise M3TransactionError(
                    path,
                    response.status_code,
                    _clean_message(result["errorMessage"]),
                    program=program,
                    transaction=transaction,
                    error_type=result.get("errorType"),
                    error_code=result.get("errorCode"),
                    error_field=result.get("errorField"),
                )
        if not results:
            return []
        return [
            {name: value.rstrip() if isinstance(value, str) else str(value) for name, value in record.items()}
            for record in results[0].get("records") or []
        ]

    def select(
        self,
        table: str,
        columns: Sequence[str],
        *,
        key: str,
        where: Iterable[str] = (),
        page_size: int = 500,
    ) -> Iterator[Record]:
        """Stream a table through EXPORTMI/Select, page by page, in `key` order (contract §3.5).

        M3 has no page token. Each page restarts from the last key seen (inclusive, so a key shared by
        several rows is never skipped) and drops the rows already returned at that key. When one key's
        rows fill a whole page, that key's rows are read in one call and paging moves past it.
        """
        if key not in columns:
            raise ValueError(f"key {key} must be one of the selected columns")
        conditions = list(where)

        def query(*extra: str) -> str:
            text = f"{','.join(columns)} from {table}"
            if conditions or extra:
                text += " where " + " and ".join([*conditions, *extra])
            return text + f" order by {key}"

        # Cursor: (last key, rows already returned at that key, whether that key is done).
        def fetch_page(
            cursor: tuple[str, frozenset[tuple[str, ...]], bool] | None,
        ) -> tuple[list[Record], Any]:
            if cursor is None:
                rows = self.export(query(), columns, maxrecs=page_size)
                last_key, seen_at_key = None, frozenset()
            else:
                last_key, seen_at_key, key_done = cursor
                operator = ">" if key_done else ">="
                rows = self.export(
                    query(f"{key}{operator}{m3_literal(last_key)}"), columns, maxrecs=page_size
                )
            fresh = [row for row in rows if not (row[key] == last_key and tuple(row.values()) in seen_at_key)]
            if len(rows) < page_size:
                return fresh, None
            if not fresh:
                # The page held only rows already returned: read the rest of this key at once.
                assert last_key is not None
                group = self.export(query(f"{key}={m3_literal(last_key)}"), columns, maxrecs=0)
                unseen = [row for row in group if tuple(row.values()) not in seen_at_key]
                return unseen, (last_key, frozenset(), True)
            new_key = rows[-1][key]
            at_key = {tuple(row.values()) for row in rows if row[key] == new_key}
            if new_key == last_key:
                at_key |= seen_at_key
            return fresh, (new_key, frozenset(at_key), False)

        return paginate(fetch_page)

    def list_from(
        self, program: str, transaction: str, *, key: str, start: str, page_size: int, **fields: Any
    ) -> Iterator[Record]:
        """Keyset paging over a Lst* transaction that reads forward from a start key (input `start`,
        inclusive, so the first row of a next page repeats the last one and is dropped)."""

        def fetch_page(last: str | None) -> tuple[list[Record], str | None]:
            records = self.execute(program, transaction, maxrecs=page_size, **{start: last or None}, **fields)
            fresh = [record for record in records if last is None or record[key] > last]
            if len(records) < page_size or not fresh:
                return fresh, None
            return fresh, fresh[-1][key]

        return paginate(fetch_page)

    def export(self, query: str, columns: Sequence[str], *, maxrecs: int) -> list[Record]:
        """One EXPORTMI/Select call; splits each REPL line into the asked columns."""
        records = self.execute(
            "EXPORTMI", "Select", maxrecs=maxrecs, QERY=query, SEPC=EXPORT_SEPARATOR, HDRS="0"
        )
        rows: list[Record] = []
        for record in records:
            values = record.get("REPL", "").split(EXPORT_SEPARATOR)
            if len(values) != len(columns):
                # A separator inside a value would shift every column: fail rather than misread.
                raise ConnectorError(f"EXPORTMI returned {len(values)} values for {len(columns)} columns")
            rows.append({column: value.strip() for column, value in zip(columns, values, strict=True)})
        return rows
