"""One process that serves every simulator under ``http://HOST:PORT/<system>/``.

- ``GET /_sandbox/health``: liveness.
- ``GET /_sandbox/<system>/state``: everything the simulator holds, as JSON.
- ``GET|PUT /_sandbox/faults``: read or switch the fault profile at run time.
- ``/_sandbox/<system>/...``: each simulator's control routes (simulate a payment, move a transfer).

Faults and latency apply to simulator routes only, never to ``/_sandbox``. Every response carries a
``Date`` header, as any HTTP server's does (RFC 9110 6.6.1): a simulator with its own clock (``now()``,
e.g. Wise's, which tests move forward) dates its answers by that clock, everything else by the real one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Protocol

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import SandboxContext
from .faults import PROFILES, FaultInjector


class Simulator(Protocol):
    name: str

    def routes(self) -> list[BaseRoute]: ...

    def control_routes(self) -> list[BaseRoute]: ...

    def state(self) -> dict[str, Any]: ...

    def credentials(self) -> dict[str, Any]: ...


def default_simulators() -> list[type]:
    from .cin7.simulator import Cin7Simulator
    from .cleo.simulator import CleoSimulator
    from .infor.simulator import InforSimulator
    from .procurify.simulator import ProcurifySimulator
    from .stripe.simulator import StripeSimulator
    from .wise.simulator import WiseSimulator

    return [InforSimulator, WiseSimulator, StripeSimulator, CleoSimulator, Cin7Simulator, ProcurifySimulator]


class FaultMiddleware:
    """Wraps one simulator: latency, injected faults, and commit-then-timeout."""

    def __init__(self, app: ASGIApp, system: str, ctx: SandboxContext, simulator: Any = None) -> None:
        self.app = app
        self.system = system
        self.ctx = ctx
        # A simulator may answer faults in its system's own error shape; otherwise a generic one.
        self.fault_body: Callable[[int, str], bytes] = getattr(simulator, "fault_body", _fault_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.ctx.latency_ms:
            await asyncio.sleep(self.ctx.latency_ms / 1000)
        fault = self.ctx.faults.request_fault(self.system)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "commit_then_timeout":
            # Let the simulator commit the request, then lose its answer like a gateway timeout.
            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            if fault.hang_seconds:
                await asyncio.sleep(fault.hang_seconds)
            body = self.fault_body(fault.status, "Gateway Timeout")
        else:
            body = self.fault_body(fault.status, "injected fault")
        response = Response(
            body, status_code=fault.status, headers=fault.headers, media_type="application/json"
        )
        await response(scope, receive, send)


class DateMiddleware:
    """Sets the ``Date`` response header from `clock` unless the app already set one."""

    def __init__(self, app: ASGIApp, clock: Callable[[], datetime]) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"date" for name, _ in headers):
                    stamp = format_datetime(self.clock().astimezone(UTC), usegmt=True)
                    message = {**message, "headers": [*headers, (b"date", stamp.encode("latin-1"))]}
            await send(message)

        await self.app(scope, receive, dated)


def _real_now() -> datetime:
    return datetime.now(UTC)


def _fault_body(status: int, message: str) -> bytes:
    # An error object (not a bare string): the shape Stripe's SDK insists on, readable by any client.
    return json.dumps({"error": {"type": "api_error", "message": message}}).encode()


def build_app(simulators: list[Any], ctx: SandboxContext) -> Starlette:
    by_name = {sim.name: sim for sim in simulators}

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "systems": sorted(by_name)})

    def state(request: Request) -> JSONResponse:
        sim = by_name.get(request.path_params["system"])
        if sim is None:
            return JSONResponse({"error": "unknown system"}, status_code=404)
        return JSONResponse(sim.state())

    async def faults(request: Request) -> JSONResponse:
        if request.method == "PUT":
            body = await request.json()
            try:
                ctx.faults.configure(
                    body.get("profile", "none"),
                    seed=body.get("seed"),
                    systems=body.get("systems"),
                    **body.get("overrides", {}),
                )
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(ctx.faults.describe())

    def credentials(request: Request) -> JSONResponse:
        return JSONResponse({name: sim.credentials() for name, sim in by_name.items()})

    routes: list[BaseRoute] = [
        Route("/_sandbox/health", health),
        Route("/_sandbox/faults", faults, methods=["GET", "PUT"]),
        Route("/_sandbox/credentials", credentials),
        Route("/_sandbox/{system}/state", state),
    ]
    for sim in simulators:
        routes.append(Mount(f"/_sandbox/{sim.name}", routes=sim.control_routes()))
        inner = Starlette(routes=sim.routes())
        # Outside the faults: an injected 429 or 503 is dated by the system's clock too.
        dated = DateMiddleware(FaultMiddleware(inner, sim.name, ctx, sim), getattr(sim, "now", _real_now))
        routes.append(Mount(f"/{sim.name}", app=dated))
    return Starlette(routes=routes, middleware=[Middleware(DateMiddleware, clock=_real_now)])


class SandboxServer:
    """Runs the sandbox with uvicorn in a background thread (tests, demo) or in the foreground (CLI)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 7,
        faults: str = "none",
        latency_ms: int = 0,
        simulators: list[type] | None = None,
    ) -> None:
        if faults not in PROFILES:
            raise ValueError(f"unknown fault profile {faults!r}; known: {', '.join(PROFILES)}")
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.ctx = SandboxContext(
            base_url=self.url, seed=seed, latency_ms=latency_ms, faults=FaultInjector(faults, seed)
        )
        self.simulators = [cls(self.ctx) for cls in (simulators or default_simulators())]
        self.app = build_app(self.simulators, self.ctx)
        # The app dates its own answers (by each simulator's clock), so uvicorn must not add a second.
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, timeout_keep_alive=30, date_header=False
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def simulator(self, name: str) -> Any:
        return next(sim for sim in self.simulators if sim.name == name)

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="sandbox"
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("sandbox did not start")
            time.sleep(0.02)
        return self

    def serve_forever(self) -> None:
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Helpers for tests and the demo: read what a target holds, switch faults.
    def get_state(self, system: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sandbox/{system}/state", timeout=30).json()

    def set_faults(self, profile: str, seed: int | None = None, systems: list[str] | None = None) -> None:
        body: dict[str, Any] = {"profile": profile, "seed": seed, "systems": systems}
        httpx.put(f"{self.url}/_sandbox/faults", json=body, timeout=30).raise_for_status()
