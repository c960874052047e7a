"""The webhook receiver: verify, store the raw body in the inbox, answer 200 fast.

It does no processing: sensors turn inbox rows into runs later (DESIGN.md §3). Because it holds no
state of its own, any number of replicas can run behind a load balancer, all writing one inbox.

Each source (``wise``, ``stripe``, ...) brings a `Verifier`, injected by the caller, so this module
never imports a system package. A verifier checks the signature with the tenant's key and returns a
stable event id; the inbox stores each (source, tenant, event id) once, so a redelivery is a no-op.

Throughput (issue 13): the inbox writes of concurrent requests share one transaction (`GroupCommit`:
a request is answered 200 only once the commit holding its event is done, so "stored" still means
durable; while requests are being verified the writer waits up to `GROUP_COMMIT_LINGER_SECONDS`
for them, so under load a commit carries many events); verifiers' credential lookups are cached per
tenant for `CREDENTIALS_TTL_SECONDS` (`cached_per_tenant`), so a rotated or removed secret takes
effect within that time, and while cached a verifier runs on the event loop (no thread hop; a
lookup that must read the vault moves it to a worker thread); `serve_webhooks` can run several
worker processes on one port. `GET /healthz` answers without touching the
database, for load balancers.

Bodies are bounded before anything reads them: size (413) and JSON nesting depth (400), so a body
nested thousands of levels deep, however well signed, is a clean 400 and never a RecursionError.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Connection
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from .bounded_json import JsonTooComplex, check_json_bounds

if TYPE_CHECKING:  # only the type: the caller hands in the store-backed inbox
    from .inbox import Inbox

logger = logging.getLogger("ml_connector.webhooks")

# Stripe's deepest events (an invoice with its lines, prices and tax) nest about 8 levels; Wise's 4.
MAX_JSON_DEPTH = 64
# How long a tenant's webhook credentials (or their absence) are reused before the vault is read again.
CREDENTIALS_TTL_SECONDS = 30.0
GROUP_COMMIT_MAX_EVENTS = 500  # events at most in one inbox transaction
# How long the inbox writer holds a transaction open for requests already being verified: under load
# a commit then carries many events instead of one or two (the commit, not the insert, is the cost).
GROUP_COMMIT_LINGER_SECONDS = 0.002
WRITER_IDLE_SECONDS = 5.0  # the inbox writer gives its connection back after this long without events

T = TypeVar("T")


class InvalidWebhook(Exception):
    """The request is not a genuine, well-formed event: missing or bad signature, bad JSON."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UnknownTenant(InvalidWebhook):
    """The tenant in the URL has no webhook key for this source."""


@dataclass(frozen=True)
class VerifiedEvent:
    event_id: str
    # Test notifications (Wise sends one when a subscription is created) need a 200 but no processing.
    is_test: bool = False


class Verifier(Protocol):
    def __call__(self, tenant: str, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        """Return the event's id, or raise InvalidWebhook / UnknownTenant. Header names are lower case."""
        ...


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, max_body_bytes: int) -> bytes:
    """Read at most max_body_bytes, without trusting Content-Length alone (chunked bodies have none)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class LookupWouldBlock(BaseException):
    """A `cached_per_tenant` lookup asked on the event loop that would have to read the vault: the
    receiver then runs the verifier again in a worker thread. A BaseException, so no verifier's
    `except Exception` can turn it into a rejected event."""


# Set by the receiver around a verifier call on its event loop: lookups answer from the cache only.
_CACHE_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("webhook_cache_only", default=False)


@contextmanager
def _cache_only() -> Iterator[None]:
    token = _CACHE_ONLY.set(True)
    try:
        yield
    finally:
        _CACHE_ONLY.reset(token)


def cached_per_tenant(
    lookup: Callable[[str], T], ttl_seconds: float = CREDENTIALS_TTL_SECONDS
) -> Callable[[str], T]:
    """`lookup(tenant)` remembered for `ttl_seconds`, errors included (an unknown tenant's flood
    does not hit the vault either). A rotated secret is used at the latest `ttl_seconds` later.

    Called by the receiver on its event loop (`_cache_only`), it answers only from the cache and raises
    `LookupWouldBlock` instead of reading the vault there, so the receiver verifies on the loop while
    the credentials are cached. Any other caller (a thread, a CLI, a test) reads the vault as needed."""
    lock = threading.Lock()
    cache: dict[str, tuple[float, T | None, Exception | None]] = {}

    def cached(tenant: str) -> T:
        now = time.monotonic()
        with lock:
            hit = cache.get(tenant)
        if hit is None or now - hit[0] >= ttl_seconds:
            if _CACHE_ONLY.get():
                raise LookupWouldBlock
            try:
                hit = (now, lookup(tenant), None)
            except Exception as exc:
                hit = (now, None, exc)
            with lock:
                cache[tenant] = hit
        if hit[2] is not None:
            raise hit[2]
        return hit[1]  # type: ignore[return-value]

    return cached


class Arrival:
    """A request whose event may still come to the writer (see `GroupCommit.arrival`)."""

    def __init__(self, writer: GroupCommit) -> None:
        self._writer: GroupCommit | None = writer
        writer.arriving += 1

    def leave(self) -> None:
        """Its event was queued, or it will have none (rejected, a test notification)."""
        if self._writer is not None:
            self._writer.arriving -= 1
            self._writer = None


class GroupCommit:
    """One writer thread stores the events of all requests waiting at that moment in one inbox
    transaction: under load many events share a commit, when idle each gets its own at once.

    While requests are still on their way (counted by `arrival()`: body read, signature being
    checked), the writer waits up to `linger` seconds for them before it commits, so a busy
    receiver commits a few large batches instead of many of one; an idle one commits at once."""

    def __init__(
        self,
        inbox: Inbox,
        max_events: int = GROUP_COMMIT_MAX_EVENTS,
        linger: float = GROUP_COMMIT_LINGER_SECONDS,
    ) -> None:
        self.inbox = inbox
        self.max_events = max_events
        self.linger = linger
        # Requests that may still put an event. Changed on the event loop only; the writer just reads.
        self.arriving = 0
        self._queue: queue.SimpleQueue[tuple[tuple[str, str, str, str], Future[bool]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: Connection | None = None  # the writer thread's, used by it alone

    def arrival(self) -> Arrival:
        """Count a request as on its way until its `leave()` (or its `put`)."""
        return Arrival(self)

    async def put(
        self, source: str, tenant: str, event_id: str, payload: str, arrival: Arrival | None = None
    ) -> bool:
        """True when stored, False for a redelivery; returns once the event is committed."""
        self._start()
        future: Future[bool] = Future()
        if arrival is not None:
            arrival.leave()
        self._queue.put(((source, tenant, event_id, payload), future))
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="inbox-writer")
                self._thread.start()

    def _run(self) -> None:
        try:
            self._write_batches()
        finally:
            self._let_go()

    def _let_go(self, broken: bool = False) -> None:
        """Give the writer's connection back (invalidated after a failure: the next is fresh)."""
        if self._conn is not None:
            if broken:
                self._conn.invalidate()
            self._conn.close()
            self._conn = None

    def _write_batches(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=WRITER_IDLE_SECONDS)
            except queue.Empty:
                self._let_go()  # idle: hold no connection a server-side timeout could break
                first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.linger
            while len(batch) < self.max_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if self.arriving <= 0 or left <= 0:
                        break
                    try:  # requests being verified: their events join this commit
                        item = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                if self._conn is None:  # kept while events keep coming: no pool checkout per commit
                    self._conn = self.inbox.store.engine.connect()
                stored = self.inbox.put_many([event for event, _ in batch], conn=self._conn)
            except Exception as exc:  # the requests answer 500; the sender redelivers
                self._let_go(broken=True)
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for (_, future), result in zip(batch, stored, strict=True):
                    future.set_result(result)


def _reject(status: int, source: str, tenant: str, reason: str) -> JSONResponse:
    # Logged without the body or headers: they may carry signatures or personal data.
    logger.warning(
        "webhook rejected: source=%s tenant=%s status=%s reason=%s", source, tenant, status, reason
    )
    return JSONResponse({"error": reason}, status_code=status)


def create_webhook_app(
    inbox: Inbox,
    verifiers: dict[str, Verifier],
    max_body_bytes: int = 1_000_000,
    max_json_depth: int = MAX_JSON_DEPTH,
    freeze_heap: bool = False,
) -> Starlette:
    """`POST /webhooks/{source}/{tenant}` stores verified events; `GET /webhooks/health` for probes,
    `GET /healthz` (no database) for load balancers.

    `freeze_heap` is for a process that only serves this app (`webhooks serve`): at startup it moves
    everything imported so far out of the garbage collector's reach (`gc.freeze`), since a full
    collection over that heap (Dagster, SQLAlchemy, pandas) stalls every request for ~200 ms."""
    writer = GroupCommit(inbox)

    async def receive(request: Request) -> JSONResponse:
        arrival = writer.arrival()
        try:
            return await verify_and_store(request, arrival)
        finally:
            arrival.leave()

    async def verify_and_store(request: Request, arrival: Arrival) -> JSONResponse:
        source = request.path_params["source"]
        tenant = request.path_params["tenant"]
        verifier = verifiers.get(source)
        if verifier is None:
            return _reject(404, source, tenant, "unknown source")
        try:
            body = await _read_body(request, max_body_bytes)
        except _BodyTooLarge:
            return _reject(413, source, tenant, f"body larger than {max_body_bytes} bytes")
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            # A flat scan, no parsing: every verifier and consumer may then json.loads the body.
            check_json_bounds(body, max_bytes=max_body_bytes, max_depth=max_json_depth)
        except JsonTooComplex as exc:
            return _reject(400, source, tenant, f"body is {exc}")
        try:
            try:
                # Cached credentials: a few microseconds of CPU, cheaper than a thread hop.
                with _cache_only():
                    event = verifier(tenant, headers, body)
            except LookupWouldBlock:
                # The vault must be read (first event of a tenant, or the cache expired): off the loop.
                event = await run_in_threadpool(verifier, tenant, headers, body)
            payload = body.decode("utf-8")
        except RecursionError:  # a verifier that parses deeper than the bound above allows
            return _reject(400, source, tenant, "body is nested too deeply")
        except UnknownTenant as exc:
            return _reject(404, source, tenant, exc.reason)
        except InvalidWebhook as exc:
            return _reject(400, source, tenant, exc.reason)
        except UnicodeDecodeError:
            return _reject(400, source, tenant, "body is not UTF-8")
        if event.is_test:
            return JSONResponse({"status": "test notification"})
        stored = await writer.put(source, tenant, event.event_id, payload, arrival)
        logger.debug("webhook %s: source=%s tenant=%s", "stored" if stored else "duplicate", source, tenant)
        return JSONResponse({"status": "stored" if stored else "duplicate", "event_id": event.event_id})

    def database_reachable() -> str | None:
        try:
            with inbox.store.session() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any failure means events could not be stored
            return f"state store unreachable: {type(exc).__name__}"
        return None

    async def health(request: Request) -> JSONResponse:
        # 503 when events could not be stored, so a probe takes the receiver out of rotation.
        body = {"status": "ok", "sources": sorted(verifiers), "database": "ok"}
        problem = await run_in_threadpool(database_reachable)
        if problem:
            return JSONResponse({**body, "status": "unavailable", "database": problem}, status_code=503)
        return JSONResponse(body)

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if freeze_heap:
            gc.freeze()
        yield
        writer.stop()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/webhooks/health", health, methods=["GET"]),
            Route("/webhooks/{source}/{tenant}", receive, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def serve_webhooks(app: Starlette | str, host: str = "127.0.0.1", port: int = 8800, workers: int = 1) -> None:
    """Run the receiver in the foreground (the CLI's `webhooks serve`). Blocks until interrupted.

    `workers` > 1 runs that many processes on the port; they need `app` as the import string of an
    app factory (`WEBHOOK_APP_FACTORY`), since each process builds its own app.
    """
    options = {"host": host, "port": port, "log_level": "info", "access_log": False}
    if workers > 1:
        if not isinstance(app, str):
            raise ValueError("several workers need the app as an import string of a factory")
        uvicorn.run(app, factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, factory=isinstance(app, str), **options)


class WebhookServer:
    """The receiver on a background thread (demo and tests); port 0 picks a free port."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="webhooks"
        )

    def start(self) -> WebhookServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("webhook receiver did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
