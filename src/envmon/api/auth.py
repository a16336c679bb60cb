"""Bearer-token auth: a read token (analysts) and an admin token (acknowledge, silence).

Every route declares the role it needs with :func:`requires`; a route that does
not say is ``read``, so nothing is served without a token by omission. A
missing or wrong token is 401 (with ``WWW-Authenticate``), a read token on an
admin route is 403. Tokens are compared in constant time, each request against
both configured tokens whatever the first comparison gave.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Literal, TypeVar

from aiohttp import web
from pydantic import SecretStr

from envmon.api.keys import SETTINGS
from envmon.api.problems import Problem

logger = logging.getLogger(__name__)

Role = Literal["public", "read", "admin"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
ROLE_ATTR: Final = "_envmon_role"
_RANK: Final[dict[str, int]] = {"public": 0, "read": 1, "admin": 2}
CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="envmon"'}


def requires(role: Role) -> Callable[[H], H]:
    """Mark a handler with the role it needs."""

    def mark(handler: H) -> H:
        setattr(handler, ROLE_ATTR, role)
        return handler

    return mark


def role_of(request: web.Request) -> Role:
    handler = request.match_info.route.handler
    role: Role = getattr(handler, ROLE_ATTR, "read")
    return role


def _matches(given: bytes, token: SecretStr | None) -> bool:
    if token is None:
        # Compare anyway, so that a configured and an unconfigured token take as long.
        hmac.compare_digest(given, b"\x00" * max(len(given), 1))
        return False
    return hmac.compare_digest(given, token.get_secret_value().encode())


def granted(authorization: str | None, read: SecretStr | None, admin: SecretStr | None) -> Role:
    """The role a request's ``Authorization`` header grants (``public`` = none)."""
    if not authorization:
        return "public"
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return "public"
    given = value.strip().encode()
    is_admin = _matches(given, admin)
    is_read = _matches(given, read)
    if is_admin:
        return "admin"
    return "read" if is_read else "public"


def check(request: web.Request, needed: Role) -> Role:
    """Raise 401/403 unless the request may use a route needing ``needed``."""
    if needed == "public":
        return "public"
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization")
    role = granted(header, settings.read_token, settings.admin_token)
    if role == "public":
        detail = (
            "a bearer token is required (Authorization: Bearer <token>)"
            if not header
            else "the token is not valid"
        )
        raise Problem(401, detail, kind="unauthorized", headers=CHALLENGE)
    if _RANK[role] < _RANK[needed]:
        raise Problem(403, "this needs the admin token", kind="forbidden")
    return role
