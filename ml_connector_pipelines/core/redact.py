"""Keeps decrypted secrets out of logs.

The vault registers every secret string it decrypts; `install_redaction()` then replaces them
with "***" in every log record, from any logger, before any handler sees it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
# Shorter values (flags, product codes like "m3") are too common to mask without wrecking logs.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    global _pattern
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret containing another one is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None else text


class RedactingFilter(logging.Filter):
    """Rewrites a record in place: message (with its args), exception text and stack text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is only ever shown masked.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_filter = RedactingFilter()
_installed = False


def install_redaction() -> None:
    """Mask secrets in every log record from now on. Calling it again changes nothing.

    The filter runs in the log record factory rather than as a filter on the root logger: a
    logger-level filter only sees records logged on that very logger, not those propagated up
    from `ml_connector.http` and friends, and handlers added later (Dagster's) would miss it.
    """
    global _installed
    with _lock:
        if _installed:
            return
        make_record = logging.getLogRecordFactory()

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            _filter.filter(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _installed = True
