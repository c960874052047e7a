"""Checks Cin7 traffic against Cin7's OpenAPI document with openapi-core.

``RecordingTransport`` sits under the client's httpx client and keeps every exchange;
``assert_valid`` then validates each request (path, query parameters, body) and each 200 answer
against ``sandbox/cin7/spec.openapi_document()`` (the vendor file with its conversion artefacts
fixed and every object made strict: an unknown field fails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from urllib.parse import parse_qsl

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from ml_connector_pipelines.sandbox.cin7.spec import SERVER_PATH, openapi_document

HOST = "http://cin7.test"


@cache
def _document() -> dict:
    return openapi_document()


@cache
def cin7_openapi() -> OpenAPI:
    document = _document()
    document["servers"] = [{"url": HOST + SERVER_PATH}]
    return OpenAPI.from_dict(document)


def _api_path(url: httpx.URL) -> str:
    """The path from /ExternalApi/v2 on, whatever prefix the sandbox mounts it under, spelled as the
    document spells it (Cin7 matches paths case-insensitively; the validator does not)."""
    path = url.path
    index = path.lower().find(SERVER_PATH.lower())
    if index < 0:
        return path
    endpoint = path[index + len(SERVER_PATH) :].rstrip("/")
    spelled = {base.lower(): base for base in _document()["paths"]}
    return SERVER_PATH + spelled.get(endpoint.lower(), endpoint)


@dataclass
class SpecRequest:
    request: httpx.Request
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        query = parse_qsl(self.request.url.query.decode(), keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query), header=Headers(list(self.request.headers.items()))
        )

    host_url = HOST

    @property
    def path(self) -> str:
        return _api_path(self.request.url)

    @property
    def method(self) -> str:
        return self.request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self.request.content or None

    @property
    def content_type(self) -> str:
        return self.request.headers.get("content-type", "application/json").lower()


@dataclass
class SpecResponse:
    response: httpx.Response

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return self.response.headers.get("content-type", "application/json").lower()

    @property
    def headers(self) -> Headers:
        return Headers(list(self.response.headers.items()))

    @property
    def data(self) -> bytes | None:
        return self.response.content


class RecordingTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response

    def close(self) -> None:
        self.inner.close()


def assert_valid(exchanges: list[tuple[httpx.Request, httpx.Response]]) -> int:
    """Validate every request, and every 200 answer whose operation has a response schema."""
    api = cin7_openapi()
    checked = 0
    for request, response in exchanges:
        spec_request = SpecRequest(request)
        api.validate_request(spec_request)
        if response.status_code == 200 and _has_schema(spec_request):
            api.validate_response(spec_request, SpecResponse(response))
        checked += 1
    return checked


def _has_schema(request: SpecRequest) -> bool:
    from ml_connector_pipelines.sandbox.cin7.spec import operation

    op = operation(request.method, request.path[len(SERVER_PATH) :]) or {}
    content = op.get("responses", {}).get("200", {}).get("content", {})
    return "schema" in content.get("application/json", {})
