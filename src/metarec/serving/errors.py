"""JSON error bodies ``{"error": {"code", "message", "field"}}`` and their handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

STATUS_CODES = {
    400: "invalid_json",
    401: "missing_api_key",
    403: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    503: "not_ready",
}


class ApiError(Exception):
    """An error that the client caused or can act on, sent as a JSON error body."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status, error.code, error.message, error.field)


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    first: dict[str, Any] = error.errors()[0]
    if first.get("type") == "json_invalid":
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    location = [str(part) for part in first.get("loc", ())]
    # The first part is the location (body, query or path), and the rest is the field name.
    field = ".".join(location[1:]) or None
    # pydantic starts the message of a ValueError raised in a validator with this prefix.
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "field required"
    text = f"{field}: {message}" if field else message
    return error_response(422, "invalid_value", text, field)


async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = STATUS_CODES.get(error.status_code, "http_error")
    if error.status_code == 400:
        # FastAPI raises a bare 400 when the body cannot be decoded, e.g. bytes that
        # are not UTF-8; invalid JSON syntax is a validation error handled above.
        message = "the request body is not valid JSON; send UTF-8 encoded JSON"
        return error_response(400, code, message)
    return error_response(error.status_code, code, str(error.detail))
