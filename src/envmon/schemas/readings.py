"""Readings in flight: raw input → validated columnar batches + quarantined rejects.

Every source (HJ 212 frames, HTTP pollers, file imports) hands raw readings to
one ``Validator``. What passes becomes a ``ReadingBatch`` (columnar, numpy) for
the writer; what fails becomes a ``Rejection`` carrying its raw form, the
source and the reason, stored in ``rejected`` — nothing a station sent is
dropped silently.

Validation is vectorised (pandas): a million-row import validates in about a
second, and the checks are the same ones a single HJ 212 frame goes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from envmon import timeutil
from envmon.parameters import BY_CODE, PERIODS, Parameter

FLAGS = frozenset("NFMSDCTB")  # HJ 212-2017 Table 8 data flags
EARLIEST = pd.Timestamp("2000-01-01T00:00:00+08:00")
# An offset or Z at the end of an ISO 8601 time: otherwise the time is Beijing time.
_AWARE = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True, slots=True)
class RawReading:
    """One reading as a source sent it, before validation."""

    station: str
    parameter: str
    time: datetime | str
    value: float | str | None
    flag: str = "N"
    period: str = "1h"
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    source: str
    raw: str
    reason: str
    station_id: str | None = None
    parameter: str | None = None
    ts: datetime | None = None
    line: int | None = None  # where it stood in an imported file (not stored)


@dataclass(slots=True)
class ReadingBatch:
    """Validated readings, columnar. ``ts`` is UTC ``datetime64[us]``."""

    source: str
    station_id: np.ndarray[Any, np.dtype[np.object_]]
    parameter: np.ndarray[Any, np.dtype[np.object_]]
    period: np.ndarray[Any, np.dtype[np.object_]]
    ts: np.ndarray[Any, np.dtype[np.datetime64]]
    value: np.ndarray[Any, np.dtype[np.float64]]
    flag: np.ndarray[Any, np.dtype[np.object_]]

    def __len__(self) -> int:
        return int(self.value.shape[0])

    @classmethod
    def empty(cls, source: str) -> ReadingBatch:
        o = np.array([], dtype=object)
        return cls(
            source,
            o,
            o.copy(),
            o.copy(),
            np.array([], dtype="datetime64[us]"),
            np.array([], dtype=np.float64),
            o.copy(),
        )

    def take(self, index: np.ndarray[Any, Any]) -> ReadingBatch:
        return ReadingBatch(
            self.source,
            self.station_id[index],
            self.parameter[index],
            self.period[index],
            self.ts[index],
            self.value[index],
            self.flag[index],
        )

    @classmethod
    def concat(cls, batches: Sequence[ReadingBatch]) -> ReadingBatch:
        if not batches:
            raise ValueError("nothing to concatenate")
        return cls(
            batches[0].source,
            np.concatenate([b.station_id for b in batches]),
            np.concatenate([b.parameter for b in batches]),
            np.concatenate([b.period for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.flag for b in batches]),
        )

    def rows(self) -> Iterable[tuple[str, str, str, datetime, float, str]]:
        """Row view (for small batches and tests)."""
        ts = pd.DatetimeIndex(self.ts).tz_localize("UTC").tz_convert(timeutil.BEIJING)
        yield from zip(
            self.station_id.tolist(),
            self.parameter.tolist(),
            self.period.tolist(),
            ts.to_pydatetime().tolist(),
            self.value.tolist(),
            self.flag.tolist(),
            strict=True,
        )


@dataclass(slots=True)
class ValidationResult:
    batch: ReadingBatch
    rejected: list[Rejection] = field(default_factory=list)


def parse_times(times: pd.Series) -> pd.Series:
    """ISO 8601 strings (or datetimes) → UTC timestamps; NaT where unreadable.

    A time without an offset is Beijing time. Long-format data repeat each
    time stamp once per station and parameter, so only the distinct strings
    are parsed.
    """
    codes, uniques = pd.factorize(times, use_na_sentinel=True)
    u = pd.Series(uniques, dtype=object)
    out = pd.Series(pd.NaT, index=u.index, dtype="datetime64[us, UTC]")
    if len(u):
        as_text = u.map(lambda v: v.isoformat() if isinstance(v, datetime) else str(v).strip())
        aware = as_text.str.contains(_AWARE, regex=True)
        if aware.any():
            out[aware] = pd.to_datetime(
                as_text[aware], format="ISO8601", utc=True, errors="coerce"
            ).astype("datetime64[us, UTC]")
        naive = ~aware
        if naive.any():
            parsed = pd.to_datetime(as_text[naive], format="ISO8601", errors="coerce")
            out[naive] = (
                parsed.dt.tz_localize(timeutil.BEIJING_TZ_NAME, ambiguous="NaT", nonexistent="NaT")
                .dt.tz_convert("UTC")
                .astype("datetime64[us, UTC]")
            )
    values = out.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    if len(values) == 0:
        values = np.array(["NaT"], dtype="datetime64[us]")
    result = np.where(codes >= 0, values[np.maximum(codes, 0)], np.datetime64("NaT", "us"))
    return pd.Series(
        pd.DatetimeIndex(result.astype("datetime64[us]")).tz_localize("UTC"), index=times.index
    )


def _line(index: pd.Index, i: int) -> int | None:
    label = index[i]
    return int(label) if isinstance(label, (int, np.integer)) else None


class Validator:
    """Checks readings against the station catalog and the parameter table.

    ``stations`` maps station id → kind (air|water|weather). ``clock`` gives
    "now" for the future-timestamp check (injectable for replays and tests).
    """

    def __init__(
        self,
        stations: Mapping[str, str],
        *,
        parameters: Mapping[str, Parameter] = BY_CODE,
        max_future: timedelta = timedelta(minutes=10),
        clock: Any = timeutil.now,
    ) -> None:
        self.stations = dict(stations)
        self.parameters = dict(parameters)
        self.max_future = max_future
        self.clock = clock

    def validate_frame(
        self, df: pd.DataFrame, source: str, raw: pd.Series | None = None
    ) -> ValidationResult:
        """Validate a frame with text columns station, parameter, time, value[, flag, period].

        ``raw`` is each row's original form (a CSV line); rebuilt from the
        columns when missing.
        """
        n = len(df)
        if n == 0:
            return ValidationResult(ReadingBatch.empty(source))
        station = (
            df["station"].astype(object).fillna("").map(str.strip)
            if df["station"].dtype == object
            else df["station"].astype(str)
        )
        parameter = df["parameter"].astype(object).fillna("").astype(str).str.strip()
        flag = (
            df["flag"].astype(object).fillna("").astype(str).str.strip().str.upper()
            if "flag" in df
            else pd.Series("", index=df.index)
        )
        flag = flag.mask(flag == "", "N")
        period = (
            df["period"].astype(object).fillna("").astype(str).str.strip()
            if "period" in df
            else pd.Series("", index=df.index)
        )
        period = period.mask(period == "", "1h")
        value_text = df["value"]
        if value_text.dtype == object:
            value = pd.to_numeric(value_text.astype(str).str.strip(), errors="coerce")
            missing_value = value_text.isna() | (value_text.astype(str).str.strip() == "")
        else:
            value = value_text.astype(float)
            missing_value = value.isna()
        ts = parse_times(df["time"])

        reasons = np.full(n, None, dtype=object)

        def fail(mask: Any, message: Any) -> None:
            # Earlier checks win: only rows without a reason yet get this one.
            m = np.asarray(mask, dtype=bool) & (reasons == None)  # noqa: E711
            if m.any():
                if isinstance(message, str):
                    reasons[m] = message
                else:
                    reasons[m] = np.asarray(message, dtype=object)[m]

        st_kind = station.map(self.stations)
        fail(st_kind.isna(), "unknown station '" + station + "'")
        par_kind = parameter.map({k: p.kind for k, p in self.parameters.items()})
        fail(par_kind.isna(), "unknown parameter '" + parameter + "'")
        fail(
            st_kind != par_kind,
            "parameter '"
            + parameter
            + "' is not measured at "
            + st_kind.fillna("?")
            + " station '"
            + station
            + "'",
        )
        fail(
            ~period.isin(PERIODS),
            "unknown period '" + period + "' (expected one of " + "|".join(PERIODS) + ")",
        )
        fail(~flag.isin(FLAGS), "unknown data flag '" + flag + "' (HJ 212: N F M S D C T B)")
        fail(ts.isna(), "unreadable time '" + df["time"].astype(str) + "'")
        fail(ts < EARLIEST, "time before 2000-01-01")
        horizon = pd.Timestamp(self.clock()) + self.max_future
        fail(ts > horizon, "time in the future (beyond " + str(self.max_future) + ")")
        fail(missing_value, "missing value")
        fail(value.isna(), "value '" + value_text.astype(str) + "' is not a number")
        fail(~np.isfinite(value.fillna(0.0)), "value is not finite")
        low = parameter.map({k: p.low for k, p in self.parameters.items()})
        high = parameter.map({k: p.high for k, p in self.parameters.items()})
        conc = parameter.map({k: p.is_concentration for k, p in self.parameters.items()})
        fail(
            conc.fillna(False).astype(bool) & (value < 0),
            "negative concentration " + value.astype(str),
        )
        unit = parameter.map({k: p.unit for k, p in self.parameters.items()}).fillna("")
        fail(
            (value < low) | (value > high),
            "value "
            + value.astype(str)
            + " "
            + unit
            + " outside the plausible range ["
            + low.astype(str)
            + ", "
            + high.astype(str)
            + "]",
        )

        bad = reasons != None  # noqa: E711
        good = ~bad
        batch = ReadingBatch(
            source,
            station.to_numpy(dtype=object)[good],
            parameter.to_numpy(dtype=object)[good],
            period.to_numpy(dtype=object)[good],
            ts.to_numpy(dtype="datetime64[us]")[good],
            value.to_numpy(dtype=np.float64, na_value=np.nan)[good],
            flag.to_numpy(dtype=object)[good],
        )
        rejected: list[Rejection] = []
        if bad.any():
            idx = np.flatnonzero(bad)
            if raw is None:
                cols = [
                    c
                    for c in ("station", "parameter", "time", "value", "flag", "period")
                    if c in df
                ]
                raw = df[cols].astype(object).fillna("").astype(str).agg(",".join, axis=1)
            raw_bad = raw.iloc[idx].tolist()
            ts_bad = ts.iloc[idx]
            for j, i in enumerate(idx):
                t = ts_bad.iloc[j]
                rejected.append(
                    Rejection(
                        source=source,
                        raw=str(raw_bad[j]),
                        reason=str(reasons[i]),
                        station_id=station.iloc[i] or None,
                        parameter=parameter.iloc[i] or None,
                        ts=None if pd.isna(t) else t.to_pydatetime(),
                        line=_line(df.index, int(i)),
                    )
                )
        return ValidationResult(batch, rejected)

    def validate(self, readings: Sequence[RawReading], source: str) -> ValidationResult:
        """Validate a handful of readings from a stream source (HJ 212, a poller)."""
        df = pd.DataFrame(
            {
                "station": [r.station for r in readings],
                "parameter": [r.parameter for r in readings],
                "time": pd.Series([r.time for r in readings], dtype=object),
                "value": pd.Series(
                    ["" if r.value is None else str(r.value) for r in readings], dtype=object
                ),
                "flag": [r.flag for r in readings],
                "period": [r.period for r in readings],
            }
        )
        raw = pd.Series(
            [
                r.raw or f"{r.station},{r.parameter},{r.time},{r.value},{r.flag},{r.period}"
                for r in readings
            ],
            dtype=object,
        )
        return self.validate_frame(df, source, raw)
