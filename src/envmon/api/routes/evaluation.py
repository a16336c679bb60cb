"""``/api/v1/targets`` (the ``envmon evaluate`` JSON), ``/trends`` and ``/annual``."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from aiohttp import web

from envmon.api.auth import requires
from envmon.api.keys import SETTINGS
from envmon.api.params import Query
from envmon.api.problems import Problem, bad_request
from envmon.api.routes.common import (
    check_order,
    connection,
    json_response,
    known_stations,
    station_names,
)
from envmon.errors import ConfigError, EnvmonError
from envmon.evaluate import annual as annual_stats
from envmon.evaluate import normalise as nm
from envmon.evaluate import trends as tr
from envmon.evaluate.assessment import evaluate_year
from envmon.evaluate.targets import Target, load_targets
from envmon.parameters import BY_CODE
from envmon.timeutil import now

YEARS = (2000, 2099)
TREND_PARAMETERS = (*tr.AIR_COLUMNS, *sorted(tr.WATER_PARAMETERS))


def targets_path(request: web.Request) -> Path:
    path = request.app[SETTINGS].targets_file
    if path is None:
        raise Problem(503, "no targets file is configured", kind="targets-unavailable")
    return path


def _load_targets(request: web.Request) -> list[Target]:
    try:
        return load_targets(targets_path(request))
    except ConfigError as err:
        raise Problem(503, str(err), kind="targets-unavailable") from err


@requires("read")
async def targets(request: web.Request) -> web.Response:
    q = Query(request.query, ("year", "region", "as_of", "edition"))
    today = now().date()
    year = q.integer("year", low=YEARS[0], high=YEARS[1], default=today.year)
    region = q.region("region", default="zone")
    as_of = q.day("as_of") or today
    edition = q.integer("edition", low=2012, high=2026)
    if edition is not None and edition not in (2012, 2026):
        q.error("edition", "2012 or 2026")
    q.done()
    assert year is not None and region is not None
    if as_of < date(year, 1, 1):
        raise bad_request(
            f"{year} has not begun on {as_of}",
            [{"parameter": "as_of", "message": "must be in or after the year"}],
        )
    tgts = _load_targets(request)
    async with connection(request) as conn:
        try:
            res = await evaluate_year(conn, year, region, tgts, as_of=as_of, edition=edition)
        except ConfigError as err:  # a baseline 'from_data' without that year's data
            raise Problem(422, str(err), kind="baseline-unavailable") from err
        except EnvmonError as err:
            raise bad_request(str(err)) from err
    return json_response(res)


@requires("read")
async def trends(request: web.Request) -> web.Response:
    q = Query(request.query, ("parameter", "station", "region", "from", "to", "method", "alpha"))
    parameter = q.string("parameter", required=True, choices=TREND_PARAMETERS)
    kinds = (tr.parameter_kind(parameter),) if parameter else None
    station = q.station("station", station_names(request), kinds)
    region = q.region("region")
    this_month = now().date().replace(day=1)
    start = q.month("from") or this_month.replace(year=this_month.year - 5)
    end = q.month("to") or this_month
    method = q.string("method", choices=tr.METHODS, default="seasonal_kendall")
    alpha = q.number("alpha", default=0.05, low=0.001, high=0.2)
    if (station is None) == (region is None):
        q.error("station", "give exactly one of station and region")
    if parameter in tr.WATER_PARAMETERS and region is not None:
        q.error("region", "water trends are per section: give station")
    q.done()
    assert parameter is not None and method is not None
    check_order(start, end)
    if (end.year - start.year) * 12 + end.month - start.month > 12 * 30:
        raise bad_request(
            "at most 30 years of months per trend",
            [{"parameter": "from", "message": "range over 30 years"}],
        )
    async with connection(request) as conn:
        if station is not None:
            await known_stations(conn, [station], tr.parameter_kind(parameter))
        series = await tr.monthly_means(conn, parameter, start, end, station=station, region=region)
    result = tr.trend(series, deseasonalise=method, alpha=alpha)  # type: ignore[arg-type]
    p = BY_CODE[parameter]
    return json_response(
        {
            "parameter": parameter,
            "statistic": "daily maximum 8-h mean (MDA8)" if parameter == "o3" else "daily mean",
            "unit": p.unit,
            "station": station,
            "region": region,
            "from": start.strftime("%Y-%m"),
            "to": end.strftime("%Y-%m"),
            "series": [v.as_dict() for v in series],
            "trend": result.as_dict(),
        }
    )


def normalised_query(request: web.Request, *extra: str) -> tuple[Query, dict[str, Any]]:
    """The parameters of the weather-normalised trend (JSON and export)."""
    q = Query(request.query, ("station", "region", "year", "baseline_year", *extra))
    station = q.station("station", station_names(request), ("air",))
    region = q.region("region")
    year = q.integer("year", low=2001, high=YEARS[1], required=True)
    base = q.integer("baseline_year", low=YEARS[0], high=YEARS[1], default=nm.BASELINE_YEAR)
    if station is not None and region is not None:
        q.error("region", "give either station or region, not both")
    if year is not None and base is not None and base >= year:
        q.error("baseline_year", "must be before year")
    return q, {"station": station, "region": region, "year": year, "baseline_year": base}


async def run_normalised(request: web.Request, args: dict[str, Any]) -> nm.Normalised:
    async with connection(request) as conn:
        if args["station"] is not None:
            await known_stations(conn, [args["station"]], "air")
        start = date(args["baseline_year"], 1, 1)
        end = date(args["year"] + 1, 1, 1)
        pm = await nm.pm25_days(conn, start, end, station=args["station"], region=args["region"])
        cities = await nm.cities_of(conn, args["station"], args["region"])
        weather = await nm.weather_days(conn, cities, start, end)
    days = pd.DataFrame({"pm25": pm}).join(weather, how="left")
    # The fit is CPU work: off the event loop.
    return await asyncio.to_thread(
        nm.normalise, days, year=args["year"], baseline_year=args["baseline_year"]
    )


@requires("read")
async def normalised(request: web.Request) -> web.Response:
    q, args = normalised_query(request)
    q.done()
    res = await run_normalised(request, args)
    unit = args["station"] or args["region"] or "zone"
    return json_response(
        {
            "parameter": "pm25",
            "unit": "µg/m³",
            "scope": "station" if args["station"] else "region",
            "id": unit,
            "method": nm.METHOD,
            **res.summary(),
            "months": res.monthly(),
        }
    )


@requires("read")
async def annual(request: web.Request) -> web.Response:
    q = Query(request.query, ("year", "as_of", "edition"))
    today = now().date()
    year = q.integer("year", low=YEARS[0], high=YEARS[1], required=True)
    as_of = q.day("as_of") or today
    edition = q.integer("edition", low=2012, high=2026)
    if edition is not None and edition not in (2012, 2026):
        q.error("edition", "2012 or 2026")
    q.done()
    assert year is not None
    async with connection(request) as conn:
        res = await annual_stats.annual_report(
            conn, year, editions=[edition] if edition else None, as_of=as_of
        )
    return json_response(res)


ROUTES = [
    web.get("/api/v1/trends/normalised", normalised, name="trends_normalised"),
    web.get("/api/v1/targets", targets, name="targets"),
    web.get("/api/v1/trends", trends, name="trends"),
    web.get("/api/v1/annual", annual, name="annual"),
]
