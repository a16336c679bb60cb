"""Requests that never reach a handler (malformed, oversized) answered as problem details.

aiohttp answers a request it cannot parse — NUL or stray bytes in the request
line, a header over ``max_field_size``, a bad chunk — from its protocol handler,
with a text/plain body and the parser's full traceback logged at ERROR
("Error handling request"). Here the same answers are RFC 9457 problem details
with the parser's reason, logged as one line; an unexpected server error is
logged once with a request id (the traceback only at DEBUG), and the id goes
back to the client in the body and the ``X-Request-Id`` header.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from envmon.api.problems import Problem

logger = logging.getLogger(__name__)
_REASON_CHARS = 200


def new_request_id() -> str:
    return secrets.token_hex(6)


def server_error(request: BaseRequest, exc: BaseException | None) -> web.Response:
    """Log an unexpected error once, with a request id; the problem that answers it."""
    rid = new_request_id()
    logger.error(
        "api: unexpected error request_id=%s %s %s: %s: %s",
        rid,
        request.method,
        request.path,
        type(exc).__name__ if exc else "error",
        exc,
    )
    logger.debug("api: traceback of request_id=%s", rid, exc_info=exc)
    return Problem(
        500,
        f"internal error; quote request id {rid} to the operator (it is in the server log)",
        kind="internal-error",
        headers={"X-Request-Id": rid},
    ).response(request.path)


class _ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Some of a response is out already: aiohttp closes the connection.
            return super().handle_error(request, status, exc, message)
        if status >= 500:
            resp = server_error(request, exc)
        else:
            text = getattr(exc, "message", None) or str(exc or message or "malformed request")
            reason = " ".join(str(text).split())[:_REASON_CHARS]  # one line, bounded
            logger.info("api: refused a malformed request from %s: %s", request.remote, reason)
            resp = Problem(
                status, f"malformed HTTP request: {reason}", kind="bad-request"
            ).response("/")
        resp.force_close()
        return resp


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer unparseable requests as problem details."""

    async def _make_server(self) -> web.Server:
        # aiohttp has no public hook for the protocol's error answer: rebuild the server
        # it made with the same handler, factory and settings, and our RequestHandler.
        server = await super()._make_server()
        kwargs: dict[str, Any] = dict(server._kwargs)
        return _ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **kwargs,
        )
