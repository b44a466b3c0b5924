"""ASGI middleware: request ids, body size limit, metrics, access log and crash guard."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metarec.serving.errors import error_response
from metarec.serving.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
# Visible ASCII only, so a client id cannot inject new lines into logs or headers.
VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class BodyTooLarge(HTTPException):
    """The request body is longer than the configured limit.

    It is raised while the route reads the body, so the error handlers send the 413
    and the request is counted under its route.
    """

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {max_body_bytes} bytes; send smaller batches",
        )


class ServiceMiddleware:
    """Wraps every HTTP request of the app.

    It assigns the request id (the client's ``X-Request-ID`` when valid) and
    rejects bodies over ``max_body_bytes`` with 413. It records metrics by route
    template and writes one access log line with the raw (percent-encoded) path.
    An unhandled exception becomes a JSON 500 whose message contains only the
    request id.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started_response = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, self._limited_receive(scope, receive), send_with_id)
        except BodyTooLarge as error:
            # Only a body read outside the route's handlers ends up here.
            if not started_response:
                response = error_response(413, "body_too_large", str(error.detail))
                await response(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "request %s failed: %s %s", request_id, scope["method"], _raw_path(scope)
            )
            if not started_response:
                response = error_response(
                    500, "internal_error", f"internal error; request id {request_id}"
                )
                await response(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)
            request_id_var.reset(token)

    def _limited_receive(self, scope: Scope, receive: Receive) -> Receive:
        """Return a receive that raises BodyTooLarge once the body exceeds ``max_body_bytes``."""
        declared = _content_length(scope)
        limit = self.max_body_bytes
        size = 0

        async def limited() -> Message:
            nonlocal size
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.observe_request(scope["method"], template, status, seconds)
        logger.info(
            "request %s: %s %s -> %d in %.1f ms",
            request_id,
            scope["method"],
            _raw_path(scope),
            status,
            seconds * 1000,
        )


def _raw_path(scope: Scope) -> str:
    """Return the path as the client sent it, so decoded line breaks never reach the log."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("ascii", "backslashreplace")
    return str(scope["path"]).encode("unicode_escape").decode("ascii")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
