"""The webhook receiver: verify, store the raw body in the inbox, answer 200 fast.

It does no processing: sensors turn inbox rows into runs later (DESIGN.md §3). Because it holds no
state of its own, any number of replicas can run behind a load balancer, all writing one inbox.

Each source (``wise``, ``stripe``, ...) brings a `Verifier`, injected by the caller, so this module
never imports a system package. A verifier checks the signature with the tenant's key and returns a
stable event id; the inbox stores each (source, tenant, event id) once, so a redelivery is a no-op.

Bodies are bounded before anything reads them: size (413) and JSON nesting depth (400), so a body
nested thousands of levels deep, however well signed, is a clean 400 and never a RecursionError.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .bounded_json import JsonTooComplex, check_json_bounds

if TYPE_CHECKING:  # only the type: the caller hands in the store-backed inbox
    from .inbox import Inbox

logger = logging.getLogger("ml_connector.webhooks")

# Stripe's deepest events (an invoice with its lines, prices and tax) nest about 8 levels; Wise's 4.
MAX_JSON_DEPTH = 64


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
) -> Starlette:
    """`POST /webhooks/{source}/{tenant}` stores verified events; `GET /webhooks/health` for probes."""

    async def receive(request: Request) -> JSONResponse:
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
            # Verifiers may look keys up in the database, so they run off the event loop.
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
        stored = await run_in_threadpool(inbox.put, source, tenant, event.event_id, payload)
        logger.info("webhook %s: source=%s tenant=%s", "stored" if stored else "duplicate", source, tenant)
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

    return Starlette(
        routes=[
            Route("/webhooks/health", health, methods=["GET"]),
            Route("/webhooks/{source}/{tenant}", receive, methods=["POST"]),
        ]
    )


def serve_webhooks(app: Starlette, host: str = "127.0.0.1", port: int = 8800) -> None:
    """Run the receiver in the foreground (the CLI's `webhooks serve`). Blocks until interrupted."""
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


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
