"""The OpenAPI paths of the analysts' exports and of the index and docs pages."""

from __future__ import annotations

from typing import Any, Final

from envmon.api.export import CONTENT_TYPES
from envmon.api.openapi_common import (
    DATE_RE,
    MOMENT_RE,
    MONTH_RE,
    REGION,
    STATION_LIST,
    J,
    obj,
    ok,
    problems,
    q,
)

_FILE: Final = {
    "200": {
        "description": "The file (attachment), streamed.",
        "content": {
            ct.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
            for ct in CONTENT_TYPES.values()
        },
    },
    **problems(400, 401, 404, 429, 503),
}
_FORMAT: Final = q(
    "format",
    {"type": "string", "enum": list(CONTENT_TYPES), "default": "csv"},
    "File format.",
)
_LANG: Final = q(
    "lang",
    {"type": "string", "enum": ["zh", "en"], "default": "zh"},
    "Column headers in Chinese or English; each numeric header names its unit.",
)
_STATIONS: Final = "Air stations by id, pinyin or Chinese name (comma-separated); all if absent."
_NOTE: Final = (
    " Values are rounded to their published precision (GB/T 8170: whole µg/m³, CO 0.1 mg/m³); "
    "times are Beijing time (CSV: ISO 8601 with +08:00)."
)


_NORMALISED_PARAMS: Final = [
    q("station", {"type": "string", "maxLength": 64}, "An air station (id, pinyin, 中文名)."),
    q("region", REGION, "Or a region (default: the zone)."),
    q("year", {"type": "integer", "minimum": 2001, "maximum": 2099}, "Year.", required=True),
    q(
        "baseline_year",
        {"type": "integer", "minimum": 2000, "maximum": 2099, "default": 2020},
        "Baseline year (before year).",
    ),
]


def export_paths() -> dict[str, Any]:
    return {
        "/api/v1/trends/normalised": {
            "get": {
                "operationId": "getNormalisedTrend",
                "summary": "Observed vs weather-normalised PM2.5 (Grange et al. 2018)",
                "description": "Boosted trees learn daily PM2.5 from the weather of the "
                "national weather stations and time; every variable but the trend is "
                "resampled to give each day's value under average weather. The normalised "
                "change from baseline_year to year and its share of the observed change.",
                "parameters": _NORMALISED_PARAMS,
                "responses": {
                    **ok({"type": "object", "required": ["status", "months"]}),
                    **problems(400, 401, 404, 503),
                },
            }
        },
        "/api/v1/export/normalised": {
            "get": {
                "operationId": "exportNormalisedTrend",
                "summary": "Monthly observed and weather-normalised PM2.5 as a file",
                "parameters": [*_NORMALISED_PARAMS, _FORMAT, _LANG],
                "responses": _FILE,
            }
        },
        "/api/v1/export/aqi": {
            "get": {
                "operationId": "exportAqi",
                "summary": "Daily or hourly AQI with IAQI per pollutant, as CSV, XLSX or Parquet",
                "description": "Daily: per air station or per region (city or zone, HJ 663 "
                "means of the assessed stations). Hourly: per station." + _NOTE,
                "parameters": [
                    q(
                        "resolution",
                        {"type": "string", "enum": ["daily", "hourly"], "default": "daily"},
                        "daily: from/to are dates; hourly: times.",
                    ),
                    q("station", STATION_LIST, _STATIONS, explode=False),
                    q("region", REGION, "City or zone (daily only)."),
                    q("from", {"type": "string", "pattern": MOMENT_RE}, "Start.", required=True),
                    q(
                        "to",
                        {"type": "string", "pattern": MOMENT_RE},
                        "End (excl.).",
                        required=True,
                    ),
                    _FORMAT,
                    _LANG,
                ],
                "responses": _FILE,
            }
        },
        "/api/v1/export/statistics": {
            "get": {
                "operationId": "exportStatistics",
                "summary": "HJ 663 daily, monthly or annual statistics per station and region",
                "description": "Monthly and annual: means (PM dust-deducted and as measured), "
                "CO P95, O3 MDA8 P90, comprehensive index, good days. Daily: the valid daily "
                "values with AQI. Regions and stations unless one is asked for." + _NOTE,
                "parameters": [
                    q(
                        "period",
                        {
                            "type": "string",
                            "enum": ["daily", "monthly", "annual"],
                            "default": "annual",
                        },
                        "Statistics period.",
                    ),
                    q("station", STATION_LIST, _STATIONS, explode=False),
                    q("region", REGION, "One region only."),
                    q("from", {"type": "string", "pattern": DATE_RE}, "First day.", required=True),
                    q("to", {"type": "string", "pattern": DATE_RE}, "Day after.", required=True),
                    q("edition", {"type": "integer", "enum": [2012, 2026]}, "Force an edition."),
                    _FORMAT,
                    _LANG,
                ],
                "responses": _FILE,
            }
        },
        "/api/v1/export/water": {
            "get": {
                "operationId": "exportWater",
                "summary": "GB 3838 class per section and month with each parameter's mean",
                "parameters": [
                    q(
                        "station",
                        STATION_LIST,
                        "Water sections by id, pinyin or Chinese name; all if absent.",
                        explode=False,
                    ),
                    q("from", {"type": "string", "pattern": MONTH_RE}, "YYYY-MM.", required=True),
                    q(
                        "to",
                        {"type": "string", "pattern": MONTH_RE},
                        "YYYY-MM (excl.).",
                        required=True,
                    ),
                    _FORMAT,
                    _LANG,
                ],
                "responses": _FILE,
            }
        },
    }


def index_paths() -> dict[str, Any]:
    index = obj(
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    )
    html = {"text/html": {"schema": {"type": "string"}}}

    def page(op: str, summary: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": op,
                "summary": summary,
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {J: {"schema": index}, **html}}
                },
            }
        }

    return {
        "/": page("root", "Index of links (no token); HTML for browsers"),
        "/api/v1/": page("apiIndex", "Index of links (no token); HTML for browsers"),
        "/api/v1/docs": {
            "get": {
                "operationId": "docs",
                "summary": "This document as an HTML page (no token)",
                "security": [],
                "responses": {"200": {"description": "OK", "content": html}},
            }
        },
    }
