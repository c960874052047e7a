"""A Cin7 company on the shared sandbox for one test: its credentials, a client that records (and so
can validate) every exchange, and helpers to seed products and read what Cin7 holds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ml_connector_pipelines.sandbox.cin7.simulator import sandbox_credentials
from ml_connector_pipelines.sandbox.host import SandboxServer
from ml_connector_pipelines.systems.cin7.client import Cin7Client

from .openapi_check import RecordingTransport


@dataclass
class Cin7Company:
    sandbox: SandboxServer
    account_id: str
    application_key: str
    transport: RecordingTransport

    @classmethod
    def new(cls, sandbox: SandboxServer, name: str | None = None) -> Cin7Company:
        credentials = sandbox_credentials(name or f"cin7-{uuid.uuid4().hex[:10]}")
        return cls(sandbox, credentials["account_id"], credentials["application_key"], RecordingTransport())

    @property
    def base_url(self) -> str:
        return f"{self.sandbox.url}/cin7/ExternalApi/v2"

    def client(self, per_minute: float = 6000, **kwargs: Any) -> Cin7Client:
        # The shared sandbox runs at a high limit for tests; rate tests set their own.
        return Cin7Client(
            self.base_url,
            self.account_id,
            self.application_key,
            per_minute=per_minute,
            transport=self.transport,
            **kwargs,
        )

    def add_products(self, *skus: str) -> list[dict[str, Any]]:
        body = {"products": [{"SKU": sku, "Name": f"Product {sku}"} for sku in skus]}
        url = f"{self.sandbox.url}/_sandbox/cin7/accounts/{self.account_id}/products"
        return httpx.post(url, json=body, timeout=30).json()["products"]

    def state(self) -> dict[str, Any]:
        return self.sandbox.get_state("cin7")["accounts"].get(self.account_id, {})

    def headers(self) -> dict[str, str]:
        return {"api-auth-accountid": self.account_id, "api-auth-applicationkey": self.application_key}


def set_rate_limit(sandbox: SandboxServer, **body: Any) -> dict[str, Any]:
    response = httpx.put(f"{sandbox.url}/_sandbox/cin7/rate_limit", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


TEST_PER_MINUTE = 100_000


def fast_cin7(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The shared sandbox at a test-sized Cin7 limit; Cin7's own 60/min is back afterwards."""
    set_rate_limit(sandbox, per_minute=TEST_PER_MINUTE, status=503, window_seconds=60)
    yield sandbox
    set_rate_limit(sandbox, per_minute=60, status=503, window_seconds=60)
