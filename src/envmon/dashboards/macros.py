"""Grafana's PostgreSQL query expansion, ported so that panel SQL can be run here.

Grafana turns a panel's ``rawSql`` into the statement the server executes in
three steps, and :func:`expand` applies them in the same order:

1. The browser replaces template variables (``$var``, ``${var}``,
   ``${var:format}``, ``[[var]]``) — ``templateSrv.replace`` with the SQL data
   source's ``interpolateVariable`` (``public/app/features/templating/
   template_srv.ts``, ``formatRegistry.ts``, ``plugins/sql/datasource/
   SqlDatasource.ts``): :func:`interpolate_variables`.
2. The backend's global substitutions ``$__interval``, ``$__interval_ms``,
   ``$__unixEpochFrom()``, ``$__unixEpochTo()`` (``pkg/tsdb/grafana-postgresql-
   datasource/sqleng/sql_engine.go``, ``Interpolate``): :func:`interpolate_global`.
3. The PostgreSQL macro engine, ``$__timeFilter(col)`` and friends
   (``pkg/tsdb/grafana-postgresql-datasource/macros.go``): :class:`MacroEngine`.

The interval a panel gets (``$__interval``) is computed by the browser from the
time range and the panel's width (``rangeutil.calculateInterval``):
:func:`calculate_interval`. Durations are integer nanoseconds, like Go's
``time.Duration``; parsing and formatting follow ``grafana-plugin-sdk-go``'s
``backend/gtime``. Error messages are Grafana's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeAlias

from envmon.errors import EnvmonError

NS: Final = 1
US: Final = 1_000
MS: Final = 1_000_000
SECOND: Final = 1_000_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

ALL_VALUE: Final = "$__all"
"""The value Grafana stores when a variable's "All" option is selected."""

VarValue: TypeAlias = str | list[str]


class MacroError(EnvmonError):
    """A macro could not be expanded (Grafana answers the panel with this error)."""


# -- durations (backend/gtime and Go's time.ParseDuration) --------------------------------

_GO_UNITS: Final[dict[str, int]] = {
    "ns": NS,
    "us": US,
    "µs": US,  # U+00B5 micro sign
    "μs": US,  # U+03BC Greek mu
    "ms": MS,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_GO_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_DATE_UNIT = re.compile(r"^(\d+)([dwMy])$")


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration``: ``"1h30m"``, ``"300ms"``, ``"-1.5h"`` → nanoseconds."""
    orig, s = text, text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise MacroError(f'time: invalid duration "{orig}"')
    total = 0
    while s:
        m = _GO_PART.match(s)
        assert m is not None  # the pattern matches the empty string
        number, unit = m.group(1), m.group(2)
        if number in ("", "."):
            raise MacroError(f'time: invalid duration "{orig}"')
        if not unit:
            raise MacroError(f'time: missing unit in duration "{orig}"')
        if unit not in _GO_UNITS:
            raise MacroError(f'time: unknown unit "{unit}" in duration "{orig}"')
        whole, _, frac = number.partition(".")
        scale = _GO_UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(Decimal("0." + frac) * scale)
        total += value
        s = s[m.end() :]
    return -total if neg else total


def _add_date(t: datetime, years: int, months: int, days: int) -> datetime:
    """Go's ``Time.AddDate``: overflowing months and days normalise forward."""
    month0 = t.month - 1 + months
    year = t.year + years + month0 // 12
    month = month0 % 12 + 1
    first = t.replace(year=year, month=month, day=1)
    return first + timedelta(days=t.day - 1 + days)


def parse_interval(text: str, *, now: datetime | None = None) -> int:
    """gtime ``ParseInterval``: Go durations plus ``Nd Nw NM Ny``, relative to ``now`` (UTC).

    Months and years have their calendar length at ``now`` (Grafana uses the
    wall clock); days and weeks are exact in UTC.
    """
    m = _DATE_UNIT.match(text)
    if m is None:
        return parse_go_duration(text)
    num, unit = int(m.group(1)), m.group(2)
    base = (now or datetime.now(UTC)).astimezone(UTC)
    if unit == "d":
        later = _add_date(base, 0, 0, num)
    elif unit == "w":
        later = _add_date(base, 0, 0, num * 7)
    elif unit == "M":
        later = _add_date(base, 0, num, 0)
    else:
        later = _add_date(base, num, 0, 0)
    delta = later - base
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds * US


def format_interval(ns: int) -> str:
    """gtime ``FormatInterval``: the largest whole unit, ``"10m"``, ``"4s"``, ``"200ms"``."""
    year, day = 365 * DAY, DAY
    for size, unit in ((year, "y"), (day, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s")):
        if ns >= size:
            return f"{ns // size}{unit}"
    if ns >= MS:
        return f"{ns // MS}ms"
    return "1ms"


def _seconds(ns: int) -> float:
    """Go's ``Duration.Seconds()``."""
    sec, nsec = divmod(ns, SECOND)
    return sec + nsec / 1e9


def go_float(x: float) -> str:
    """Go's ``%v`` for a float64: shortest digits, exponent form from 1e+06 and below 1e-04."""
    if x == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    assert isinstance(exponent, int)
    digits = list(digit_tuple)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    text = "".join(map(str, digits))
    point = len(digits) + exponent  # position of the decimal point
    exp = point - 1
    out: str
    if exp < -4 or exp >= 6:  # strconv 'g' with the shortest precision uses eprec = 6
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return ("-" if sign else "") + out


# -- time range ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range (aware datetimes)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange needs aware datetimes")


def rfc3339nano(t: datetime) -> str:
    """Go's ``t.UTC().Format(time.RFC3339Nano)``: no trailing zeros in the fraction."""
    u = t.astimezone(UTC)
    out = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.microsecond:
        out += f".{u.microsecond:06d}".rstrip("0")
    return out + "Z"


def _unix(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400 + delta.seconds  # floor, like Go's Unix()


def _unix_nano(t: datetime) -> int:
    return _unix(t) * SECOND + t.astimezone(UTC).microsecond * US


def _unix_ms(t: datetime) -> int:
    return _unix(t) * 1000 + t.astimezone(UTC).microsecond // 1000


# -- browser: the panel interval --------------------------------------------------------------

# rangeutil.roundInterval (milliseconds): upper bound of each step → the nice interval.
_ROUND_STEPS: Final[tuple[tuple[float, int], ...]] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (210000, 120000),
    (450000, 300000),
    (750000, 600000),
    (1050000, 900000),
    (1500000, 1200000),
    (2700000, 1800000),
    (5400000, 3600000),
    (9000000, 7200000),
    (16200000, 10800000),
    (32400000, 21600000),
    (86400000, 43200000),
    (604800000, 86400000),
    (1814400000, 604800000),
    (3628800000, 2592000000),
)


def round_interval_ms(interval_ms: float) -> int:
    """``rangeutil.roundInterval``: a raw interval (ms) → a "nice" one."""
    for bound, nice in _ROUND_STEPS:
        if interval_ms < bound:
            return nice
    return 31536000000


_DESCRIBE = re.compile(r"(-?\d+(?:\.\d+)?)(ms|[Mwdhmsy])")
_INTERVAL_SECONDS: Final[dict[str, float]] = {
    "y": 31536000,
    "M": 2592000,
    "w": 604800,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
    "ms": 0.001,
}


def interval_to_ms(text: str) -> float:
    """``rangeutil.intervalToMs``: ``"1h"`` → 3600000; a bare number is seconds."""
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if number:
        return int(number) * 1000.0
    m = _DESCRIBE.search(text)
    if m is None:
        raise MacroError(
            "Invalid interval string, has to be either unit-less or end with one of the "
            'following units: "y, M, w, d, h, m, s, ms"'
        )
    return _INTERVAL_SECONDS[m.group(2)] * 1000 * int(float(m.group(1)))


def calculate_interval(
    time_range: TimeRange, max_data_points: int, min_interval: str | None = None
) -> int:
    """``rangeutil.calculateInterval`` → the panel's ``$__interval`` in nanoseconds.

    ``max_data_points`` is the panel's width in pixels (or its ``maxDataPoints``);
    ``min_interval`` the panel's or the data source's ``timeInterval``.
    """
    low = interval_to_ms(min_interval) if min_interval else 1.0
    span_ms = (_unix_nano(time_range.end) - _unix_nano(time_range.start)) / MS
    interval = float(round_interval_ms(span_ms / max_data_points))
    interval = max(interval, low)
    return round(interval * MS)


# -- browser: template variables -----------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """A dashboard variable as the browser holds it when a panel is queried.

    ``current`` is the selected value (a list for multi-value variables, or
    :data:`ALL_VALUE`); ``options`` the values the variable offers (without
    "All"), used when "All" is selected and no ``all_value`` is set; ``text``
    the selected option's display text (``${var:text}``).
    """

    name: str
    current: VarValue
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: tuple[str, ...] = ()
    text: VarValue | None = None


# public/app/features/variables/utils.ts (variableRegex); \w is ASCII in JavaScript.
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[([\s\S]+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}",
    re.ASCII,
)

Formatter: TypeAlias = Callable[[VarValue, Variable | None], str]


def sql_quote_literal(value: str) -> str:
    """``SqlQueryModel.quoteLiteral``: a single-quoted literal, quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def sql_interpolate_variable(value: VarValue, variable: Variable | None) -> str:
    """``SqlDatasource.interpolateVariable``, the SQL data sources' default format.

    A single value of a single-value variable is inserted bare (quotes doubled),
    so the query writes ``'$var'``; multi-value and "All" variables become a
    comma-separated list of quoted literals, so the query writes ``IN ($var)``.
    """
    if isinstance(value, str):
        if variable is not None and (variable.multi or variable.include_all):
            return sql_quote_literal(value)
        return value.replace("'", "''")
    return ",".join(sql_quote_literal(v) for v in value)


def _regex_escape(v: str) -> str:
    return re.sub(r"[\\^$*+?.()|{}\[\]/]", lambda m: "\\" + m.group(0), v)


def _lucene_escape(v: str) -> str:
    try:
        float(v)
        return v
    except ValueError:
        return re.sub(r'([!*+\-=<>\s&|()\[\]{}^~?:\\/"])', r"\\\1", v)


def _percent_encode(v: str) -> str:
    from urllib.parse import quote

    return quote(v, safe="-_.~")


def _format_value(
    value: VarValue, fmt: str | Formatter | None, variable: Variable | None, text: VarValue
) -> str:
    """``templateSrv.formatValue`` with the formats of ``formatRegistry.ts``."""
    if callable(fmt):
        return fmt(value, variable)
    # Arguments after a second colon only matter to the date format, not supported here.
    name = (fmt or "glob").split(":", 1)[0]
    multi = isinstance(value, list)
    vals = value if isinstance(value, list) else [value]
    match name:
        case "raw":
            return ",".join(vals) if multi else vals[0]
        case "csv":
            return ",".join(vals)
        case "pipe":
            return "|".join(vals)
        case "singlequote":
            # Grafana escapes with a backslash, which PostgreSQL (standard strings)
            # does not honour: 'sqlstring' is the safe format for SQL.
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in vals)
        case "doublequote":
            return ",".join('"' + v.replace('"', '\\"') + '"' for v in vals)
        case "sqlstring":
            return ",".join("'" + v.replace("'", "''") + "'" for v in vals)
        case "json":
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        case "regex":
            escaped = [_regex_escape(v) for v in vals]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        case "lucene":
            if not multi:
                return _lucene_escape(vals[0])
            if not vals:
                return "__empty__"
            return "(" + " OR ".join(f'"{_lucene_escape(v)}"' for v in vals) + ")"
        case "distributed":
            if not multi or variable is None:
                return ",".join(vals)
            return ",".join(v if i == 0 else f"{variable.name}={v}" for i, v in enumerate(vals))
        case "percentencode":
            return _percent_encode("{" + ",".join(vals) + "}" if multi else vals[0])
        case "text":
            if isinstance(text, list):
                return " + ".join(text)
            return text
        case "queryparam":
            var = variable.name if variable else ""
            return "&".join(f"var-{var}={_percent_encode(v)}" for v in vals)
        case _:  # glob, and unknown formats fall back to glob (formatRegistry)
            if multi and len(vals) > 1:
                return "{" + ",".join(vals) + "}"
            return ",".join(vals) if multi else vals[0]


def _builtin(name: str, time_range: TimeRange | None, interval_ns: int | None) -> VarValue | None:
    """Variables the browser provides itself (scopedVars of every panel query)."""
    if interval_ns is not None and name == "__interval":
        return format_interval(interval_ns)
    if interval_ns is not None and name == "__interval_ms":
        return str(interval_ns // MS)
    if time_range is not None:
        if name == "__from":
            return str(_unix_ms(time_range.start))
        if name == "__to":
            return str(_unix_ms(time_range.end))
        span = _unix_ms(time_range.end) - _unix_ms(time_range.start)
        if name == "__range_ms":
            return str(span)
        if name == "__range_s":
            return str(span // 1000)
        if name == "__range":
            return f"{span // 1000}s"
    return None


def interpolate_variables(
    sql: str,
    variables: Mapping[str, Variable],
    *,
    scoped: Mapping[str, VarValue] | None = None,
    time_range: TimeRange | None = None,
    interval_ns: int | None = None,
    formatter: Formatter = sql_interpolate_variable,
) -> str:
    """``templateSrv.replace(rawSql, scopedVars, interpolateVariable)``.

    Unknown names (such as the backend macros ``$__timeFilter``) are left as
    they are. ``scoped`` values (a repeated panel's own value) win over the
    dashboard's; ``time_range``/``interval_ns`` provide ``$__from``, ``$__to``,
    ``$__range*``, ``$__interval`` and ``$__interval_ms``.
    """

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt: str | Formatter | None = m.group(3) or m.group(6) or formatter
        variable = variables.get(name)
        scoped_value = scoped.get(name) if scoped else None
        if scoped_value is None:
            scoped_value = _builtin(name, time_range, interval_ns)
        if scoped_value is not None:
            return _format_value(scoped_value, fmt, variable, scoped_value)
        if variable is None:
            return m.group(0)
        value: VarValue = variable.current
        text: VarValue = variable.text if variable.text is not None else value
        if value == ALL_VALUE or (isinstance(value, list) and value[:1] == [ALL_VALUE]):
            text = "All"
            if variable.all_value is not None:
                # A custom "All" value is inserted unformatted (unless text/percentencode).
                if fmt not in ("text", "percentencode"):
                    return interpolate_variables(
                        variable.all_value,
                        variables,
                        scoped=scoped,
                        time_range=time_range,
                        interval_ns=interval_ns,
                        formatter=formatter,
                    )
                value = variable.all_value
            else:
                value = list(variable.options)
        return _format_value(value, fmt, variable, text)

    return _VARIABLE.sub(replace, sql)


# -- backend: global substitutions (sqleng.Interpolate) -----------------------------------------


def interpolate_global(sql: str, time_range: TimeRange, interval_ns: int) -> str:
    """``sqleng.Interpolate``: ``$__interval_ms``, ``$__interval``, ``$__unixEpochFrom/To()``."""
    sql = sql.replace("$__interval_ms", str(interval_ns // MS))
    sql = sql.replace("$__interval", format_interval(interval_ns))
    sql = sql.replace("$__unixEpochFrom()", str(_unix(time_range.start)))
    return sql.replace("$__unixEpochTo()", str(_unix(time_range.end)))


# -- backend: the PostgreSQL macro engine (macros.go) -------------------------------------------

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


@dataclass
class QueryModel:
    """The parts of a panel query the macro engine reads and writes (fill mode)."""

    fill: bool = False
    fill_interval_s: float = 0.0
    fill_mode: str = ""
    fill_value: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _setup_fillmode(query: QueryModel, interval_ns: int, fillmode: str) -> None:
    """``sqleng.SetupFillmode``: the optional third argument of ``$__timeGroup``."""
    query.fill = True
    query.fill_interval_s = _seconds(interval_ns)
    if fillmode == "NULL":
        query.fill_mode = "null"
    elif fillmode == "previous":
        query.fill_mode = "previous"
    else:
        query.fill_mode = "value"
        try:
            query.fill_value = float(fillmode)
        except ValueError as err:
            raise MacroError(f"error parsing fill value {fillmode}") from err


class MacroEngine:
    """``postgresMacroEngine``; ``timescaledb`` mirrors the data source's TimescaleDB switch."""

    def __init__(self, *, timescaledb: bool = False, now: datetime | None = None) -> None:
        self.timescaledb = timescaledb
        self.now = now

    def interpolate(self, sql: str, time_range: TimeRange, query: QueryModel | None = None) -> str:
        query = query if query is not None else QueryModel()
        first_error: MacroError | None = None
        out: list[str] = []
        last = 0
        for m in _MACRO.finditer(sql):
            whole, name, argtext = m.group(0), m.group(1), m.group(2)
            # Pre-5.3 compatibility: "$__timeGroup(...)," (a comma right after the
            # macro, looked up in the original text) means the aliased form.
            if name == "__timeGroup":
                idx = sql.find(whole)
                if idx >= 0:
                    idx += len(whole)
                    if len(sql) > idx and sql[idx] == ",":
                        name = "__timeGroupAlias"
            args = [a.strip(" ") for a in argtext.split(",")]
            try:
                res = self._evaluate(time_range, query, name, args)
            except MacroError as err:
                if first_error is None:
                    first_error = err
                res = "macro_error()"
            out.append(sql[last : m.start()] + res)
            last = m.end()
        if first_error is not None:
            raise first_error
        return "".join(out) + sql[last:]

    def _interval_arg(self, arg: str) -> int:
        try:
            return parse_interval(arg.strip("'"), now=self.now)
        except MacroError as err:
            raise MacroError(f"error parsing interval {arg}") from err

    def _evaluate(self, tr: TimeRange, query: QueryModel, name: str, args: Sequence[str]) -> str:
        match name:
            case "__time":
                if not args:
                    raise MacroError(f"missing time column argument for macro {name}")
                return f'{args[0]} AS "time"'
            case "__timeEpoch":
                if not args:
                    raise MacroError(f"missing time column argument for macro {name}")
                return f'extract(epoch from {args[0]}) as "time"'
            case "__timeFilter":
                if not args:
                    raise MacroError(f"missing time column argument for macro {name}")
                return f"{args[0]} BETWEEN '{rfc3339nano(tr.start)}' AND '{rfc3339nano(tr.end)}'"
            case "__timeFrom":
                return f"'{rfc3339nano(tr.start)}'"
            case "__timeTo":
                return f"'{rfc3339nano(tr.end)}'"
            case "__timeGroup":
                if len(args) < 2:
                    raise MacroError(
                        f"macro {name} needs time column and interval and optional fill value"
                    )
                interval = self._interval_arg(args[1])
                if len(args) == 3:
                    _setup_fillmode(query, interval, args[2])
                if self.timescaledb:
                    return f"time_bucket('{_seconds(interval):.3f}s',{args[0]})"
                s = go_float(_seconds(interval))
                return f"floor(extract(epoch from {args[0]})/{s})*{s}"
            case "__timeGroupAlias":
                return self._evaluate(tr, query, "__timeGroup", args) + ' AS "time"'
            case "__unixEpochFilter":
                if not args:
                    raise MacroError(f"missing time column argument for macro {name}")
                return f"{args[0]} >= {_unix(tr.start)} AND {args[0]} <= {_unix(tr.end)}"
            case "__unixEpochNanoFilter":
                if not args:
                    raise MacroError(f"missing time column argument for macro {name}")
                return f"{args[0]} >= {_unix_nano(tr.start)} AND {args[0]} <= {_unix_nano(tr.end)}"
            case "__unixEpochNanoFrom":
                return str(_unix_nano(tr.start))
            case "__unixEpochNanoTo":
                return str(_unix_nano(tr.end))
            case "__unixEpochGroup":
                if len(args) < 2:
                    raise MacroError(
                        f"macro {name} needs time column and interval and optional fill value"
                    )
                interval = self._interval_arg(args[1])
                if len(args) == 3:
                    _setup_fillmode(query, interval, args[2])
                s = go_float(_seconds(interval))
                return f"floor(({args[0]})/{s})*{s}"
            case "__unixEpochGroupAlias":
                return self._evaluate(tr, query, "__unixEpochGroup", args) + ' AS "time"'
            case _:
                raise MacroError(f'unknown macro "{name}"')


# -- everything, in Grafana's order --------------------------------------------------------------


def expand(
    sql: str,
    *,
    time_range: TimeRange,
    interval_ns: int,
    variables: Mapping[str, Variable] | None = None,
    scoped: Mapping[str, VarValue] | None = None,
    timescaledb: bool = False,
    query: QueryModel | None = None,
) -> str:
    """The statement Grafana sends to PostgreSQL for a panel's ``rawSql``."""
    text = interpolate_variables(
        sql, variables or {}, scoped=scoped, time_range=time_range, interval_ns=interval_ns
    )
    text = interpolate_global(text, time_range, interval_ns)
    return MacroEngine(timescaledb=timescaledb).interpolate(text, time_range, query)
