"""CloudSuite Industrial (SyteLine) IDOs through the ION API gateway: Mongoose REST v2.

Loads are `GET /CSI/IDORequestService/ido/load/{IDO}` paged with bookmarks (`loadtype=NEXT`), updates
`POST /CSI/IDORequestService/ido/update/{IDO}` (contracts/infor.md §5). Every call needs the
`X-Infor-MongooseConfig` header, which the adapter puts on the HttpClient from the tenant config.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ...core.errors import TargetRejected
from ...core.http import HttpClient, paginate

IDO_PATH = "/CSI/IDORequestService/ido"

# Mongoose UpdateAction values: 1 insert [C3]; 2 update and 4 delete [I].
INSERT, UPDATE, DELETE = 1, 2, 4


class IdoError(TargetRejected):
    """The IDO service answered but refused the request (MessageCode != 0 or Success false)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__("infor", method, path, status, message)


def ido_literal(value: str) -> str:
    """A quoted string for an IDO filter. The filter grammar has no escape for quotes."""
    if "'" in value:
        raise ValueError(f"value {value!r} contains a quote, which an IDO filter cannot express")
    return f"'{value}'"


def ido_change(action: int, properties: Mapping[str, Any], *, item_id: str | None = None) -> dict[str, Any]:
    """One entry of an update request's `Changes`. Updates and deletes name the row by its `_ItemId`."""
    change: dict[str, Any] = {
        "Action": action,
        "Properties": [
            {
                "Name": name,
                "Value": None if value is None else str(value),
                "Modified": True,
                "IsNull": value is None,
            }
            for name, value in properties.items()
        ],
    }
    if item_id is not None:
        change["ItemId"] = item_id
    return change


class SyteLineClient:
    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def load(
        self,
        ido: str,
        properties: Sequence[str],
        filter: str | None = None,
        orderby: str | None = None,
        recordcap: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Stream an IDO collection; each page asks for the rows after the previous page's bookmark."""
        path = f"{IDO_PATH}/load/{ido}"
        params: dict[str, Any] = {"properties": ",".join(properties), "recordcap": recordcap}
        if filter:
            params["filter"] = filter
        if orderby:
            params["orderby"] = orderby

        def fetch_page(bookmark: str | None) -> tuple[list[dict[str, Any]], str | None]:
            page_params = params if bookmark is None else {**params, "loadtype": "NEXT", "bookmark": bookmark}
            response = self.http.get(path, params=page_params)
            body = response.json()
            if body.get("MessageCode", 0) != 0:
                raise IdoError("GET", path, response.status_code, str(body.get("Message")))
            items = body.get("Items") or []
            more = bool(body.get("MoreRowsExist")) and bool(items)
            return items, body.get("Bookmark") if more else None

        return paginate(fetch_page)

    def update(self, ido: str, changes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply changes (see `ido_change`) and return the refreshed rows, each with its `_ItemId`."""
        path = f"{IDO_PATH}/update/{ido}"
        body = {"IDOName": ido, "RefreshAfterSave": True, "Changes": list(changes)}
        # Inserts have no idempotency key: a lost answer means "maybe inserted", never a blind retry.
        idempotent = all(change["Action"] != INSERT for change in changes)
        response = self.http.post(path, params={"refresh": "true"}, json=body, idempotent=idempotent)
        result = response.json()
        if not result.get("Success"):
            raise IdoError("POST", path, response.status_code, str(result.get("Message") or "update failed"))
        return list(result.get("Changes") or [])
