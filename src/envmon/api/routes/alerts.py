"""``/api/v1/alerts``: list episodes (read), acknowledge and silence (admin).

Through the alert engine's own functions (``envmon.alerts``, tables of migration
0004), so the API and ``envmon alerts`` do the same thing:

* list — ``envmon.alerts.episodes.list_events``;
* acknowledge — ``envmon.alerts.episodes.ack`` (the engine picks acknowledgements
  up from the table on its next pass, whichever process wrote them);
* silence — ``envmon.alerts.service.add_silence`` (the engine reads silences from
  ``alert_silence``).

Without the alert tables (a database not migrated to 0004) the endpoints answer
503 with a problem saying so.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
from aiohttp import web

from envmon.alerts import episodes as alert_store
from envmon.alerts.service import add_silence
from envmon.api.auth import requires
from envmon.api.keys import ENVMON
from envmon.api.params import Query
from envmon.api.problems import Problem, bad_request, not_found
from envmon.api.routes.common import connection, json_response
from envmon.errors import ConfigError
from envmon.timeutil import BEIJING, now

MAX_SILENCE = timedelta(days=31)
MAX_BODY = 16_384


def _episode(ep: Any) -> dict[str, Any]:
    out = (
        dataclasses.asdict(ep)
        if dataclasses.is_dataclass(ep) and not isinstance(ep, type)
        else dict(vars(ep))
    )
    out.pop("dirty", None)
    out["open"] = out.get("resolved_at") is None
    return out


def _tables_missing(err: psycopg.errors.UndefinedTable) -> Problem:
    return Problem(
        503,
        f"the alert tables are not in this database (migration 0004): {err}",
        kind="alerts-unavailable",
    )


@requires("read")
async def list_alerts(request: web.Request) -> web.Response:
    q = Query(request.query, ("state", "limit"))
    state = q.string("state", choices=("open", "all"), default="open")
    limit = q.integer("limit", default=200, low=1, high=5000)
    q.done()
    assert limit is not None
    try:
        async with connection(request) as conn:
            events = await alert_store.list_events(
                conn, include_resolved=state == "all", limit=limit
            )
    except psycopg.errors.UndefinedTable as err:
        raise _tables_missing(err) from err
    items = [_episode(e) for e in events]
    return json_response({"count": len(items), "items": items})


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Problem(413, f"request body over {MAX_BODY} bytes", kind="body-too-large")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Problem(413, f"request body over {MAX_BODY} bytes", kind="body-too-large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise bad_request(f"the body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, errors: list[dict[str, str]]) -> str | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 500:
        errors.append({"parameter": name, "message": "a string of at most 500 characters"})
        return None
    return v


def _time(body: dict[str, Any], name: str, errors: list[dict[str, str]]) -> datetime | None:
    v = body.get(name)
    if v is None:
        return None
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        errors.append({"parameter": name, "message": "an ISO 8601 time"})
        return None
    return t if t.tzinfo else t.replace(tzinfo=BEIJING)


@requires("admin")
async def ack_alert(request: web.Request) -> web.Response:
    try:
        event_id = int(request.match_info["id"])
    except ValueError as err:
        raise not_found(f"no alert {request.match_info['id']!r}") from err
    body = await _body(request)
    errors: list[dict[str, str]] = []
    by = _text(body, "by", errors) or "api"
    note = _text(body, "note", errors)
    unknown = sorted(set(body) - {"by", "note"})
    errors += [{"parameter": k, "message": "unknown field"} for k in unknown]
    if errors:
        raise bad_request("invalid acknowledgement", errors)
    try:
        async with connection(request) as conn:
            ok = await alert_store.ack(conn, event_id, by, note, now())
    except psycopg.errors.UndefinedTable as err:
        raise _tables_missing(err) from err
    if not ok:
        raise not_found(f"no alert {event_id}")
    return json_response({"id": event_id, "acknowledged": True, "by": by, "note": note})


@requires("admin")
async def silence(request: web.Request) -> web.Response:
    body = await _body(request)
    errors: list[dict[str, str]] = []
    rule = _text(body, "rule", errors)
    station = _text(body, "station", errors)
    city = _text(body, "city", errors)
    comment = _text(body, "comment", errors)
    created_by = _text(body, "created_by", errors) or "api"
    start = _time(body, "starts_at", errors) or now()
    end = _time(body, "ends_at", errors)
    minutes = body.get("duration_minutes")
    if end is None and minutes is not None:
        if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes > 0:
            end = start + timedelta(minutes=minutes)
        else:
            errors.append({"parameter": "duration_minutes", "message": "a positive integer"})
    unknown = sorted(
        set(body)
        - {
            "rule",
            "station",
            "city",
            "comment",
            "created_by",
            "starts_at",
            "ends_at",
            "duration_minutes",
        }
    )
    errors += [{"parameter": k, "message": "unknown field"} for k in unknown]
    if end is None and not errors:
        errors.append({"parameter": "ends_at", "message": "give ends_at or duration_minutes"})
    if end is not None and end <= start:
        errors.append({"parameter": "ends_at", "message": "must be after starts_at"})
    if end is not None and end - start > MAX_SILENCE:
        errors.append({"parameter": "ends_at", "message": "a silence lasts at most 31 days"})
    if rule is None and station is None and city is None and not errors:
        errors.append(
            {"parameter": "rule", "message": "a silence needs a rule, a station or a city"}
        )
    if errors:
        raise bad_request("invalid silence", errors)
    assert end is not None
    try:
        sid = await add_silence(
            request.app[ENVMON].pool,
            request.app[ENVMON].catalog,
            rule=rule,
            station_id=station,
            city=city,
            starts_at=start,
            ends_at=end,
            created_by=created_by,
            comment=comment,
        )
    except ConfigError as err:  # e.g. an unknown station
        raise bad_request(str(err), [{"parameter": "station", "message": str(err)}]) from err
    except psycopg.errors.UndefinedTable as err:
        raise _tables_missing(err) from err
    return json_response(
        {
            "id": sid,
            "rule": rule,
            "station": station,
            "city": city,
            "starts_at": start,
            "ends_at": end,
            "created_by": created_by,
            "comment": comment,
        },
        status=201,
    )


ROUTES = [
    web.get("/api/v1/alerts", list_alerts, name="alerts"),
    web.post("/api/v1/alerts/{id}/ack", ack_alert, name="alert_ack"),
    web.post("/api/v1/alerts/silences", silence, name="alert_silence"),
]
