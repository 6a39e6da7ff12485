"""RFC 7807 problem responses: every error the API returns is shaped here, in one table."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from codeyard.api.route_index import allowed_methods
from codeyard.domain.errors import (
    BadRequest,
    CodeyardError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)

STATUS: dict[type[CodeyardError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    ValidationFailed: 422,
    TooManyRequests: 429,
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
}


STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


def problem(
    status: int,
    detail: str,
    request: Request | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"https://codeyard.dev/problems/{status}",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path if request is not None else None,
        **extra,
    }
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def status_for(exc: CodeyardError) -> int:
    """The HTTP status of a domain error (its class or the nearest base in :data:`STATUS`)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _codeyard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CodeyardError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429 and exc.extra.get("retry_after") is not None:
        headers = {"Retry-After": str(exc.extra["retry_after"])}
    # Extra members add to the problem; they never replace its standard members.
    extra = {k: v for k, v in exc.extra.items() if k not in STANDARD_MEMBERS}
    return problem(status, exc.detail, request, exc.title, headers, **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(
            400,
            "The request body is not valid JSON. Send a JSON object with "
            "Content-Type: application/json.",
            request,
            "Malformed JSON",
        )
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors
    )
    return problem(422, f"The request is not valid: {summary}", request, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No such endpoint: {request.method} {request.url.path}. See /api/docs."
    if exc.status_code == 405 and detail == "Method Not Allowed":
        detail, headers = _method_not_allowed(request, headers)
    return problem(exc.status_code, detail, request, headers=headers)


def _method_not_allowed(
    request: Request, headers: dict[str, str] | None
) -> tuple[str, dict[str, str] | None]:
    """Name the methods the path accepts, in the detail and in ``Allow`` (Starlette's names
    only the first route it matched at the path, not every route there)."""
    router = request.scope.get("router")
    methods = allowed_methods(router, request.scope) if isinstance(router, APIRouter) else []
    if not methods:
        return f"{request.method} {request.url.path} is not allowed. See /api/docs.", headers
    accepted = ", ".join(methods)
    detail = (
        f"{request.method} {request.url.path} is not allowed; this path accepts {accepted}. "
        "Send one of those (see /api/docs)."
    )
    return detail, {**(headers or {}), "Allow": accepted}


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Codeyard hit an internal error; the server log has the details.", request)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CodeyardError, _codeyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
