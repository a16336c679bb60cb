"""The OpenAPI 3.0 document of the API, served at ``/api/v1/openapi.json``.

Written out here rather than inferred, and kept true by the tests: every route
is documented and every documented path is routed (``test_api_openapi``), and
schemathesis calls each operation against a running server and checks status
codes, content types and bodies against this document.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from envmon import __version__
from envmon.api.export import CONTENT_TYPES
from envmon.catalog import COUNTIES
from envmon.evaluate.regions import REGIONS
from envmon.evaluate.trends import AIR_COLUMNS, METHODS, WATER_PARAMETERS
from envmon.parameters import BY_CODE, PERIODS

J: Final = "application/json"
PROBLEM: Final = "application/problem+json"

# Patterns keep generated examples meaningful (and document the accepted forms).
DATE_RE: Final = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"
MONTH_RE: Final = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
MOMENT_RE: Final = (
    r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?$"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _n(schema: dict[str, Any]) -> dict[str, Any]:
    """Nullable."""
    return {**schema, "nullable": True}


NUM: Final = {"type": "number"}
INT: Final = {"type": "integer"}
STR: Final = {"type": "string"}
BOOL: Final = {"type": "boolean"}
STRS: Final = {"type": "array", "items": {"type": "string"}}


def _obj(
    props: dict[str, Any], required: list[str] | None = None, extra: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required is None:
        required = list(props)
    if required:
        out["required"] = required
    if not extra:
        out["additionalProperties"] = False
    return out


def _q(
    name: str,
    schema: dict[str, Any],
    description: str,
    *,
    required: bool = False,
    explode: bool | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }
    if explode is not None:
        p["style"] = "form"
        p["explode"] = explode
    return p


def _problems(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid parameters or a range over the limits (problem details list each).",
        401: "No token or a wrong token.",
        403: "The route needs the admin token.",
        404: "Unknown station, alert or path.",
        413: "Request body too large.",
        422: "The request cannot be evaluated with the stored data (e.g. a missing baseline).",
        429: "Too many exports running; retry after the Retry-After seconds.",
        503: "The database (or the alert engine) is not available; or the query timed out.",
    }
    return {
        str(c): {"description": text[c], "content": {PROBLEM: {"schema": _ref("Problem")}}}
        for c in codes
    }


def _ok(schema: dict[str, Any], description: str = "OK", status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {J: {"schema": schema}}}}


STATION_LIST: Final = {"type": "array", "items": {"type": "string", "maxLength": 64}}
FROM_MOMENT = _q(
    "from",
    {"type": "string", "pattern": MOMENT_RE},
    "Start (included): ISO 8601 date or date-time; without an offset, Beijing time.",
    required=True,
)
TO_MOMENT = _q("to", {"type": "string", "pattern": MOMENT_RE}, "End (excluded).", required=True)
READING_FILTERS: Final = [
    _q(
        "station",
        STATION_LIST,
        "Station ids (comma-separated); all if absent.",
        explode=False,
    ),
    _q(
        "parameter",
        {"type": "array", "items": {"type": "string", "enum": list(BY_CODE)}},
        "Parameter codes (comma-separated); all if absent.",
        explode=False,
    ),
    FROM_MOMENT,
    TO_MOMENT,
]


def _schemas() -> dict[str, Any]:
    conc = {k: _n(NUM) for k in ("so2", "no2", "co", "pm10", "pm25")}
    aqi_item = _obj(
        {
            "station": STR,
            "region": {"type": "string", "enum": list(REGIONS)},
            "day": {"type": "string", "format": "date"},
            "time": {"type": "string", "format": "date-time"},
            "aqi": _n(INT),
            "category": _n({"type": "integer", "minimum": 1, "maximum": 6}),
            "quality": _n(STR),
            "level": _n(STR),
            "colour": _n({"type": "string", "pattern": "^#[0-9A-F]{6}$"}),
            "primary": STRS,
            "edition": {"type": "integer", "enum": [2012, 2026]},
            **conc,
            "o3": _n(NUM),
            "o3_8h": _n(NUM),
            "o3_1h_max": _n(NUM),
            "o3_8h_max": _n(NUM),
            "pm10_24h": _n(NUM),
            "pm25_24h": _n(NUM),
            "complete": BOOL,
            "iaqi": {"type": "object", "additionalProperties": INT},
            "n_stations": INT,
        },
        required=["aqi", "category", "quality", "level", "colour", "primary", "edition"],
    )
    trend = _obj(
        {
            "method": {"type": "string", "enum": list(METHODS)},
            "alpha": NUM,
            "status": {"type": "string", "enum": ["ok", "insufficient_data"]},
            "reason": _n(STR),
            "n_months": INT,
            "n_valid_months": INT,
            "min_valid_months": INT,
            "capture_rule": STR,
            "slope_per_year": _n(NUM),
            "slope_ci": _n({"type": "array", "items": _n(NUM), "minItems": 2, "maxItems": 2}),
            "intercept": _n(NUM),
            "relative_slope_per_year": _n(NUM),
            "mann_kendall": _obj(
                {
                    "tau": _n(NUM),
                    "s": _n(NUM),
                    "var_s": _n(NUM),
                    "z": _n(NUM),
                    "p_value": _n(NUM),
                    "trend": _n(
                        {"type": "string", "enum": ["increasing", "decreasing", "no trend"]}
                    ),
                    "significant": _n(BOOL),
                }
            ),
            "excluded_months": {
                "type": "array",
                "items": _obj({"month": STR, "n_days": INT, "reason": STR}),
            },
        }
    )
    pollutant_stats = {
        "type": "object",
        "additionalProperties": _obj(
            {
                "valid_days": INT,
                "used_days": INT,
                "valid_year": BOOL,
                "mean": _n(NUM),
                "attains": _n(BOOL),
                "limit_annual": _n(NUM),
                "limit_short": NUM,
            }
        ),
    }
    good_days = _obj(
        {
            "good": INT,
            "valid": INT,
            "ratio": _n(NUM),
            "by_category": {"type": "object", "additionalProperties": INT},
        },
        required=["good", "valid", "ratio", "by_category"],
    )
    annual_unit = _obj(
        {
            "kind": {"type": "string", "enum": ["station", "county", "region"]},
            "id": STR,
            "name": STR,
            "city": _n(STR),
            "county": _n(STR),
            "assessed": BOOL,
            "edition": {"type": "integer", "enum": [2012, 2026]},
            "limit_set": STR,
            "days_elapsed": INT,
            "pollutants": pollutant_stats,
            "comprehensive_index": _n(NUM),
            "index_note": _n(STR),
            "attains": _n(BOOL),
            "good_days": good_days,
            "dust_days": INT,
            "invalid_days": INT,
            "rank": _n(INT),
        },
        required=["kind", "id", "name", "edition", "pollutants", "comprehensive_index"],
    )
    status = {"type": "string"}
    return {
        "Problem": _obj(
            {
                "type": STR,
                "title": STR,
                "status": INT,
                "detail": STR,
                "instance": STR,
                "errors": {
                    "type": "array",
                    "items": _obj({"parameter": STR, "message": STR}),
                },
            },
            required=["type", "title", "status", "detail"],
        ),
        "Station": _obj(
            {
                "id": STR,
                "kind": {"type": "string", "enum": ["air", "water", "weather"]},
                "name": STR,
                "city": STR,
                "county": STR,
                "lon": NUM,
                "lat": NUM,
                "elevation_m": _n(NUM),
                "control_level": STR,
                "assessed": BOOL,
                "verified": BOOL,
                "river": _n(STR),
                "basin": _n(STR),
                "waterbody": _n(STR),
                "target_class": _n(INT),
                "mn": _n(STR),
                "station_no": _n(STR),
                "active": BOOL,
            }
        ),
        "Reading": _obj(
            {
                "station": STR,
                "parameter": STR,
                "period": {"type": "string", "enum": list(PERIODS)},
                "time": {"type": "string", "format": "date-time"},
                "value": NUM,
                "flag": STR,
                "source": STR,
            }
        ),
        "ReadingPage": _obj(
            {
                "items": {"type": "array", "items": _ref("Reading")},
                "count": INT,
                "limit": INT,
                "next_cursor": _n(STR),
            }
        ),
        "AqiItem": aqi_item,
        "AqiResponse": _obj(
            {
                "resolution": {"type": "string", "enum": ["daily", "hourly"]},
                "scope": {"type": "string", "enum": ["station", "region"]},
                "from": STR,
                "to": STR,
                "units": STRS,
                "items": {"type": "array", "items": _ref("AqiItem")},
            }
        ),
        "WaterMonth": _obj(
            {
                "station": STR,
                "name": STR,
                "river": _n(STR),
                "county": STR,
                "city": STR,
                "month": {"type": "string", "pattern": MONTH_RE},
                "class": {"type": "integer", "minimum": 1, "maximum": 6},
                "roman": STR,
                "status": STR,
                "target_class": _n(INT),
                "meets_target": _n(BOOL),
                "main_pollutants": STRS,
                "exceedance": {"type": "object", "additionalProperties": NUM},
                "parameters": {
                    "type": "object",
                    "additionalProperties": _obj(
                        {"value": NUM, "n_days": INT, "class": _n(INT), "roman": _n(STR)}
                    ),
                },
            },
            required=["station", "month", "class", "roman", "target_class", "meets_target"],
        ),
        "WaterResponse": _obj(
            {
                "from": STR,
                "to": STR,
                "count": INT,
                "items": {"type": "array", "items": _ref("WaterMonth")},
            }
        ),
        "Targets": _obj(
            {
                "year": INT,
                "region": {"type": "string", "enum": list(REGIONS)},
                "region_name": STR,
                "edition": {"oneOf": [INT, STR]},
                "as_of": {"type": "string", "format": "date"},
                "finished": BOOL,
                "days_elapsed": INT,
                "days_in_year": INT,
                "pm25": _obj(
                    {
                        "mean": _n(NUM),
                        "mean_measured": _n(NUM),
                        "baseline": _n(NUM),
                        "target": _n(NUM),
                        "valid_days": INT,
                        "dust_days": INT,
                        "invalid_days": INT,
                        "unit": STR,
                        "status": status,
                    }
                ),
                "good_days": _obj(
                    {
                        "good": INT,
                        "valid": INT,
                        "ratio": _n(NUM),
                        "baseline": _n(NUM),
                        "target": _n(NUM),
                        "by_category": {"type": "object", "additionalProperties": INT},
                        "invalid_days": INT,
                        "status": status,
                    }
                ),
                "water": _obj(
                    {
                        "good": INT,
                        "sections": INT,
                        "ratio": _n(NUM),
                        "target": _n(NUM),
                        "by_class": {"type": "object", "additionalProperties": INT},
                        "sections_detail": {"type": "array", "items": {"type": "object"}},
                        "sections_total": INT,
                        "status": status,
                    }
                ),
            }
        ),
        "MonthValue": _obj(
            {
                "month": {"type": "string", "pattern": MONTH_RE},
                "mean": _n(NUM),
                "n_days": INT,
                "valid": BOOL,
            }
        ),
        "Trend": trend,
        "TrendResponse": _obj(
            {
                "parameter": STR,
                "statistic": STR,
                "unit": STR,
                "station": _n(STR),
                "region": _n(STR),
                "from": STR,
                "to": STR,
                "series": {"type": "array", "items": _ref("MonthValue")},
                "trend": _ref("Trend"),
            }
        ),
        "AnnualUnit": annual_unit,
        "Annual": _obj(
            {
                "year": INT,
                "from": STR,
                "to": STR,
                "days_elapsed": INT,
                "editions": {"type": "array", "items": INT},
                "dust_rule": STR,
                "by_edition": {
                    "type": "object",
                    "additionalProperties": _obj(
                        {
                            "regions": {"type": "array", "items": _ref("AnnualUnit")},
                            "counties": {"type": "array", "items": _ref("AnnualUnit")},
                            "stations": {"type": "array", "items": _ref("AnnualUnit")},
                        }
                    ),
                },
            }
        ),
        "Alert": _obj(
            {
                "id": INT,
                "rule": STR,
                "subject": STR,
                "severity": STR,
                "state": {"type": "string", "enum": ["firing", "escalated", "resolved"]},
                "open": BOOL,
                "station_id": _n(STR),
                "started_at": STR,
                "acked_at": _n(STR),
                "acked_by": _n(STR),
                "message": STR,
                "silenced": BOOL,
                "value_text": STR,
                "last_text": STR,
            },
            required=["id", "rule", "subject", "state", "open"],
        ),
        "Health": _obj(
            {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "database": {"type": "string", "enum": ["ok", "unavailable"]},
                "spool_pending_files": INT,
                "version": STR,
            }
        ),
    }


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI document (built once)."""
    read = _problems(400, 401, 503)
    paths: dict[str, Any] = {
        "/api/v1/stations": {
            "get": {
                "operationId": "listStations",
                "summary": "Stations of the network (air, water sections, weather)",
                "parameters": [
                    _q("kind", {"type": "string", "enum": ["air", "water", "weather"]}, "Kind."),
                    _q("city", {"type": "string", "enum": ["太原市", "忻州市"]}, "City."),
                    _q("county", {"type": "string", "enum": list(COUNTIES)}, "County (one of 12)."),
                    _q("active", {"type": "string", "enum": ["true", "false"]}, "Active or not."),
                ],
                "responses": {
                    **_ok(
                        _obj({"count": INT, "items": {"type": "array", "items": _ref("Station")}})
                    ),
                    **read,
                },
            }
        },
        "/api/v1/readings": {
            "get": {
                "operationId": "listReadings",
                "summary": "Readings as stored, paged by a keyset cursor",
                "description": "Rows in key order (station, parameter, period, time); time is "
                "the START of the period. Pass next_cursor back as cursor with the same "
                "filters for the next page; null = last page.",
                "parameters": [
                    *READING_FILTERS,
                    _q("period", {"type": "string", "enum": list(PERIODS)}, "Period."),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "Page size."),
                    _q("cursor", {"type": "string", "maxLength": 2000}, "From next_cursor."),
                ],
                "responses": {**_ok(_ref("ReadingPage")), **_problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/export/readings": {
            "get": {
                "operationId": "exportReadings",
                "summary": "Readings as a streamed CSV, Parquet or XLSX file",
                "description": "CSV re-imports with `envmon import`. Limits: the range and "
                "stations × days (settings).",
                "parameters": [
                    *READING_FILTERS,
                    _q(
                        "period",
                        {"type": "string", "enum": list(PERIODS), "default": "1h"},
                        "Period (default 1h).",
                    ),
                    _q(
                        "format",
                        {"type": "string", "enum": list(CONTENT_TYPES), "default": "csv"},
                        "File format.",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "The file (attachment).",
                        "content": {
                            ct.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                            for ct in CONTENT_TYPES.values()
                        },
                    },
                    **_problems(400, 401, 404, 429, 503),
                },
            }
        },
        "/api/v1/aqi": {
            "get": {
                "operationId": "getAqi",
                "summary": "Hourly (station) or daily (station, city, zone) AQI",
                "parameters": [
                    _q(
                        "resolution",
                        {"type": "string", "enum": ["daily", "hourly"], "default": "daily"},
                        "daily: from/to are dates; hourly: times.",
                    ),
                    _q("station", STATION_LIST, "Air stations; all if absent.", explode=False),
                    _q("region", {"type": "string", "enum": list(REGIONS)}, "City or zone."),
                    _q("from", {"type": "string", "pattern": MOMENT_RE}, "Start.", required=True),
                    _q(
                        "to",
                        {"type": "string", "pattern": MOMENT_RE},
                        "End (excl.).",
                        required=True,
                    ),
                ],
                "responses": {**_ok(_ref("AqiResponse")), **_problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/water": {
            "get": {
                "operationId": "getWater",
                "summary": "GB 3838 class per section and month",
                "parameters": [
                    _q("station", STATION_LIST, "Water sections; all if absent.", explode=False),
                    _q("from", {"type": "string", "pattern": MONTH_RE}, "YYYY-MM.", required=True),
                    _q(
                        "to",
                        {"type": "string", "pattern": MONTH_RE},
                        "YYYY-MM (excl.).",
                        required=True,
                    ),
                    _q("parameters", BOOL, "Include each parameter's monthly value."),
                ],
                "responses": {**_ok(_ref("WaterResponse")), **_problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/targets": {
            "get": {
                "operationId": "getTargets",
                "summary": "The year against the zone's targets (`envmon evaluate --json`)",
                "parameters": [
                    _q("year", {"type": "integer", "minimum": 2000, "maximum": 2099}, "Year."),
                    _q("region", {"type": "string", "enum": list(REGIONS)}, "Region."),
                    _q("as_of", {"type": "string", "pattern": DATE_RE}, "Evaluate as of."),
                    _q("edition", {"type": "integer", "enum": [2012, 2026]}, "Force an edition."),
                ],
                "responses": {**_ok(_ref("Targets")), **_problems(400, 401, 422, 503)},
            }
        },
        "/api/v1/trends": {
            "get": {
                "operationId": "getTrend",
                "summary": "Theil–Sen slope and Mann–Kendall test on monthly means",
                "parameters": [
                    _q(
                        "parameter",
                        {"type": "string", "enum": [*AIR_COLUMNS, *sorted(WATER_PARAMETERS)]},
                        "Parameter (o3 = MDA8).",
                        required=True,
                    ),
                    _q("station", {"type": "string", "maxLength": 64}, "A station or section."),
                    _q("region", {"type": "string", "enum": list(REGIONS)}, "Or a region (air)."),
                    _q("from", {"type": "string", "pattern": MONTH_RE}, "First month."),
                    _q("to", {"type": "string", "pattern": MONTH_RE}, "Month after the last."),
                    _q("method", {"type": "string", "enum": list(METHODS)}, "Deseasonalisation."),
                    _q("alpha", {"type": "number", "minimum": 0.001, "maximum": 0.2}, "Level."),
                ],
                "responses": {**_ok(_ref("TrendResponse")), **_problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/annual": {
            "get": {
                "operationId": "getAnnual",
                "summary": "HJ 663 annual statistics, comprehensive index and rankings",
                "parameters": [
                    _q(
                        "year",
                        {"type": "integer", "minimum": 2000, "maximum": 2099},
                        "Year.",
                        required=True,
                    ),
                    _q("as_of", {"type": "string", "pattern": DATE_RE}, "Data up to this day."),
                    _q("edition", {"type": "integer", "enum": [2012, 2026]}, "One edition only."),
                ],
                "responses": {**_ok(_ref("Annual")), **read},
            }
        },
        "/api/v1/alerts": {
            "get": {
                "operationId": "listAlerts",
                "summary": "Alert episodes",
                "parameters": [
                    _q(
                        "state", {"type": "string", "enum": ["open", "all"]}, "Open only (default)."
                    ),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "At most."),
                ],
                "responses": {
                    **_ok(_obj({"count": INT, "items": {"type": "array", "items": _ref("Alert")}})),
                    **read,
                },
            }
        },
        "/api/v1/alerts/{id}/ack": {
            "post": {
                "operationId": "ackAlert",
                "summary": "Acknowledge an alert (admin token)",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        J: {
                            "schema": _obj(
                                {
                                    "by": {"type": "string", "maxLength": 500},
                                    "note": {"type": "string", "maxLength": 500},
                                },
                                required=[],
                                extra=False,
                            )
                        }
                    },
                },
                "responses": {
                    **_ok(_obj({"id": INT, "acknowledged": BOOL, "by": STR, "note": _n(STR)})),
                    **_problems(400, 401, 403, 404, 413, 503),
                },
            }
        },
        "/api/v1/alerts/silences": {
            "post": {
                "operationId": "addSilence",
                "summary": "Silence alerts of a rule, station or city for a while (admin token)",
                "requestBody": {
                    "required": True,
                    "content": {
                        J: {
                            "schema": _obj(
                                {
                                    "rule": {"type": "string", "maxLength": 500},
                                    "station": {"type": "string", "maxLength": 500},
                                    "city": {"type": "string", "maxLength": 500},
                                    "starts_at": {"type": "string", "pattern": MOMENT_RE},
                                    "ends_at": {"type": "string", "pattern": MOMENT_RE},
                                    "duration_minutes": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": 44640,
                                    },
                                    "created_by": {"type": "string", "maxLength": 500},
                                    "comment": {"type": "string", "maxLength": 500},
                                },
                                required=[],
                                extra=False,
                            )
                        }
                    },
                },
                "responses": {
                    **_ok(
                        _obj(
                            {
                                "id": INT,
                                "rule": _n(STR),
                                "station": _n(STR),
                                "city": _n(STR),
                                "starts_at": STR,
                                "ends_at": STR,
                                "created_by": STR,
                                "comment": _n(STR),
                            }
                        ),
                        "Created",
                        201,
                    ),
                    **_problems(400, 401, 403, 413, 503),
                },
            }
        },
        "/api/v1/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness and database reachability (no token)",
                "security": [],
                "responses": {
                    **_ok(_ref("Health")),
                    "503": {
                        "description": "The database is unreachable.",
                        "content": {J: {"schema": _ref("Health")}},
                    },
                },
            }
        },
        "/api/v1/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition 0.0.4)",
                "responses": {
                    "200": {
                        "description": "Metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_problems(401),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no token)",
                "security": [],
                "responses": _ok({"type": "object"}),
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "envmon analyst API",
            "version": __version__,
            "description": "Environmental monitoring of the Taiyuan–Xinzhou integrated economic "
            "zone: stations, readings and exports, AQI (HJ 633), water classes (GB 3838), "
            "targets, trends and HJ 663 annual statistics. Times are Beijing time (UTC+8) "
            "unless an offset is given; ranges are [from, to). Errors are RFC 9457 problem "
            "details. Authorization: Bearer <read token> (admin token for alert actions).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
    }
