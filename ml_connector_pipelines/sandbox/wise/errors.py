"""Wise's error bodies (contract section 8), raised as ``ApiError`` and rendered by the simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One entry of Wise's ``{"errors": [...]}`` list; codes are not unique, read them with ``path``."""

    code: str
    message: str
    path: str | None
    arguments: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "path": self.path, "arguments": self.arguments}


class ApiError(Exception):
    """An HTTP error answer: status, JSON body and extra headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def validation_failed(errors: list[FieldError], status: int = 422) -> ApiError:
    return ApiError(status, {"errors": [error.to_json() for error in errors]})


def invalid_field(path: str | None, message: str, code: str = "NOT_VALID", status: int = 422) -> ApiError:
    return validation_failed([FieldError(code, message, path)], status)


def invalid_token(description: str) -> ApiError:
    return ApiError(
        401,
        {"error": "invalid_token", "error_description": description},
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )


def forbidden(code: str, message: str) -> ApiError:
    # pywisetransfer reads ``code`` and ``message`` from a 403 body (contract section 8).
    return ApiError(403, {"code": code, "message": message})


def not_found(message: str, path: str) -> ApiError:
    # Wise's Spring-style system error shape (contract section 8), used here for unknown ids too.
    return spring_error(404, "Not Found", message, path)


def spring_error(status: int, error: str, message: str, path: str) -> ApiError:
    body = {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "status": status,
        "error": error,
        "message": message,
        "path": path,
    }
    return ApiError(status, body)
