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
from envmon.catalog.model import Station
from envmon.catalog.names import StationNames
from envmon.parameters import BY_CODE, PERIODS, Parameter

FLAGS = frozenset("NFMSDCTB")  # HJ 212-2017 Table 8 data flags
# Which parameter kinds a station of each kind measures: ambient-air stations
# carry meteorological sensors too (HJ 212 a01001…a01008 in their uploads).
MEASURES: dict[str, frozenset[str]] = {
    "air": frozenset({"air", "weather"}),
    "water": frozenset({"water"}),
    "weather": frozenset({"weather"}),
}
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


def _keys(column: pd.Series, clean: Any) -> tuple[list[str], np.ndarray[Any, Any]]:
    """Distinct cleaned values of a key column and each row's code into them.

    The last value is always ``""``: missing cells get its code, and lookups of
    ``""`` fail like any unknown value.
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    raw_values = [clean(str(u)) for u in uniques]
    # Cleaning may merge distinct raw values ('pm25 ' and 'pm25'): re-factorise.
    values: list[str] = []
    index: dict[str, int] = {}
    remap = np.empty(len(raw_values) + 1, dtype=np.int64)
    for k, v in enumerate(raw_values):
        remap[k] = index.setdefault(v, len(index))
        if remap[k] == len(values):
            values.append(v)
    remap[len(raw_values)] = index.setdefault("", len(index))
    if remap[len(raw_values)] == len(values):
        values.append("")
    codes = np.where(codes < 0, len(raw_values), codes)
    return values, remap[codes]


def _blank(cell: object) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float):
        return bool(np.isnan(cell))
    return isinstance(cell, str) and not cell.strip()


def _line(index: pd.Index, i: int) -> int | None:
    label = index[i]
    return int(label) if isinstance(label, (int, np.integer)) else None


class Validator:
    """Checks readings against the station catalog and the parameter table.

    ``stations`` maps station id → kind (air|water|weather). ``clock`` gives
    "now" for the future-timestamp check (injectable for replays and tests).
    With ``names``, a file's station column may also hold a Chinese name or
    pinyin (``尖草坪``): it is resolved among the stations of the row's parameter's
    kind (then among all that measure it), and stored under the station's id; a
    name that still fits several stations is rejected as unknown, never guessed.
    """

    def __init__(
        self,
        stations: Mapping[str, str],
        *,
        parameters: Mapping[str, Parameter] = BY_CODE,
        max_future: timedelta = timedelta(minutes=10),
        clock: Any = timeutil.now,
        names: StationNames[Station] | None = None,
    ) -> None:
        self.stations = dict(stations)
        self.names = names
        self.parameters = dict(parameters)
        self.max_future = max_future
        self.clock = clock

    def validate_frame(
        self, df: pd.DataFrame, source: str, raw: pd.Series | None = None
    ) -> ValidationResult:
        """Validate a frame with text columns station, parameter, time, value[, flag, period].

        An optional ``_problem`` column carries a reader's reason to reject a row.

        ``raw`` is each row's original form (a CSV line); rebuilt from the
        columns when missing. Key columns repeat a few distinct values, so
        they are factorised and checked once per distinct value; a reason
        text is only built for the rows that fail.
        """
        n = len(df)
        if n == 0:
            return ValidationResult(ReadingBatch.empty(source))
        station = _keys(df["station"], str.strip)
        parameter = _keys(df["parameter"], str.strip)
        flag = _keys(df["flag"], lambda x: x.strip().upper() or "N") if "flag" in df else None
        period = _keys(df["period"], lambda x: x.strip() or "1h") if "period" in df else None
        value_text = df["value"]
        if value_text.dtype == object or pd.api.types.is_string_dtype(value_text):
            texts = value_text.astype(object).to_numpy()
            value = pd.to_numeric(value_text.astype(object), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            # Blank or absent text is a missing value, not "not a number".
            nan_idx = np.flatnonzero(np.isnan(value))
            missing_value = np.zeros(n, dtype=bool)
            missing_value[nan_idx] = [_blank(t) for t in texts[nan_idx]]
        else:
            texts = value_text.to_numpy(dtype=object)
            value = value_text.to_numpy(dtype=np.float64, na_value=np.nan)
            missing_value = np.isnan(value)
        ts = parse_times(df["time"])
        ts_np = ts.to_numpy(dtype="datetime64[us]")

        reasons = np.full(n, None, dtype=object)

        def fail(mask: Any, message: Any) -> None:
            # Earlier checks win: only rows without a reason yet get this one.
            m = np.asarray(mask, dtype=bool) & (reasons == None)  # noqa: E711
            if m.any():
                idx = np.flatnonzero(m)
                if isinstance(message, str):
                    reasons[idx] = message
                else:
                    reasons[idx] = [message(int(i)) for i in idx]

        if "_problem" in df:
            # A reader's own finding about a row (e.g. more fields than the header).
            problems = df["_problem"].fillna("").astype(str).to_numpy()
            fail(problems != "", lambda i: str(problems[i]))
        st_vals, st_codes = station
        pa_vals, pa_codes = parameter
        if self.names is not None:
            st_vals, st_codes = self._resolve_names(st_vals, st_codes, pa_vals, pa_codes)
        st_kind = np.array([self.stations.get(v) for v in st_vals], dtype=object)
        params = [self.parameters.get(v) for v in pa_vals]
        pa_kind = np.array([p.kind if p else None for p in params], dtype=object)
        sk = st_kind[st_codes]
        pk = pa_kind[pa_codes]
        fail(sk == None, lambda i: f"unknown station '{st_vals[st_codes[i]]}'")  # noqa: E711
        fail(pk == None, lambda i: f"unknown parameter '{pa_vals[pa_codes[i]]}'")  # noqa: E711
        measured = np.zeros(n, dtype=bool)
        for station_kind, parameter_kinds in MEASURES.items():
            measured |= (sk == station_kind) & np.isin(pk, list(parameter_kinds))
        fail(
            ~measured,
            lambda i: (
                f"parameter '{pa_vals[pa_codes[i]]}' is not measured at "
                f"{sk[i]} station '{st_vals[st_codes[i]]}'"
            ),
        )
        if period is not None:
            pe_vals, pe_codes = period
            ok = np.array([v in PERIODS for v in pe_vals])
            fail(
                ~ok[pe_codes],
                lambda i: (
                    f"unknown period '{pe_vals[pe_codes[i]]}' (expected one of "
                    + "|".join(PERIODS)
                    + ")"
                ),
            )
        if flag is not None:
            fl_vals, fl_codes = flag
            ok = np.array([v in FLAGS for v in fl_vals])
            fail(
                ~ok[fl_codes],
                lambda i: f"unknown data flag '{fl_vals[fl_codes[i]]}' (HJ 212: N F M S D C T B)",
            )
        times = df["time"].to_numpy(dtype=object)
        nat = np.isnat(ts_np)
        fail(nat, lambda i: f"unreadable time '{times[i]}'")
        with np.errstate(invalid="ignore"):
            fail(
                ~nat & (ts_np < EARLIEST.tz_convert(None).to_datetime64()), "time before 2000-01-01"
            )
            horizon = pd.Timestamp(self.clock()) + self.max_future
            fail(
                ~nat & (ts_np > horizon.tz_convert(None).to_datetime64()),
                f"time in the future (beyond {self.max_future})",
            )
        fail(missing_value, "missing value")
        fail(np.isnan(value), lambda i: f"value '{texts[i]}' is not a number")
        fail(~np.isfinite(value), "value is not finite")
        low = np.array([p.low if p else -np.inf for p in params])[pa_codes]
        high = np.array([p.high if p else np.inf for p in params])[pa_codes]
        conc = np.array([bool(p and p.is_concentration) for p in params])[pa_codes]
        with np.errstate(invalid="ignore"):
            fail(conc & (value < 0), lambda i: f"negative concentration {value[i]:g}")

            def out_of_range(i: int) -> str:
                p = params[pa_codes[i]]
                assert p is not None
                return (
                    f"value {value[i]:g} {p.unit} outside the plausible range "
                    f"[{p.low:g}, {p.high:g}]"
                )

            fail((value < low) | (value > high), out_of_range)

        bad = reasons != None  # noqa: E711
        good = ~bad
        n_good = int(good.sum())
        batch = ReadingBatch(
            source,
            np.asarray(st_vals, dtype=object)[st_codes[good]],
            np.asarray(pa_vals, dtype=object)[pa_codes[good]],
            (
                np.asarray(period[0], dtype=object)[period[1][good]]
                if period is not None
                else np.full(n_good, "1h", dtype=object)
            ),
            ts_np[good],
            value[good],
            (
                np.asarray(flag[0], dtype=object)[flag[1][good]]
                if flag is not None
                else np.full(n_good, "N", dtype=object)
            ),
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
            for j, i in enumerate(idx):
                t = ts_np[i]
                sid = st_vals[st_codes[i]]
                par = pa_vals[pa_codes[i]]
                rejected.append(
                    Rejection(
                        source=source,
                        raw=str(raw_bad[j]),
                        reason=str(reasons[i]),
                        station_id=sid or None,
                        parameter=par or None,
                        ts=None if np.isnat(t) else pd.Timestamp(t, tz="UTC").to_pydatetime(),
                        line=_line(df.index, int(i)),
                    )
                )
        return ValidationResult(batch, rejected)

    def _resolve_names(
        self,
        st_vals: list[str],
        st_codes: np.ndarray[Any, Any],
        pa_vals: list[str],
        pa_codes: np.ndarray[Any, Any],
    ) -> tuple[list[str], np.ndarray[Any, Any]]:
        """Station names that are not ids → ids, per (name, parameter) pair of the rows."""
        assert self.names is not None
        unknown = [k for k, v in enumerate(st_vals) if v and v not in self.stations]
        if not unknown:
            return st_vals, st_codes
        rows = np.flatnonzero(np.isin(st_codes, unknown))
        pairs = st_codes[rows] * (len(pa_vals) + 1) + pa_codes[rows]
        values = list(st_vals)
        codes = st_codes.copy()
        index = {v: k for k, v in enumerate(values)}
        for pair in np.unique(pairs):
            s, p = divmod(int(pair), len(pa_vals) + 1)
            par = self.parameters.get(pa_vals[p])
            # A name is looked up among the stations of the parameter's own kind first
            # (尖草坪 + air_temp is the weather station), then among all that measure it.
            found = None
            if par is not None:
                found = self.names.lookup(st_vals[s], (par.kind,)) or self.names.lookup(
                    st_vals[s], [k for k, m in MEASURES.items() if par.kind in m]
                )
            if found is None:
                continue
            codes[rows[pairs == pair]] = index.setdefault(found, len(values))
            if index[found] == len(values):
                values.append(found)
        return values, codes

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
