"""The one HTTP layer every system client uses: rate limiting, retries, re-authentication, errors.

What a caller gets back is either a 2xx/3xx ``httpx.Response`` or one of the typed errors in
``core.errors``; it never has to look at a status code to decide whether to retry:

- 429, 408 and connection errors are retried (the request provably did not execute);
- 5xx and read timeouts are retried for idempotent requests only; for a non-idempotent one they
  raise ``OutcomeUnknown`` so the sync engine can look the record up before sending it again;
- 401 re-authenticates once and retries once, then raises ``AuthenticationFailed``;
- any other 4xx raises ``TargetRejected`` with the target's own error message.

``raise_for_status=False`` keeps every retry but hands back the final response, whatever its
status, instead of raising for it: for adapters (the Stripe SDK's) that turn statuses into their
own typed errors. Transport failures still raise.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, Self, TypeVar

import httpx

from .errors import AuthenticationFailed, ConnectorError, OutcomeUnknown, RetryExhausted, TargetRejected

logger = logging.getLogger("ml_connector.http")

# httpx logs every full URL (query string included) at INFO and httpcore logs response headers at
# DEBUG; either can carry secrets. Our own log line below replaces them. An explicit level set by
# the application still wins.
for _noisy in ("httpx", "httpcore"):
    if logging.getLogger(_noisy).level == logging.NOTSET:
        logging.getLogger(_noisy).setLevel(logging.WARNING)

T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

# Transport errors raised before a single byte of the request reached the server.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors after the request may have been (partly) sent: the server may have acted on it.
_MAYBE_SENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int = 1


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 20.0
    max_total: float = 120.0
    min_delay: float = 0.05


class AuthHook(Protocol):
    def headers(self) -> dict[str, str]:
        """Auth headers for the next attempt; refreshes the token first when it is near expiry."""
        ...

    def reauthenticate(self) -> None:
        """Get a new token after a 401 (the old one was revoked early)."""
        ...


class TokenBucket:
    """A token bucket that hands out reservations, so concurrent callers queue up fairly.

    ``reserve(now)`` takes one token and returns how long the caller must wait before using it.
    Tokens may go negative: each further caller then waits for its own refill slot.
    """

    def __init__(self, limit: RateLimit) -> None:
        self._lock = threading.Lock()
        self.limit = limit
        self._tokens = float(limit.burst)
        self._updated: float | None = None

    def reconfigure(self, limit: RateLimit) -> None:
        with self._lock:
            self.limit = limit
            self._tokens = min(self._tokens, float(limit.burst))

    def reserve(self, now: float) -> float:
        with self._lock:
            if self._updated is not None:
                elapsed = max(0.0, now - self._updated)
                self._tokens = min(float(self.limit.burst), self._tokens + elapsed * self.limit.per_second)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.limit.per_second


_buckets: dict[tuple[str, str], TokenBucket] = {}
_buckets_lock = threading.Lock()


def shared_bucket(system: str, credential_id: str, limit: RateLimit) -> TokenBucket:
    """The process-wide bucket for one credential on one system; the latest configured limit wins."""
    with _buckets_lock:
        bucket = _buckets.get((system, credential_id))
        if bucket is None:
            bucket = _buckets[(system, credential_id)] = TokenBucket(limit)
        elif bucket.limit != limit:
            bucket.reconfigure(limit)
        return bucket


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def target_message(response: httpx.Response) -> str:
    """The target's own error text, from the JSON error shapes our systems use, else the raw body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):  # Stripe
            return str(error["message"])
        errors = body.get("errors")
        if isinstance(errors, list):  # Wise validation: one entry per failing field
            messages = [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
            if messages:
                return "; ".join(messages)
        # message: generic / Wise 500 / Cleo; error_description: OAuth; errorMessage: M3;
        # Message: SyteLine Mongoose and M3 NOK; detail: Procurify (DRF); error: bare OAuth code.
        for key in ("message", "error_description", "errorMessage", "Message", "detail", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()
    return response.text[:300] or response.reason_phrase


class HttpClient:
    """A thread-safe client for one system and one credential. Use one per tenant and system."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        auth: AuthHook | None = None,
        credential_id: str = "default",
        rate_limit: RateLimit | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
        max_concurrency: int = 4,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.system = system
        self.auth = auth
        self.retry = retry
        self.bucket = shared_bucket(system, credential_id, rate_limit) if rate_limit else None
        self.max_concurrency = max_concurrency
        self.requests_made = 0
        # Swappable so tests can run without waiting and assert on the delays chosen.
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic
        self._random = random.Random()
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(max_concurrency)
        self._client = httpx.Client(
            base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        raise_for_status: bool = True,
    ) -> httpx.Response:
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        policy = self.retry
        started = self.clock()
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            request = self._client.build_request(
                method,
                path,
                params=params,
                json=json,
                data=data,
                content=content,
                headers={**(self.auth.headers() if self.auth else {}), **(headers or {})},
            )
            shown_path = request.url.path  # never the query string: it may carry keys
            response, failure = self._send(request, attempt)
            retry_after: float | None = None
            if response is not None:
                status: int | None = response.status_code
                if status < 400:
                    return response
                if status == 401 and self.auth is not None and not reauthenticated:
                    self.auth.reauthenticate()
                    reauthenticated = True
                    continue
                final = status == 401 or not self._retryable(status, idempotent)
                if final or (status >= 500 and not idempotent):
                    if not raise_for_status:
                        return response
                    raise _status_error(self.system, method, shown_path, response, idempotent)
                message = target_message(response)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            else:
                status = None
                message = type(failure).__name__
                if not idempotent and not isinstance(failure, _NOT_SENT_ERRORS):
                    raise OutcomeUnknown(
                        self.system, method, shown_path, None, f"{message}: sent, but no answer came back"
                    ) from failure
            delay = self.backoff(attempt, retry_after)
            spent = self.clock() - started
            if attempt >= policy.max_attempts or spent + delay > policy.max_total:
                if response is not None and not raise_for_status:
                    return response
                raise RetryExhausted(
                    self.system,
                    method,
                    shown_path,
                    status,
                    f"gave up after {attempt} attempts in {spent:.1f}s; last error: {message}",
                ) from failure
            self.sleep(delay)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Delay before the next attempt: Retry-After if given, else exponential with full jitter.

        Retry-After is honoured in full (a wait that does not fit in ``max_total`` ends the retries
        rather than calling back early), and never below ``min_delay``, so ``Retry-After: 0`` cannot
        turn into a hot loop.
        """
        policy = self.retry
        if retry_after is not None:
            delay = retry_after
        else:
            ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
            delay = self._random.uniform(0, ceiling)
        return max(policy.min_delay, delay)

    @staticmethod
    def _retryable(status: int, idempotent: bool) -> bool:
        # 429 and 408 mean the request was not processed. 409 is Stripe's "same idempotency key
        # still in flight": retry it only when the request is idempotent; for any other request
        # a conflict is the target's answer (e.g. Wise's duplicate) and the record is flagged.
        if status in (408, 429) or status >= 500:
            return True
        return status == 409 and idempotent

    def _send(self, request: httpx.Request, attempt: int) -> tuple[httpx.Response | None, Exception | None]:
        if self.bucket is not None:
            wait = self.bucket.reserve(self.clock())
            if wait > 0:
                self.sleep(wait)
        began = time.perf_counter()
        with self._lock:
            self.requests_made += 1
        try:
            with self._in_flight:
                response = self._client.send(request)
        except (*_NOT_SENT_ERRORS, *_MAYBE_SENT_ERRORS) as exc:
            self._log(request, type(exc).__name__, began, attempt)
            return None, exc
        self._log(request, response.status_code, began, attempt)
        return response, None

    def _log(self, request: httpx.Request, outcome: int | str, began: float, attempt: int) -> None:
        elapsed_ms = round((time.perf_counter() - began) * 1000)
        path = request.url.path  # never the query string: it may carry keys
        logger.info(
            "%s %s %s -> %s in %d ms (attempt %d)",
            self.system,
            request.method,
            path,
            outcome,
            elapsed_ms,
            attempt,
            extra={
                "system": self.system,
                "method": request.method,
                "path": path,
                "status": outcome,
                "elapsed_ms": elapsed_ms,
                "attempt": attempt,
            },
        )

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status_error(
    system: str, method: str, path: str, response: httpx.Response, idempotent: bool
) -> ConnectorError:
    """The typed error for a final (not retried) error status."""
    status, message = response.status_code, target_message(response)
    if status == 401:
        return AuthenticationFailed(system, method, path, status, message)
    if status >= 500 and not idempotent:
        return OutcomeUnknown(system, method, path, status, message)
    return TargetRejected(system, method, path, status, message)


def paginate(
    fetch_page: Callable[[C | None], tuple[Iterable[T], C | None]], start: C | None = None
) -> Iterator[T]:
    """Yield every item of every page; ``fetch_page(cursor)`` returns (items, next cursor or None)."""
    cursor = start
    while True:
        items, next_cursor = fetch_page(cursor)
        yield from items
        if next_cursor is None:
            return
        if next_cursor == cursor:  # a target bug that would otherwise loop forever
            raise ConnectorError(f"pagination cursor did not advance past {cursor!r}")
        cursor = next_cursor


def run_bounded(fn: Callable[[T], R], items: Iterable[T], max_workers: int) -> list[R]:
    """``[fn(item) for item in items]`` with at most ``max_workers`` running at once, results in order.

    The first exception cancels the items not yet started and is raised.
    """
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="push") as pool:
        futures: list[Future[R]] = [pool.submit(fn, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
