"""Run in child processes by test_shared_state.py: each is one more process on the same state store."""

from __future__ import annotations

from ml_connector_pipelines.core.http import HttpClient, RateLimit
from ml_connector_pipelines.core.store import StateStore


def take_sequence(db_url: str, name: str, count: int) -> list[int]:
    store = StateStore(db_url)
    try:
        return [store.next_sequence(name) for _ in range(count)]
    finally:
        store.dispose()


def send_requests(db_url: str, base_url: str, limit: RateLimit, count: int) -> int:
    store = StateStore(db_url)
    try:
        with HttpClient(
            "stamped", base_url, credential_id="one-key", rate_limit=limit, rate_store=store
        ) as http:
            for _ in range(count):
                http.get("/stamp")
            return http.requests_made
    finally:
        store.dispose()
