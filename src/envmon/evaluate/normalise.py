"""Weather-normalised PM2.5: how much of a change is the measures', how much the weather's.

The method of Grange et al. (2018, ACP 18:6223, "Random forest meteorological
normalisation models for Swiss PM10 trend analysis"; R package ``rmweather``), as
Vu et al. (2019, ACP 19:11303) applied it to Beijing's Clean Air Action:

1. a tree ensemble learns the pollutant from the weather and time variables —
   here daily means of the zone's national weather stations in the unit's city
   (temperature, humidity, pressure, wind speed, the wind direction as a unit
   vector, precipitation), the day of the year, the weekday and a trend term
   (days since the start);
2. for every day the model predicts again with all variables but the trend
   drawn at random from the whole record, ``samples`` times, and the mean of
   those predictions is the weather-normalised value (``rmweather::normalise``
   resamples every variable but ``date_unix``): what the day would have been
   under average weather, keeping only the slow change.

Daily rather than hourly values (the assessment's unit is the day, and a year of
the zone fits the 60 s budget of ``bench/``). The learner is scikit-learn's
histogram gradient boosting (boosted trees, which both papers name as the
alternative to random forests; it handles missing weather natively and predicts
hundreds of thousands of resampled days in a second).

The results: observed and normalised monthly means, the annual means of the
baseline year (2020) and of the year, the normalised change between them and its
share of the observed change (the rest is the weather's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from envmon.catalog.names import CITY_REGION
from envmon.review import invalid_filter

Conn = AsyncConnection[TupleRow]
WEATHER: Final = ("air_temp", "rh", "pressure", "wind_speed", "precip")
FEATURES: Final = (*WEATHER, "wind_u", "wind_v", "doy", "weekday")
SAMPLES: Final = 100
MIN_DAYS: Final = 180  # fewer observed days than this: no model
BASELINE_YEAR: Final = 2020
Status = Literal["ok", "insufficient_data"]
METHOD: Final = (
    "meteorological normalisation (Grange et al. 2018, ACP 18:6223; Vu et al. 2019, ACP "
    "19:11303): boosted trees on daily weather and time, all but the trend resampled"
)


@dataclass(frozen=True)
class Normalised:
    """Observed and weather-normalised values of one unit (daily series and summaries)."""

    status: Status
    reason: str | None
    days: pd.DataFrame  # index: day; columns observed, normalised
    baseline_year: int
    year: int

    def monthly(self) -> list[dict[str, Any]]:
        if self.days.empty:
            return []
        frame = self.days.copy()
        frame.index = pd.to_datetime(frame.index)
        means = frame.resample("MS").mean()
        return [
            {
                "month": f"{m:%Y-%m}",
                "observed": _num(row.observed),
                "normalised": _num(row.normalised),
            }
            for m, row in means.iterrows()
        ]

    def annual(self, year: int) -> tuple[float | None, float | None]:
        if self.days.empty:
            return None, None
        sel = self.days[[d.year == year for d in self.days.index]]
        return _num(sel["observed"].mean()), _num(sel["normalised"].mean())

    def summary(self) -> dict[str, Any]:
        obs0, norm0 = self.annual(self.baseline_year)
        obs1, norm1 = self.annual(self.year)
        d_obs = None if obs0 is None or obs1 is None else obs1 - obs0
        d_norm = None if norm0 is None or norm1 is None else norm1 - norm0
        share = d_norm / d_obs if d_obs and d_norm is not None and abs(d_obs) > 1e-9 else None
        return {
            "status": self.status,
            "reason": self.reason,
            "baseline_year": self.baseline_year,
            "year": self.year,
            "observed": {"baseline": obs0, "year": obs1, "change": d_obs},
            "normalised": {"baseline": norm0, "year": norm1, "change": d_norm},
            "relative_change_normalised": d_norm / norm0 if d_norm is not None and norm0 else None,
            "share_of_observed_change": share,
            "weather_share": None if share is None else 1 - share,
        }


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def normalise(
    days: pd.DataFrame,
    *,
    year: int,
    baseline_year: int = BASELINE_YEAR,
    samples: int = SAMPLES,
    seed: int = 13,
) -> Normalised:
    """Fit and normalise one unit's days (pure: a frame in, the series out).

    ``days``: index = day (``date``), columns ``pm25`` (NaN = invalid day) and the
    names of ``WEATHER`` plus ``wind_dir_sin``/``wind_dir_cos`` (NaN allowed).
    """
    frame = days.sort_index()
    features = _features(frame)
    y = frame["pm25"].to_numpy(dtype=float)
    known = np.isfinite(y)
    if int(known.sum()) < MIN_DAYS:
        return Normalised(
            "insufficient_data",
            f"{int(known.sum())} valid days (at least {MIN_DAYS} are needed)",
            pd.DataFrame(columns=["observed", "normalised"]),
            baseline_year,
            year,
        )
    x = features.to_numpy(dtype=float)
    weather = [i for i, name in enumerate(FEATURES) if name not in ("doy", "weekday")]
    present = ~np.all(np.isnan(x[known]), axis=0)
    if not present[weather].any():
        return Normalised(
            "insufficient_data",
            "no weather data for the unit's cities (national weather stations)",
            pd.DataFrame(columns=["observed", "normalised"]),
            baseline_year,
            year,
        )
    x = x[:, present]  # a variable never observed cannot be learnt (nor binned)
    trend = np.array([(d - frame.index[0]).days for d in frame.index], dtype=float)
    model = HistGradientBoostingRegressor(
        max_iter=150, learning_rate=0.1, min_samples_leaf=10, random_state=seed
    )
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), size=(len(x), samples))
    resampled = np.column_stack([np.repeat(trend, samples), x[draws.ravel()]])
    # One thread: OpenMP's spinning threads on a shared, loaded host made a 1 s fit take 90 s.
    with threadpool_limits(1):
        model.fit(np.column_stack([trend, x])[known], y[known])
        normalised = model.predict(resampled).reshape(len(x), samples).mean(axis=1)
    out = pd.DataFrame({"observed": y, "normalised": normalised}, index=frame.index)
    return Normalised("ok", None, out, baseline_year, year)


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    idx = pd.to_datetime(frame.index)
    out = pd.DataFrame(index=frame.index)
    for name in WEATHER:
        out[name] = frame.get(name, np.nan)
    ws = out["wind_speed"]
    out["wind_u"] = ws * frame.get("wind_dir_sin", np.nan)
    out["wind_v"] = ws * frame.get("wind_dir_cos", np.nan)
    out["doy"] = idx.day_of_year.to_numpy()
    out["weekday"] = idx.day_of_week.to_numpy()
    return out[list(FEATURES)]


_WEATHER_SQL: Final = (
    "SELECT s.city, bj_day(r.ts) AS day,"
    + ",".join(f" avg(r.value) FILTER (WHERE r.parameter = '{p}')" for p in WEATHER)
    + ", avg(sin(radians(r.value))) FILTER (WHERE r.parameter = 'wind_dir'),"
    " avg(cos(radians(r.value))) FILTER (WHERE r.parameter = 'wind_dir')"
    " FROM reading r JOIN station s ON s.id = r.station_id"
    " WHERE s.kind = 'weather' AND s.control_level = 'national' AND r.period = '1h'"
    " AND r.parameter = ANY(%s) AND r.ts >= bj_day_start(%s::date)"
    " AND r.ts < bj_day_start(%s::date)"
    " AND s.city = ANY(%s) AND " + invalid_filter("r") + " GROUP BY 1, 2"
)


async def weather_days(conn: Conn, cities: list[str], start: date, end: date) -> pd.DataFrame:
    """Daily weather of the cities' national stations (mean over the cities), by day."""
    cur = await conn.execute(_WEATHER_SQL, ([*WEATHER, "wind_dir"], start, end, cities))
    cols = ["city", "day", *WEATHER, "wind_dir_sin", "wind_dir_cos"]
    frame = pd.DataFrame(await cur.fetchall(), columns=cols)
    if frame.empty:
        return pd.DataFrame(columns=cols[2:])
    values = frame.drop(columns="city").groupby("day").mean()
    return values.astype(float)


async def pm25_days(
    conn: Conn, start: date, end: date, *, station: str | None, region: str | None
) -> pd.Series:
    if station is not None:
        query = "SELECT day, pm25 FROM air_day WHERE station_id = %s AND day >= %s AND day < %s"
        unit = station
    else:
        query = "SELECT day, pm25 FROM region_day WHERE region = %s AND day >= %s AND day < %s"
        unit = region or "zone"
    rows = await (await conn.execute(query, (unit, start, end))).fetchall()
    return pd.Series({r[0]: (np.nan if r[1] is None else float(r[1])) for r in rows}, dtype=float)


async def cities_of(conn: Conn, station: str | None, region: str | None) -> list[str]:
    """The cities whose weather stations describe a station's or region's weather."""
    if station is not None:
        cur = await conn.execute("SELECT city FROM station WHERE id = %s", (station,))
        row = await cur.fetchone()
        return [row[0]] if row else []
    r = region or "zone"
    return [c for c, reg in CITY_REGION.items() if r in ("zone", reg)]


async def normalised_trend(
    conn: Conn,
    year: int,
    *,
    station: str | None = None,
    region: str | None = None,
    baseline_year: int = BASELINE_YEAR,
    samples: int = SAMPLES,
) -> Normalised:
    """Observed vs weather-normalised PM2.5 of a station or region, baseline year … year."""
    start, end = date(min(baseline_year, year), 1, 1), date(year + 1, 1, 1)
    cities = await cities_of(conn, station, region)
    pm = await pm25_days(conn, start, end, station=station, region=region)
    weather = await weather_days(conn, cities, start, end)
    days = pd.DataFrame({"pm25": pm}).join(weather, how="left")
    return normalise(days, year=year, baseline_year=baseline_year, samples=samples)
