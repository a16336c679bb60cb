"""What every pull source shares: its errors, its HTTP client, its station map, its output.

A source implements one thing, :meth:`Source.fetch` — "the readings whose
period starts in [start, end)" — and raises by what the poller should do
(after the Singer SDK): :class:`TransientSourceError` (timeouts, connection
errors, 5xx, 429 with its Retry-After: back off and retry),
:class:`PayloadError` (an unreadable page: retry, and quarantine it if it stays
unreadable), :class:`SourceFatalError` (401/403, other 4xx, bad configuration:
the source is disabled and its health says why). One bad *record* is never an
exception: it goes to :meth:`Fetched.reject` (or to the validator) and the rest
of the page is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from envmon.catalog import Catalog
from envmon.errors import ConfigError, FatalError, RetriableError
from envmon.ingest.sources.convert import parse_time
from envmon.ingest.sources_config import RateLimit, SourceConfig
from envmon.ratelimit import TokenBucket
from envmon.schemas.readings import Rejection
from envmon.timeutil import HOUR

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")
RAW_LIMIT = 4000  # characters of a raw record/page kept in `rejected`


# --------------------------------------------------------------------------- errors


class TransientSourceError(RetriableError):
    """Try again later: ``retry_after`` (seconds) when the platform said how long."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PayloadError(TransientSourceError):
    """A whole page could not be read (truncated JSON, HTML error page, wrong shape)."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw[:RAW_LIMIT]


class SourceFatalError(FatalError):
    """Retrying will not help (401/403, 404 on the endpoint, bad request, bad config)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class Response:
    url: str
    status: int
    headers: Mapping[str, str]
    text: str
    body: bytes = b""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """RFC 9110 Retry-After: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _decode(body: bytes, charset: str | None) -> str:
    enc = charset or "utf-8"
    try:
        return body.decode(enc)
    except LookupError:
        enc = "utf-8"
    except UnicodeDecodeError as err:
        if err.start >= len(body) - 4:  # cut short inside the last character
            return body.decode(enc, errors="replace")
    # Chinese platforms sometimes send GBK without saying so.
    try:
        return body.decode("gb18030")
    except UnicodeDecodeError:
        return body.decode(enc, errors="replace")


class Http:
    """One source's view of the shared aiohttp session.

    Adds the source's base URL, headers and per-request timeout, bounds its
    concurrency, spaces its requests by its rate limit, pauses when the
    platform's ``X-RateLimit-Remaining`` reaches 0 (until ``X-RateLimit-Reset``),
    and turns HTTP outcomes into the error classes above.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        source: str,
        base_url: str,
        timeout: float,
        concurrency: int = 4,
        rate_limit: RateLimit | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        retries: int = 0,
        backoff: Callable[[int, float | None], float] | None = None,
        max_wait_s: float = 30.0,
    ) -> None:
        self.session = session
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.timeout_s = timeout
        self.headers = dict(headers or {})
        self.sleep = sleep
        self.monotonic = monotonic
        self._sem = asyncio.Semaphore(concurrency)
        # One request per interval at most (a bucket of one token).
        self._bucket = (
            TokenBucket(1.0 / rate_limit.interval_s, 1.0, monotonic())
            if rate_limit and rate_limit.interval_s > 0
            else None
        )
        self._paused_until = 0.0
        self.requests = 0
        # A source that needs many requests per window (OpenAQ: one per sensor) retries
        # each one a little before giving the whole window back to the poller.
        self.retries = retries
        self.backoff = backoff
        self.max_wait_s = max_wait_s
        self.retried = 0

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + ("" if path.startswith("/") or not path else "/") + path

    async def _throttle(self) -> None:
        now = self.monotonic()
        wait = max(0.0, self._paused_until - now)
        if self._bucket is not None:
            wait += self._bucket.take(1.0, now + wait)
        if wait > 0:
            await self.sleep(wait)

    def _note_limits(self, headers: Mapping[str, str]) -> None:
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("RateLimit-Remaining")
        reset = headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            left, reset_s = float(remaining), float(reset)
        except ValueError:
            return
        if left > 0:
            return
        if reset_s > 1e9:  # an epoch time rather than seconds to go
            reset_s = max(0.0, reset_s - time.time())
        self._paused_until = max(self._paused_until, self.monotonic() + reset_s)
        logger.info("source=%s rate limit used up; pausing %.1f s", self.source, reset_s)

    async def _retrying(self, once: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await once()
            except TransientSourceError as err:  # PayloadError too: a cut-off page
                if attempt > self.retries or self.backoff is None:
                    raise
                delay = self.backoff(attempt, err.retry_after)
                if delay > self.max_wait_s:
                    raise
                self.retried += 1
                logger.debug("source=%s retrying in %.1f s: %s", self.source, delay, err)
                await self.sleep(delay)

    async def get(
        self,
        path: str,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """GET → a 2xx response, or the error class the outcome calls for."""
        return await self._retrying(lambda: self._get_once(path, params, headers))

    async def _get_once(
        self,
        path: str,
        params: Mapping[str, str | int | float] | None,
        headers: Mapping[str, str] | None,
    ) -> Response:
        url = self.url(path)
        async with self._sem:
            await self._throttle()
            self.requests += 1
            try:
                async with self.session.get(
                    url,
                    params=dict(params) if params else None,
                    headers={**self.headers, **(headers or {})},
                    timeout=self.timeout,
                    allow_redirects=True,
                ) as resp:
                    body = await resp.read()
                    out = Response(
                        str(resp.url),
                        resp.status,
                        resp.headers,
                        _decode(body, resp.charset),
                        body,
                    )
            except TimeoutError as err:
                raise TransientSourceError(
                    f"timeout after {self.timeout_s:g} s: GET {url}"
                ) from err
            except aiohttp.InvalidURL as err:
                raise SourceFatalError(f"invalid URL {url}: {err}") from err
            except (aiohttp.ClientError, OSError) as err:
                raise TransientSourceError(
                    f"{type(err).__name__}: {err or 'connection failed'}: GET {url}"
                ) from err
        self._note_limits(out.headers)
        return self._check(out)

    def _check(self, r: Response) -> Response:
        if 200 <= r.status < 300:
            return r
        snippet = " ".join(r.text[:200].split())
        what = f"HTTP {r.status} from GET {_without_secrets(r.url)}" + (
            f": {snippet}" if snippet else ""
        )
        if r.status == 429:
            ra = retry_after_seconds(r.headers.get("Retry-After"))
            if ra is None:
                reset = r.headers.get("X-RateLimit-Reset")
                try:
                    ra = float(reset) if reset is not None else None
                except ValueError:
                    ra = None
            raise TransientSourceError(what, status=429, retry_after=ra)
        if r.status >= 500 or r.status == 408:
            ra = retry_after_seconds(r.headers.get("Retry-After"))
            raise TransientSourceError(what, status=r.status, retry_after=ra)
        if r.status in (401, 403):
            raise SourceFatalError(what + " (check the source's credentials)", status=r.status)
        raise SourceFatalError(what, status=r.status)

    async def get_json(
        self,
        path: str,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        async def once() -> Any:
            r = await self._get_once(path, params, headers)
            try:
                return json.loads(r.text)
            except ValueError as err:
                raise PayloadError(
                    f"unreadable JSON from GET {_without_secrets(r.url)}: {err}", r.text
                ) from err

        return await self._retrying(once)


def _without_secrets(url: str) -> str:
    """Hide passwords and keys in URLs written to logs and health (CMA puts pwd in the query)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    hidden = {"pwd", "password", "key", "apikey", "api_key", "token", "userid", "user_id"}
    query = [
        (k, "***" if k.lower() in hidden else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[],:*")))


# --------------------------------------------------------------------------- stations


class StationMap:
    """Platform station codes → catalog station ids, for the kinds a source feeds."""

    def __init__(self, codes: Mapping[str, str], primary: Mapping[str, str]) -> None:
        self.codes = dict(codes)
        self.primary = dict(primary)  # catalog id → the code to ask the platform for

    def get(self, code: object) -> str | None:
        if code is None:
            return None
        return self.codes.get(str(code).strip())

    def request_codes(self) -> list[str]:
        """One platform code per mapped catalog station (for per-station requests)."""
        return list(self.primary.values())

    def __len__(self) -> int:
        return len(self.primary)

    @classmethod
    def build(cls, config: SourceConfig, catalog: Catalog, kinds: Iterable[str]) -> StationMap:
        allowed = set(kinds)
        codes: dict[str, str] = {}
        primary: dict[str, str] = {}
        problems: list[str] = []
        for code, sid in config.stations.items():
            st = catalog.by_id.get(sid)
            if st is None:
                problems.append(f"stations: '{code}' maps to unknown catalog station '{sid}'")
            elif st.kind not in allowed:
                problems.append(
                    f"stations: '{code}' maps to {st.kind} station '{sid}'; "
                    f"this source feeds {'/'.join(sorted(allowed))} stations"
                )
            else:
                codes[code] = sid
                primary.setdefault(sid, code)
        for fld in config.match:
            for st in catalog.stations:
                if st.kind not in allowed or not st.active:
                    continue
                value = getattr(st, fld)
                if value is None:
                    continue
                codes.setdefault(str(value), st.id)
                primary.setdefault(st.id, str(value))
        if problems:
            raise ConfigError(f"source '{config.name}': " + "; ".join(problems))
        if not primary:
            raise ConfigError(
                f"source '{config.name}': no station mapped (give 'stations' and/or "
                f"'match' for its {'/'.join(sorted(allowed))} stations)"
            )
        return cls(codes, primary)


# --------------------------------------------------------------------------- output


@dataclass
class Fetched:
    """Readings of one fetch, columnar, plus what was quarantined or left out.

    ``time`` is the START of the reading's period (aware datetime), or the raw
    text when the source could not read it (the validator then rejects it with
    the reason). ``record`` points into ``records``, the platform's original
    records, which become the ``raw`` of any rejection.
    """

    station: list[str] = field(default_factory=list)
    parameter: list[str] = field(default_factory=list)
    time: list[datetime | str] = field(default_factory=list)
    value: list[float | str | None] = field(default_factory=list)
    flag: list[str] = field(default_factory=list)
    period: list[str] = field(default_factory=list)
    record: list[int] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)
    ignored: int = 0  # records of stations the source does not map (other cities' stations)
    missing: int = 0  # values the platform marked as missing ("—", 999999 …)
    station_errors: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.value)

    @contextmanager
    def one_record(self, source: str, record: Any) -> Iterator[None]:
        """Map one record; if that raises, it becomes one reject and the page goes on.

        Whatever the record added before it failed is taken back, so a record
        is either wholly read or wholly rejected (with the error as its reason).
        """
        mark = (len(self.value), len(self.records), len(self.rejects), self.missing)
        try:
            yield
        except (
            ArithmeticError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
        ) as err:
            n, n_records, n_rejects, missing = mark
            for name in ("station", "parameter", "time", "value", "flag", "period", "record"):
                del getattr(self, name)[n:]
            del self.records[n_records:]
            del self.rejects[n_rejects:]
            self.missing = missing
            self.reject(source, record, f"unreadable record: {type(err).__name__}: {err}")

    def keep(self, record: Any) -> int:
        self.records.append(record)
        return len(self.records) - 1

    def add(
        self,
        rec: int,
        station: str,
        parameter: str,
        ts: datetime | str,
        value: float | str | None,
        *,
        flag: str = "N",
        period: str = "1h",
    ) -> None:
        self.station.append(station)
        self.parameter.append(parameter)
        self.time.append(ts)
        self.value.append(value)
        self.flag.append(flag)
        self.period.append(period)
        self.record.append(rec)

    def reject(
        self,
        source: str,
        record: Any,
        reason: str,
        *,
        station: str | None = None,
        parameter: str | None = None,
        ts: datetime | None = None,
    ) -> None:
        self.rejects.append(
            Rejection(
                source=source,
                raw=raw_text(record),
                reason=reason,
                station_id=station,
                parameter=parameter,
                ts=ts,
            )
        )

    def extend(self, other: Fetched) -> None:
        base = len(self.records)
        self.records.extend(other.records)
        self.station.extend(other.station)
        self.parameter.extend(other.parameter)
        self.time.extend(other.time)
        self.value.extend(other.value)
        self.flag.extend(other.flag)
        self.period.extend(other.period)
        self.record.extend(r + base for r in other.record)
        self.rejects.extend(other.rejects)
        self.ignored += other.ignored
        self.missing += other.missing
        self.station_errors.update(other.station_errors)

    def within(self, start: datetime, end: datetime) -> Fetched:
        """Only the readings whose period starts in [start, end) (raw-text times are kept)."""
        keep = [
            i for i, t in enumerate(self.time) if not isinstance(t, datetime) or start <= t < end
        ]
        if len(keep) == len(self.time):
            return self
        out = Fetched(
            records=self.records,
            rejects=self.rejects,
            ignored=self.ignored,
            missing=self.missing,
            station_errors=self.station_errors,
        )
        for name in ("station", "parameter", "time", "value", "flag", "period", "record"):
            col = getattr(self, name)
            setattr(out, name, [col[i] for i in keep])
        return out

    def frame(self) -> pd.DataFrame:
        """The validator's input: index = record number (to find the raw record of a reject)."""
        return pd.DataFrame(
            {
                "station": pd.Series(self.station, dtype=object),
                "parameter": pd.Series(self.parameter, dtype=object),
                "time": pd.Series(self.time, dtype=object),
                "value": pd.Series(self.value, dtype=object),
                "flag": pd.Series(self.flag, dtype=object),
                "period": pd.Series(self.period, dtype=object),
            },
        ).set_index(pd.Index(np.asarray(self.record, dtype=np.int64)))


def raw_text(record: Any) -> str:
    if isinstance(record, str):
        return record[:RAW_LIMIT]
    try:
        return json.dumps(record, ensure_ascii=False, default=str)[:RAW_LIMIT]
    except (TypeError, ValueError):
        return repr(record)[:RAW_LIMIT]


# --------------------------------------------------------------------------- sources


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(ABC):
    """A platform envmon pulls. Subclasses set the class attributes and implement fetch."""

    kind: ClassVar[str]
    station_kinds: ClassVar[tuple[str, ...]]
    period: ClassVar[timedelta] = HOUR
    Options: ClassVar[type[BaseModel]] = NoOptions
    needs_secret: ClassVar[bool] = False  # an API key / password (ENVMON_COLLECT__SECRETS)

    def __init__(
        self,
        config: SourceConfig,
        catalog: Catalog,
        http: Http,
        *,
        secret: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.http = http
        self.secret = secret
        self.clock = clock or (lambda: datetime.now(UTC))
        self.options: Any = self.parse_options(config)
        self.stations = StationMap.build(config, catalog, self.feeds())

    @classmethod
    def parse_options(cls, config: SourceConfig) -> BaseModel:
        try:
            return cls.Options.model_validate(config.options)
        except ValidationError as err:
            problems = "; ".join(
                f"options.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            raise ConfigError(f"source '{config.name}' ({cls.kind}): {problems}") from err

    def read_time(self, value: Any, zone: tzinfo) -> datetime | None:
        """A platform time; naive ones in the source's ``timezone`` (else ``zone``, the kind's).

        With ``ignore_time_offset`` the platform's own offset is taken to be
        wrong (see :func:`~envmon.ingest.sources.convert.parse_time`).
        """
        tz = ZoneInfo(self.config.timezone) if self.config.timezone else zone
        return parse_time(value, tz, wall_clock=self.config.ignore_time_offset)

    def feeds(self) -> tuple[str, ...]:
        """The catalog station kinds this source may write."""
        return self.feeds_with(self.options)

    @classmethod
    def feeds_with(cls, options: Any) -> tuple[str, ...]:
        kinds = getattr(options, "kinds", None)
        return tuple(kinds) if kinds else cls.station_kinds

    @abstractmethod
    async def fetch(self, start: datetime, end: datetime) -> Fetched:
        """The readings whose period starts in [start, end) (aware datetimes)."""


def hours(start: datetime, end: datetime, step: timedelta = HOUR) -> list[datetime]:
    """Period starts from ``start`` rounded up to a whole ``step`` (UTC-aligned) up to ``end``."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    n = -(-(start - epoch) // step)
    t = epoch + n * step
    out = []
    while t < end:
        out.append(t)
        t += step
    return out


def _severity(err: BaseException) -> int:
    if isinstance(err, FatalError):
        return 0
    if not isinstance(err, RetriableError):
        return 1  # a bug: surface it
    if isinstance(err, PayloadError):
        return 2
    return 3


async def gather_all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run requests concurrently; on the first failure cancel the rest and raise the worst.

    Worst = fatal, then unexpected, then unreadable page, then transient, so that
    a 401 on one request is not hidden behind a timeout on another.
    """
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as tg:
            for c in coros:
                tasks.append(tg.create_task(c))
    except BaseExceptionGroup as group:
        leaves: list[BaseException] = []

        def flatten(g: BaseExceptionGroup[BaseException]) -> None:
            for e in g.exceptions:
                if isinstance(e, BaseExceptionGroup):
                    flatten(e)
                else:
                    leaves.append(e)

        flatten(group)
        worst = min(leaves, key=_severity)
        raise worst  # noqa: B904 - the original keeps its own cause
    return [t.result() for t in tasks]
