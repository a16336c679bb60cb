"""``/api/v1/review/invalidate|restore`` (admin) and ``/api/v1/readings/history`` (admin).

The same functions as ``envmon review`` (``envmon.review``): a refused request
(unknown station or parameter, an empty range or one in the future, no reason
or name) is a 400 and changes nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from envmon import review
from envmon.api.auth import requires
from envmon.api.keys import ENVMON
from envmon.api.problems import bad_request
from envmon.api.routes.alerts import _body as json_body
from envmon.api.routes.common import connection, json_response
from envmon.parameters import BY_CODE
from envmon.review import parse_time
from envmon.timeutil import now

FIELDS = ("station", "parameter", "from", "to", "reason", "by")


def _field(body: dict[str, Any], name: str) -> str:
    v = body.get(name)
    if not isinstance(v, str) or not v.strip() or len(v) > 500:
        raise bad_request(
            f"'{name}' is required", [{"parameter": name, "message": "a non-empty string"}]
        )
    return v


async def _act(request: web.Request, action: review.Action) -> web.Response:
    body = await json_body(request)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise bad_request(
            "invalid review", [{"parameter": k, "message": "unknown field"} for k in unknown]
        )
    f = {name: _field(body, name) for name in FIELDS}
    try:
        sel = review.selector(
            request.app[ENVMON].catalog,
            f["station"],
            f["parameter"],
            parse_time(f["from"], "from"),
            parse_time(f["to"], "to"),
            now=now(),
        )
        async with connection(request) as conn:
            res = await review.apply(conn, action, sel, reason=f["reason"], by=f["by"])
    except review.ReviewError as err:
        raise bad_request(str(err)) from err
    return json_response(res.as_dict())


@requires("admin")
async def invalidate(request: web.Request) -> web.Response:
    return await _act(request, "invalidate")


@requires("admin")
async def restore(request: web.Request) -> web.Response:
    return await _act(request, "restore")


@requires("admin")
async def history(request: web.Request) -> web.Response:
    q = request.query
    try:
        parameter = q.get("parameter", "").strip().lower()
        if parameter not in BY_CODE:
            raise review.ReviewError(f"unknown parameter '{parameter}'")
        station = review.find_station(
            request.app[ENVMON].catalog, q.get("station", ""), BY_CODE[parameter].kind
        )
        ts = parse_time(q.get("time", ""), "time")
    except review.ReviewError as err:
        raise bad_request(str(err)) from err
    async with connection(request) as conn:
        rows = await review.history(conn, station, parameter, ts)
    return json_response(
        {"station_id": station.id, "parameter": parameter, "time": ts.isoformat(), "history": rows}
    )


ROUTES = [
    web.post("/api/v1/review/invalidate", invalidate, name="review_invalidate"),
    web.post("/api/v1/review/restore", restore, name="review_restore"),
    web.get("/api/v1/readings/history", history, name="reading_history"),
]
