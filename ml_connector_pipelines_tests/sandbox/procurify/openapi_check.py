"""Checks HTTP traffic against Procurify's OpenAPI document with openapi-core: an httpx transport
that validates every request it sends and every 2xx answer it gets back."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from ml_connector_pipelines.sandbox.procurify.spec import document

SPEC_HOST = (
    "https://sandbox.procurify.com"  # matches the document's server https://{user_domain}.procurify.com
)


@cache
def openapi() -> OpenAPI:
    spec = copy.deepcopy(document())
    # The document declares a required path parameter `vendor_group` that its path template lacks
    # (contract 3.4, a spec inconsistency); drop it so the path can be matched at all.
    for operation in spec["paths"]["/api/v3/vendors"].values():
        operation["parameters"] = [p for p in operation.get("parameters", []) if p["name"] != "vendor_group"]
    # /oauth/token names its own server with a literal "<your-domain>"; use the document's one.
    spec["paths"]["/oauth/token"]["post"].pop("servers", None)
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def spec_path(url: httpx.URL, prefix: str) -> str:
    """The request path as the document writes it: without the sandbox prefix or a trailing slash."""
    path = url.path.removeprefix(prefix)
    return path.rstrip("/") or "/"


@dataclass
class _Request:
    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


@dataclass
class _Response:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes | None


def as_openapi(request: httpx.Request, prefix: str) -> _Request:
    query = ImmutableMultiDict(list(request.url.params.multi_items()))
    headers = Headers(list(request.headers.items()))
    return _Request(
        host_url=SPEC_HOST,
        path=spec_path(request.url, prefix),
        method=request.method.lower(),
        parameters=RequestParameters(query=query, header=headers, cookie=ImmutableMultiDict()),
        content_type=request.headers.get("content-type", "application/json"),
        body=request.content or None,
    )


@dataclass
class ValidatingTransport(httpx.BaseTransport):
    """Sends through a real transport; records a problem for every request or 2xx answer the
    document rejects. ``prefix`` is the sandbox path in front of Procurify's own paths."""

    prefix: str
    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        wanted = as_openapi(request, self.prefix)
        api = openapi()
        try:
            api.validate_request(wanted)
        except Exception as exc:  # openapi-core raises several error types; every one is a finding
            self.problems.append(f"request {request.method} {wanted.path}: {_why(exc)}")
        response = self.inner.handle_request(request)
        response.read()
        if 200 <= response.status_code < 300:
            answer = _Response(
                response.status_code,
                response.headers.get("content-type", ""),
                Headers(list(response.headers.items())),
                response.content,
            )
            try:
                api.validate_response(wanted, answer)
            except Exception as exc:
                self.problems.append(f"response {request.method} {wanted.path}: {_why(exc)}")
            key = f"{request.method} {_template(wanted.path)}"
            self.checked[key] = self.checked.get(key, 0) + 1
        return response


def _template(path: str) -> str:
    parts = path.split("/")
    return "/".join("{x}" if p.isdigit() or len(p) == 36 else p for p in parts)


def _why(exc: Exception) -> str:
    """The schema errors (path in the body and message), else the error's own text."""
    details: list[Any] = []
    for inner in [exc, exc.__cause__]:
        for error in getattr(inner, "schema_errors", None) or []:
            details.append(f"{'.'.join(map(str, error.path))}: {error.message[:200]}")
    return " | ".join(details) if details else f"{type(exc).__name__}: {str(exc)[:300]}"
