"""Typed errors shared by every client and integration.

Messages carry the target system's own error text so a flagged record explains itself, but never
headers, tokens or request bodies.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class for every error this package raises on purpose."""


class ValidationFailed(ConnectorError):
    """A source record cannot be sent: it is flagged before any call to the target."""

    def __init__(self, record_id: str, field: str, reason: str) -> None:
        self.record_id = record_id
        self.field = field
        self.reason = reason
        super().__init__(f"record {record_id}: field {field}: {reason}")


class HttpError(ConnectorError):
    """A call to an external system did not succeed."""

    def __init__(
        self,
        system: str,
        method: str,
        path: str,
        status: int | None,
        target_message: str,
    ) -> None:
        self.system = system
        self.method = method
        self.path = path
        self.status = status
        self.target_message = target_message
        shown = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{system} {method} {path}: {shown}: {target_message}")


class TargetRejected(HttpError):
    """A non-retryable 4xx: the target refused this record. Callers flag it, never ignore it."""


class AuthenticationFailed(HttpError):
    """Still 401 after one re-authentication."""


class RetryExhausted(HttpError):
    """429, 5xx or connection errors beyond the retry budget (attempts or total time)."""


class OutcomeUnknown(HttpError):
    """A non-idempotent call was sent but no answer came back: it may have committed.

    The sync engine looks the record up in the target before trying again.
    """


class WriteRefused(ConnectorError):
    """A write was attempted through an HttpClient in read-only mode (a write preview, `plan`)."""

    def __init__(self, system: str, method: str, path: str) -> None:
        self.system = system
        self.method = method
        self.path = path
        super().__init__(f"{system} {method} {path}: a write, refused in read-only (preview) mode")
