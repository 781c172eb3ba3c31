"""Every error leaves the API as ``{"error": {"type", "message", "field"}}`` with a status that fits.

Library errors (``GraderError`` and subclasses) carry their own ``status_code``; request
validation, HTTP errors and unexpected bugs are translated here, in one place, so no route has
error-formatting code and bad input never becomes a 500.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from grader.errors import GraderError

from .schemas import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)

_HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


def error_type(err: GraderError) -> str:
    """``UnknownRubric`` -> ``unknown_rubric``: a stable, machine-readable name for clients."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(err).__name__).lower()


def error_body(err: GraderError) -> ErrorBody:
    return ErrorBody(type=error_type(err), message=err.message, field=err.field)


def error_response(status: int, type_: str, message: str, field: str | None = None, headers=None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(type=type_, message=message, field=field))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """Drop the ``body`` / ``query`` / ``path`` prefix: ``("body", "rubric", "key_points")`` -> ``rubric.key_points``."""
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in {"body", "query", "path", "header"} else [str(p) for p in loc]
    return ".".join(parts) or None


def describe_validation(errors: list[dict[str, Any]], whole: str = "request body") -> tuple[str, str, str | None]:
    """(type, message, field) for pydantic / FastAPI validation errors, phrased for a person.

    ``whole`` names the validated thing in messages about it as a whole (wrong type, missing).
    """
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "JSON decode error")
        position = first["loc"][1] if len(first["loc"]) > 1 else "?"
        return "invalid_json", f"request body is not valid JSON: {reason} at character {position}", None
    if tuple(first.get("loc", ())) == ("body",) and isinstance(first.get("input"), bytes | str):
        return (
            "invalid_json",
            "request body must be a JSON object sent with 'Content-Type: application/json'",
            None,
        )
    parts = []
    for e in errors[:10]:
        where = _location(e.get("loc", ())) or whole
        parts.append(f"{where}: {e.get('msg', 'invalid value')}")
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "validation_error", "; ".join(parts) + more, _location(first.get("loc", ()))


async def _grader_error(_: Request, err: GraderError) -> JSONResponse:
    return error_response(err.status_code, error_type(err), err.message, err.field)


async def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
    type_, message, field = describe_validation(list(err.errors()))
    return error_response(422, type_, message, field)


async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
    type_ = _HTTP_TYPES.get(err.status_code, "http_error")
    message = err.detail if isinstance(err.detail, str) else str(err.detail)
    if err.status_code == 404 and message == "Not Found":
        message = "no such endpoint; see /docs for the API"
    elif err.status_code == 405:
        message = "method not allowed on this endpoint; see /docs for the API"
    return error_response(err.status_code, type_, message, headers=getattr(err, "headers", None))


async def _conflict(_: Request, err: IntegrityError) -> JSONResponse:
    # Two writers changed the same rubric at the same moment; the later one lost and can simply retry.
    return error_response(409, "conflict", "the rubric was changed by another request at the same moment; retry")


async def _unexpected(_: Request, err: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=err)
    return error_response(500, "internal_error", "the server failed to handle this request; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GraderError, _grader_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _conflict)
    app.add_exception_handler(Exception, _unexpected)
