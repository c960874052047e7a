"""The one HTTP layer every system client uses: rate limiting, retries, re-authentication, errors.

What a caller gets back is either a 2xx/3xx ``httpx.Response`` or one of the typed errors in
``core.errors``; it never has to look at a status code to decide whether to retry. By default:

- 429, 408 and connection errors are retried (the request provably did not execute);
- 5xx and read timeouts are retried for idempotent requests only; for a non-idempotent one they
  raise ``OutcomeUnknown`` so the sync engine can look the record up before sending it again;
- 401 re-authenticates once and retries once, then raises ``AuthenticationFailed``;
- any other 4xx raises ``TargetRejected`` with the target's own error message.

What differs per system is supplied by its client as ``ErrorHooks``: how to read the target's
error message from a response, and how to classify a status (``StatusClass``: throttled, so
retried for any method; transient, retried only when idempotent; or final). A system that answers
503 for "over the limit" classifies 503 as THROTTLED. This module names no vendor.

Rate limits: ``RateLimit`` per system and credential, a ``TokenBucket`` shared in the process, or,
given a ``rate_store`` (the state store), a bucket held in the database that every process and run
with that credential draws from, leased in small blocks (``LeasedBucket``).

``raise_for_status=False`` keeps every retry but hands back the final response, whatever its
status, instead of raising for it: for adapters (a vendor SDK's) that turn statuses into their
own typed errors. Transport failures still raise.

``read_only = True`` (set by the write preview, `ml-connector plan`) refuses every write with
``WriteRefused`` before anything is sent. A write is any method but GET/HEAD/OPTIONS, unless the
caller says otherwise with ``writes=`` (an RPC-style API may run its writes as GETs).

Connections: a client is shared by a push's worker threads, and each thread keeps its own
connection pool (``_PerThreadTransport``); one TLS context serves every client in the process.
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Protocol, Self, TypeVar

import httpx

from .errors import (
    AuthenticationFailed,
    ConnectorError,
    OutcomeUnknown,
    RetryExhausted,
    TargetRejected,
    WriteRefused,
)

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
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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
    """How long one request may keep trying: ``max_total`` seconds in all (attempts, waits for
    the rate limit and backoff together), at most ``max_attempts`` attempts."""

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 20.0
    max_total: float = 120.0
    min_delay: float = 0.05


class StatusClass(Enum):
    THROTTLED = "throttled"  # not executed: retried for every method
    TRANSIENT = "transient"  # may have executed: retried when idempotent, else OutcomeUnknown
    FINAL = "final"  # the target's answer: TargetRejected (AuthenticationFailed for 401)


def capped_rate_limit(default: RateLimit, per_second: Any) -> RateLimit:
    """The system's default budget, lowered to a tenant's `<system>_rate_limit_per_second` when set;
    never raised above the default (a typo must not get the credential throttled or banned)."""
    if per_second is None or per_second == "":
        return default
    wanted = float(per_second)
    if wanted <= 0:
        raise ValueError(f"rate limit must be a positive number of requests per second, not {per_second!r}")
    if wanted >= default.per_second:
        return default
    return RateLimit(per_second=wanted, burst=max(1, min(default.burst, int(wanted))))


def default_status_class(status: int, idempotent: bool) -> StatusClass:
    """429 and 408 mean the request was not processed; 5xx may have been. A 409 is retried only
    when the request is idempotent (the same key still in flight); otherwise it is the target's
    answer (a duplicate) and the record is flagged."""
    if status in (408, 429):
        return StatusClass.THROTTLED
    if status >= 500:
        return StatusClass.TRANSIENT
    if status == 409 and idempotent:
        return StatusClass.THROTTLED
    return StatusClass.FINAL


def generic_error_message(response: httpx.Response) -> str:
    """The target's error text from common JSON error shapes, else the start of the raw body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        errors = body.get("errors")
        if isinstance(errors, list):  # one entry per failing field
            messages = [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
            if messages:
                return "; ".join(messages)
        # error_description: OAuth 2.0; detail: RFC 7807 problem details; the rest: common spellings.
        for key in ("message", "error_description", "errorMessage", "Message", "detail", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()
    return response.text[:300] or response.reason_phrase


@dataclass(frozen=True)
class ErrorHooks:
    """What a system client tells the HTTP layer about its target's errors."""

    message: Callable[[httpx.Response], str] = generic_error_message
    classify: Callable[[int, bool], StatusClass] = default_status_class


class RateStore(Protocol):
    """A shared token bucket per (system, credential) in a database (the state store)."""

    def lease_tokens(self, system: str, credential: str, limit: RateLimit, count: int) -> float:
        """Take `count` tokens; returns the seconds to wait before using them."""
        ...


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


class LeasedBucket:
    """A token bucket held in the state store, shared by every process using one credential.

    Tokens are leased from the database in blocks of ``block`` (a tenth of a second's worth, at
    least 1, at most the burst), so the database is hit once per block rather than per request.
    ``reserve`` has the TokenBucket interface: the seconds to wait before sending.
    """

    def __init__(self, store: RateStore, system: str, credential: str, limit: RateLimit) -> None:
        self.store = store
        self.system = system
        self.credential = credential
        self.limit = limit
        self.block = max(1, min(limit.burst, int(limit.per_second / 10)))
        self._lock = threading.Lock()
        self._tokens = 0
        self._usable_at = 0.0  # monotonic time from which the leased tokens may be spent

    def reserve(self, now: float) -> float:
        with self._lock:
            if self._tokens == 0:
                wait = self.store.lease_tokens(self.system, self.credential, self.limit, self.block)
                self._tokens = self.block
                self._usable_at = now + wait
            self._tokens -= 1
            return max(0.0, self._usable_at - now)


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


class _NoCookies(httpx.Cookies):
    """Cookies that keep nothing: every system authenticates each request with its own credential,
    so a cookie a target sets (a load balancer's, a session's) is never sent back, and a client
    carries no state between requests. Overridden at httpx's level, not the jar's: httpx wraps every
    response for the jar before asking it, which was a third of its own per-request cost."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The one TLS context every client verifies with: certifi's CAs, or SSL_CERT_FILE/SSL_CERT_DIR
    as found when the first client is made. Building one loads every CA (about 50 ms), and a run
    opens a client per system and tenant; an SSLContext is safe to share between connections."""
    return httpx.create_ssl_context()


class _PerThreadTransport(httpx.BaseTransport):
    """httpx's transport, one per thread: each worker keeps its own connection pool. One pool
    shared by a push's 16-32 workers is a lock every request and every response close waits on,
    and each request scans every pooled connection (a readability syscall per idle one), so at
    32 workers the shared pool cost a fifth of the client's CPU. A thread's pool is dropped
    (its connections closed) once the thread has ended, when the next new thread asks for one."""

    def __init__(self, verify: ssl.SSLContext) -> None:
        self._verify = verify
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pools: dict[threading.Thread, httpx.HTTPTransport] = {}

    def _pool(self) -> httpx.HTTPTransport:
        pool: httpx.HTTPTransport | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = httpx.HTTPTransport(verify=self._verify)
            with self._lock:
                ended = [thread for thread in self._pools if not thread.is_alive()]
                for thread in ended:
                    self._pools.pop(thread).close()
                self._pools[threading.current_thread()] = pool
            self._local.pool = pool
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._pool().handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


class HttpClient:
    """A thread-safe client for one system and one credential. Use one per tenant and system.

    Time bound: one ``request`` returns or raises within ``retry.max_total`` seconds plus at most
    one connect timeout (waits for the rate limit and backoff included). No attempt starts once
    the budget is spent, and each attempt's read timeout is cut to what is left of it, so a
    target that hangs (a gateway holding a write for 60 s) costs at most the budget, not
    ``timeout`` per attempt. A push of N records by W workers making at most K requests per record
    therefore ends within about ceil(N / W) * K * max_total seconds, however the target behaves.
    """

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
        hooks: ErrorHooks = ErrorHooks(),
        rate_store: RateStore | None = None,
    ) -> None:
        self.system = system
        self.auth = auth
        self.retry = retry
        self.hooks = hooks
        self.timeout = timeout
        self.bucket: TokenBucket | LeasedBucket | None = None
        if rate_limit is not None:
            self.bucket = (
                LeasedBucket(rate_store, system, credential_id, rate_limit)
                if rate_store is not None
                else shared_bucket(system, credential_id, rate_limit)
            )
        self.max_concurrency = max_concurrency
        self.read_only = False  # the write preview: refuse writes (module docstring)
        self.requests_made = 0
        # Swappable so tests can run without waiting and assert on the delays chosen.
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic
        self._random = random.Random()
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(max_concurrency)
        # The latest response's Date header and the monotonic time it arrived: the target's clock.
        self._server_date: tuple[str, float] | None = None
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport or _PerThreadTransport(_tls_context()),
        )
        # Assigned, not passed: httpx copies a `cookies=` argument into a jar of its own.
        self._client._cookies = _NoCookies()
        # httpx parses a relative path against the base twice per request (a tenth of its cost);
        # the joined URL of a path is the same every time, so it is parsed once.
        self._url = functools.lru_cache(maxsize=1024)(self._join)

    def _join(self, path: str) -> httpx.URL:
        """`path` against the base URL, as httpx joins them (an absolute URL stays as it is)."""
        url = httpx.URL(path)
        if url.is_absolute_url:
            return url
        base = self._client.base_url
        return base.copy_with(raw_path=base.raw_path + url.raw_path.lstrip(b"/"))

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
        writes: bool | None = None,
    ) -> httpx.Response:
        method = method.upper()
        if self.read_only and (method not in READ_METHODS if writes is None else writes):
            raise WriteRefused(self.system, method, httpx.URL(path).path)
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
                self._url(path),
                params=params,
                json=json,
                data=data,
                content=content,
                headers={**(self.auth.headers() if self.auth else {}), **(headers or {})},
            )
            shown_path = request.url.path  # never the query string: it may carry keys
            response, failure = self._send(request, attempt, started)
            retry_after: float | None = None
            if response is not None:
                status: int | None = response.status_code
                if status < 400:
                    return response
                if status == 401 and self.auth is not None and not reauthenticated:
                    self.auth.reauthenticate()
                    reauthenticated = True
                    continue
                verdict = StatusClass.FINAL if status == 401 else self.hooks.classify(status, idempotent)
                if verdict is StatusClass.FINAL or (verdict is StatusClass.TRANSIENT and not idempotent):
                    if not raise_for_status:
                        return response
                    raise self._status_error(method, shown_path, response, verdict)
                message = self.hooks.message(response)
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

    def _status_error(
        self, method: str, path: str, response: httpx.Response, verdict: StatusClass
    ) -> ConnectorError:
        """The typed error for a final (not retried) error status."""
        status, message = response.status_code, self.hooks.message(response)
        if status == 401:
            return AuthenticationFailed(self.system, method, path, status, message)
        if verdict is StatusClass.TRANSIENT:  # not idempotent: it may have executed
            return OutcomeUnknown(self.system, method, path, status, message)
        return TargetRejected(self.system, method, path, status, message)

    def _send(
        self, request: httpx.Request, attempt: int, started: float
    ) -> tuple[httpx.Response | None, Exception | None]:
        if self.bucket is not None:
            wait = self.bucket.reserve(self.clock())
            if wait > 0:
                self.sleep(wait)
        # Never wait for an answer past the request's retry budget (see the class docstring).
        left = self.retry.max_total - (self.clock() - started)
        read_timeout = max(self.retry.min_delay, min(self.timeout, left))
        request.extensions["timeout"] = httpx.Timeout(
            self.timeout, read=read_timeout, write=read_timeout
        ).as_dict()
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
        date = response.headers.get("date")
        if date:
            self._server_date = (date, time.monotonic())
        return response, None

    def server_now(self) -> datetime | None:
        """The target's clock, not ours: the ``Date`` header of the latest response (RFC 9110: whole
        seconds, so up to a second plus the answer's transit behind) advanced by the monotonic time
        since it arrived. None before any response carried a usable one."""
        seen = self._server_date
        if seen is None:
            return None
        try:
            when = parsedate_to_datetime(seen[0])
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            when = when.replace(tzinfo=UTC)
        return when + timedelta(seconds=time.monotonic() - seen[1])

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
