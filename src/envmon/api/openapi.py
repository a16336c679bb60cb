"""The OpenAPI 3.0 document of the API, served at ``/api/v1/openapi.json``.

Written out here rather than inferred, and kept true by the tests: every route
is documented and every documented path is routed (``test_api_openapi``), and
schemathesis calls each operation against a running server and checks status
codes, content types and bodies against this document.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from envmon import __version__
from envmon.api.export import CONTENT_TYPES
from envmon.api.openapi_common import (
    BOOL,
    DATE_RE,
    INT,
    MOMENT_RE,
    MONTH_RE,
    NUM,
    READING_FILTERS,
    REGION,
    REGION_ID,
    STATION_LIST,
    STR,
    STRS,
    J,
    n,
    obj,
    ok,
    problems,
    q,
    ref,
)
from envmon.api.openapi_exports import export_paths, index_paths
from envmon.api.openapi_review import review_paths
from envmon.catalog import COUNTIES
from envmon.evaluate.trends import AIR_COLUMNS, METHODS, WATER_PARAMETERS
from envmon.parameters import PERIODS


def _schemas() -> dict[str, Any]:
    conc = {k: n(NUM) for k in ("so2", "no2", "co", "pm10", "pm25")}
    aqi_item = obj(
        {
            "station": STR,
            "region": REGION_ID,
            "day": {"type": "string", "format": "date"},
            "time": {"type": "string", "format": "date-time"},
            "aqi": n(INT),
            "category": n({"type": "integer", "minimum": 1, "maximum": 6}),
            "quality": n(STR),
            "level": n(STR),
            "colour": n({"type": "string", "pattern": "^#[0-9A-F]{6}$"}),
            "primary": STRS,
            "edition": {"type": "integer", "enum": [2012, 2026]},
            **conc,
            "o3": n(NUM),
            "o3_8h": n(NUM),
            "o3_1h_max": n(NUM),
            "o3_8h_max": n(NUM),
            "pm10_24h": n(NUM),
            "pm25_24h": n(NUM),
            "complete": BOOL,
            "iaqi": {"type": "object", "additionalProperties": INT},
            "n_stations": INT,
        },
        required=["aqi", "category", "quality", "level", "colour", "primary", "edition"],
    )
    trend = obj(
        {
            "method": {"type": "string", "enum": list(METHODS)},
            "alpha": NUM,
            "status": {"type": "string", "enum": ["ok", "insufficient_data"]},
            "reason": n(STR),
            "n_months": INT,
            "n_valid_months": INT,
            "min_valid_months": INT,
            "capture_rule": STR,
            "slope_per_year": n(NUM),
            "slope_ci": n({"type": "array", "items": n(NUM), "minItems": 2, "maxItems": 2}),
            "intercept": n(NUM),
            "relative_slope_per_year": n(NUM),
            "mann_kendall": obj(
                {
                    "tau": n(NUM),
                    "s": n(NUM),
                    "var_s": n(NUM),
                    "z": n(NUM),
                    "p_value": n(NUM),
                    "trend": n(
                        {"type": "string", "enum": ["increasing", "decreasing", "no trend"]}
                    ),
                    "significant": n(BOOL),
                }
            ),
            "excluded_months": {
                "type": "array",
                "items": obj({"month": STR, "n_days": INT, "reason": STR}),
            },
        }
    )
    pollutant_stats = {
        "type": "object",
        "additionalProperties": obj(
            {
                "valid_days": INT,
                "used_days": INT,
                "valid_year": BOOL,
                "mean": n(NUM),
                "attains": n(BOOL),
                "limit_annual": n(NUM),
                "limit_short": NUM,
            }
        ),
    }
    good_days = obj(
        {
            "good": INT,
            "valid": INT,
            "ratio": n(NUM),
            "by_category": {"type": "object", "additionalProperties": INT},
        },
        required=["good", "valid", "ratio", "by_category"],
    )
    annual_unit = obj(
        {
            "kind": {"type": "string", "enum": ["station", "county", "region"]},
            "id": STR,
            "name": STR,
            "city": n(STR),
            "county": n(STR),
            "assessed": BOOL,
            "edition": {"type": "integer", "enum": [2012, 2026]},
            "limit_set": STR,
            "days_elapsed": INT,
            "pollutants": pollutant_stats,
            "comprehensive_index": n(NUM),
            "index_note": n(STR),
            "attains": n(BOOL),
            "good_days": good_days,
            "dust_days": INT,
            "invalid_days": INT,
            "rank": n(INT),
        },
        required=["kind", "id", "name", "edition", "pollutants", "comprehensive_index"],
    )
    status = {"type": "string"}
    return {
        "Problem": obj(
            {
                "type": STR,
                "title": STR,
                "status": INT,
                "detail": STR,
                "instance": STR,
                "errors": {
                    "type": "array",
                    "items": obj({"parameter": STR, "message": STR}),
                },
            },
            required=["type", "title", "status", "detail"],
        ),
        "Station": obj(
            {
                "id": STR,
                "kind": {"type": "string", "enum": ["air", "water", "weather"]},
                "name": STR,
                "city": STR,
                "county": STR,
                "lon": NUM,
                "lat": NUM,
                "elevation_m": n(NUM),
                "control_level": STR,
                "assessed": BOOL,
                "verified": BOOL,
                "river": n(STR),
                "basin": n(STR),
                "waterbody": n(STR),
                "target_class": n(INT),
                "mn": n(STR),
                "station_no": n(STR),
                "active": BOOL,
            }
        ),
        "Reading": obj(
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
        "ReadingPage": obj(
            {
                "items": {"type": "array", "items": ref("Reading")},
                "count": INT,
                "limit": INT,
                "next_cursor": n(STR),
            }
        ),
        "AqiItem": aqi_item,
        "AqiResponse": obj(
            {
                "resolution": {"type": "string", "enum": ["daily", "hourly"]},
                "scope": {"type": "string", "enum": ["station", "region"]},
                "from": STR,
                "to": STR,
                "stations": STRS,
                "regions": STRS,
                "units": {**STRS, "deprecated": True, "description": "Use stations/regions."},
                "items": {"type": "array", "items": ref("AqiItem")},
            },
            required=["resolution", "scope", "from", "to", "items"],
        ),
        "WaterMonth": obj(
            {
                "station": STR,
                "name": STR,
                "river": n(STR),
                "county": STR,
                "city": STR,
                "month": {"type": "string", "pattern": MONTH_RE},
                "class": {"type": "integer", "minimum": 1, "maximum": 6},
                "roman": STR,
                "status": STR,
                "target_class": n(INT),
                "meets_target": n(BOOL),
                "main_pollutants": STRS,
                "exceedance": {"type": "object", "additionalProperties": NUM},
                "parameters": {
                    "type": "object",
                    "additionalProperties": obj(
                        {"value": NUM, "n_days": INT, "class": n(INT), "roman": n(STR)}
                    ),
                },
            },
            required=["station", "month", "class", "roman", "target_class", "meets_target"],
        ),
        "WaterResponse": obj(
            {
                "from": STR,
                "to": STR,
                "count": INT,
                "items": {"type": "array", "items": ref("WaterMonth")},
            }
        ),
        "Targets": obj(
            {
                "year": INT,
                "region": REGION_ID,
                "region_name": STR,
                "edition": {"oneOf": [INT, STR]},
                "as_of": {"type": "string", "format": "date"},
                "finished": BOOL,
                "days_elapsed": INT,
                "days_in_year": INT,
                "pm25": obj(
                    {
                        "mean": n(NUM),
                        "mean_measured": n(NUM),
                        "baseline": n(NUM),
                        "target": n(NUM),
                        "valid_days": INT,
                        "dust_days": INT,
                        "invalid_days": INT,
                        "unit": STR,
                        "status": status,
                    }
                ),
                "good_days": obj(
                    {
                        "good": INT,
                        "valid": INT,
                        "ratio": n(NUM),
                        "baseline": n(NUM),
                        "target": n(NUM),
                        "by_category": {"type": "object", "additionalProperties": INT},
                        "invalid_days": INT,
                        "status": status,
                    }
                ),
                "water": obj(
                    {
                        "good": INT,
                        "sections": INT,
                        "ratio": n(NUM),
                        "target": n(NUM),
                        "by_class": {"type": "object", "additionalProperties": INT},
                        "sections_detail": {"type": "array", "items": {"type": "object"}},
                        "sections_total": INT,
                        "status": status,
                    }
                ),
            }
        ),
        "MonthValue": obj(
            {
                "month": {"type": "string", "pattern": MONTH_RE},
                "mean": n(NUM),
                "n_days": INT,
                "valid": BOOL,
            }
        ),
        "Trend": trend,
        "TrendResponse": obj(
            {
                "parameter": STR,
                "statistic": STR,
                "unit": STR,
                "station": n(STR),
                "region": n(STR),
                "from": STR,
                "to": STR,
                "series": {"type": "array", "items": ref("MonthValue")},
                "trend": ref("Trend"),
            }
        ),
        "AnnualUnit": annual_unit,
        "Annual": obj(
            {
                "year": INT,
                "from": STR,
                "to": STR,
                "days_elapsed": INT,
                "editions": {"type": "array", "items": INT},
                "dust_rule": STR,
                "by_edition": {
                    "type": "object",
                    "additionalProperties": obj(
                        {
                            "regions": {"type": "array", "items": ref("AnnualUnit")},
                            "counties": {"type": "array", "items": ref("AnnualUnit")},
                            "stations": {"type": "array", "items": ref("AnnualUnit")},
                        }
                    ),
                },
            }
        ),
        "Alert": obj(
            {
                "id": INT,
                "rule": STR,
                "subject": STR,
                "severity": STR,
                "state": {"type": "string", "enum": ["firing", "escalated", "resolved"]},
                "open": BOOL,
                "station_id": n(STR),
                "started_at": STR,
                "acked_at": n(STR),
                "acked_by": n(STR),
                "message": STR,
                "silenced": BOOL,
                "data_invalidated": BOOL,
                "value_text": STR,
                "last_text": STR,
            },
            required=["id", "rule", "subject", "state", "open"],
        ),
        "Health": obj(
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
    read = problems(400, 401, 503)
    paths: dict[str, Any] = {
        "/api/v1/stations": {
            "get": {
                "operationId": "listStations",
                "summary": "Stations of the network (air, water sections, weather)",
                "parameters": [
                    q("kind", {"type": "string", "enum": ["air", "water", "weather"]}, "Kind."),
                    q("city", {"type": "string", "enum": ["太原市", "忻州市"]}, "City."),
                    q("county", {"type": "string", "enum": list(COUNTIES)}, "County (one of 12)."),
                    q("active", {"type": "string", "enum": ["true", "false"]}, "Active or not."),
                ],
                "responses": {
                    **ok(obj({"count": INT, "items": {"type": "array", "items": ref("Station")}})),
                    **read,
                },
            }
        },
        "/api/v1/readings": {
            "get": {
                "operationId": "listReadings",
                "summary": "Readings as stored and reviewed, paged by a keyset cursor",
                "description": "Rows in key order (station, parameter, period, time); time is "
                "the START of the period. Readings a reviewer invalidated are left out "
                "(their history: /api/v1/readings/history). Pass next_cursor back as cursor "
                "with the same filters for the next page; null = last page.",
                "parameters": [
                    *READING_FILTERS,
                    q("period", {"type": "string", "enum": list(PERIODS)}, "Period."),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "Page size."),
                    q("cursor", {"type": "string", "maxLength": 2000}, "From next_cursor."),
                ],
                "responses": {**ok(ref("ReadingPage")), **problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/export/readings": {
            "get": {
                "operationId": "exportReadings",
                "summary": "Readings as a streamed CSV, Parquet or XLSX file",
                "description": "CSV re-imports with `envmon import`. Reviewed data: readings "
                "a reviewer invalidated are left out. Limits: the range and stations × days "
                "(settings).",
                "parameters": [
                    *READING_FILTERS,
                    q(
                        "period",
                        {"type": "string", "enum": list(PERIODS), "default": "1h"},
                        "Period (default 1h).",
                    ),
                    q(
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
                    **problems(400, 401, 404, 429, 503),
                },
            }
        },
        "/api/v1/aqi": {
            "get": {
                "operationId": "getAqi",
                "summary": "Hourly (station) or daily (station, city, zone) AQI",
                "parameters": [
                    q(
                        "resolution",
                        {"type": "string", "enum": ["daily", "hourly"], "default": "daily"},
                        "daily: from/to are dates; hourly: times.",
                    ),
                    q("station", STATION_LIST, "Air stations; all if absent.", explode=False),
                    q("region", REGION, "City or zone."),
                    q("from", {"type": "string", "pattern": MOMENT_RE}, "Start.", required=True),
                    q(
                        "to",
                        {"type": "string", "pattern": MOMENT_RE},
                        "End (excl.).",
                        required=True,
                    ),
                ],
                "responses": {**ok(ref("AqiResponse")), **problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/water": {
            "get": {
                "operationId": "getWater",
                "summary": "GB 3838 class per section and month",
                "parameters": [
                    q("station", STATION_LIST, "Water sections; all if absent.", explode=False),
                    q("from", {"type": "string", "pattern": MONTH_RE}, "YYYY-MM.", required=True),
                    q(
                        "to",
                        {"type": "string", "pattern": MONTH_RE},
                        "YYYY-MM (excl.).",
                        required=True,
                    ),
                    q("parameters", BOOL, "Include each parameter's monthly value."),
                ],
                "responses": {**ok(ref("WaterResponse")), **problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/targets": {
            "get": {
                "operationId": "getTargets",
                "summary": "The year against the zone's targets (`envmon evaluate --json`)",
                "parameters": [
                    q("year", {"type": "integer", "minimum": 2000, "maximum": 2099}, "Year."),
                    q("region", REGION, "Region."),
                    q("as_of", {"type": "string", "pattern": DATE_RE}, "Evaluate as of."),
                    q("edition", {"type": "integer", "enum": [2012, 2026]}, "Force an edition."),
                ],
                "responses": {**ok(ref("Targets")), **problems(400, 401, 422, 503)},
            }
        },
        "/api/v1/trends": {
            "get": {
                "operationId": "getTrend",
                "summary": "Theil–Sen slope and Mann–Kendall test on monthly means",
                "parameters": [
                    q(
                        "parameter",
                        {"type": "string", "enum": [*AIR_COLUMNS, *sorted(WATER_PARAMETERS)]},
                        "Parameter (o3 = MDA8).",
                        required=True,
                    ),
                    q("station", {"type": "string", "maxLength": 64}, "A station or section."),
                    q("region", REGION, "Or a region (air)."),
                    q("from", {"type": "string", "pattern": MONTH_RE}, "First month."),
                    q("to", {"type": "string", "pattern": MONTH_RE}, "Month after the last."),
                    q("method", {"type": "string", "enum": list(METHODS)}, "Deseasonalisation."),
                    q("alpha", {"type": "number", "minimum": 0.001, "maximum": 0.2}, "Level."),
                ],
                "responses": {**ok(ref("TrendResponse")), **problems(400, 401, 404, 503)},
            }
        },
        "/api/v1/annual": {
            "get": {
                "operationId": "getAnnual",
                "summary": "HJ 663 annual statistics, comprehensive index and rankings",
                "parameters": [
                    q(
                        "year",
                        {"type": "integer", "minimum": 2000, "maximum": 2099},
                        "Year.",
                        required=True,
                    ),
                    q("as_of", {"type": "string", "pattern": DATE_RE}, "Data up to this day."),
                    q("edition", {"type": "integer", "enum": [2012, 2026]}, "One edition only."),
                ],
                "responses": {**ok(ref("Annual")), **read},
            }
        },
        "/api/v1/alerts": {
            "get": {
                "operationId": "listAlerts",
                "summary": "Alert episodes",
                "parameters": [
                    q("state", {"type": "string", "enum": ["open", "all"]}, "Open only (default)."),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "At most."),
                ],
                "responses": {
                    **ok(obj({"count": INT, "items": {"type": "array", "items": ref("Alert")}})),
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
                            "schema": obj(
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
                    **ok(obj({"id": INT, "acknowledged": BOOL, "by": STR, "note": n(STR)})),
                    **problems(400, 401, 403, 404, 413, 503),
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
                            "schema": obj(
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
                    **ok(
                        obj(
                            {
                                "id": INT,
                                "rule": n(STR),
                                "station": n(STR),
                                "city": n(STR),
                                "starts_at": STR,
                                "ends_at": STR,
                                "created_by": STR,
                                "comment": n(STR),
                            }
                        ),
                        "Created",
                        201,
                    ),
                    **problems(400, 401, 403, 413, 503),
                },
            }
        },
        "/api/v1/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness and database reachability (no token)",
                "security": [],
                "responses": {
                    **ok(ref("Health")),
                    "503": {
                        "description": "The database is unreachable.",
                        "content": {J: {"schema": ref("Health")}},
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
                    **problems(401),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no token)",
                "security": [],
                "responses": ok({"type": "object"}),
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
        "paths": {**paths, **export_paths(), **index_paths(), **review_paths()},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
    }
