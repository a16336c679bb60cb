"""Errors as RFC 9457 problem details (``application/problem+json``).

Handlers raise :class:`Problem`; the middleware in :mod:`envmon.api.app` turns
it, aiohttp's own HTTP errors and anything unexpected into one JSON shape:
``type``, ``title``, ``status``, ``detail``, ``instance`` and, for bad input,
``errors`` (one entry per parameter, with what was wrong).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from envmon.errors import EnvmonError

PROBLEM_TYPE: Final = "application/problem+json"
TYPE_BASE: Final = "https://envmon.invalid/problems/"


class Problem(EnvmonError):
    """An HTTP error with a problem-details body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or HTTPStatus(status).phrase.lower().replace(" ", "-")
        self.errors = errors or []
        self.headers = dict(headers or {})

    def body(self, instance: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": TYPE_BASE + self.kind,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            out["errors"] = self.errors
        return out

    def response(self, instance: str) -> web.Response:
        return web.Response(
            status=self.status,
            body=json.dumps(self.body(instance), ensure_ascii=False).encode(),
            content_type=PROBLEM_TYPE,
            headers=self.headers,
        )


def bad_request(detail: str, errors: list[dict[str, str]] | None = None) -> Problem:
    return Problem(400, detail, kind="invalid-parameters", errors=errors)


def not_found(detail: str) -> Problem:
    return Problem(404, detail, kind="not-found")


def too_large(detail: str, parameter: str = "from") -> Problem:
    """A range or size over the configured limits (still a 400: the request must change)."""
    return Problem(
        400, detail, kind="range-too-large", errors=[{"parameter": parameter, "message": detail}]
    )
