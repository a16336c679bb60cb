"""The contract every registered source kind keeps, run over all of them.

* Output: readings of catalog stations of the kinds the source feeds, known
  parameters, aware times inside the window asked for, quarantined records
  with a reason and their raw form.
* Errors, by what the poller should do: 5xx, 429 (with Retry-After),
  timeouts, refused connections → retriable; 401/403/other 4xx → fatal; an
  unreadable page (truncated JSON, an HTML maintenance page) → PayloadError;
  a slow answer inside the timeout → the same data.

A new kind without a case here, or without a sample block in
``config/sources.yaml``, fails :func:`test_every_kind_has_a_case_and_a_sample_block`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
import yaml

from envmon.db.embedded import free_port
from envmon.ingest.sources import (
    REGISTRY,
    Fetched,
    PayloadError,
    SourceFatalError,
    TransientSourceError,
    load_sources,
)
from envmon.parameters import BY_CODE, PERIODS
from envmon.schemas.readings import Validator

from .conftest import (
    CATALOG,
    KINDS_OF,
    REPO,
    FakePlatform,
    Reply,
    bj,
    fixture,
    make_source,
    source_config,
)

AIR_CODES = {"1081A": "air-taiyuan-jiancaoping", "1082A": "air-taiyuan-nanzhai"}


@dataclass
class Case:
    config: dict[str, Any]
    routes: dict[str, str]  # path → fixture file
    fault_path: str  # the data request a fault is injected into
    window: tuple[datetime, datetime]
    json: bool = True
    secret: str | None = None
    extra: dict[str, Reply] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "cnemc_air": Case(
        {"stations": AIR_CODES, "options": {"path": "/air"}},
        {"/air": "cnemc_air_2025011009.json"},
        "/air",
        (bj(2025, 1, 10, 8), bj(2025, 1, 10, 9)),
    ),
    "water_auto": Case(
        {"match": ["name"], "options": {"path": "/water"}},
        {"/water": "water_auto_page1.json"},
        "/water",
        (bj(2025, 1, 10, 0), bj(2025, 1, 11, 0)),
    ),
    "cma_surface": Case(
        {"match": ["station_no"]},
        {"/api": "cma_surface.json"},
        "/api",
        (bj(2025, 1, 10, 7), bj(2025, 1, 11, 1)),
    ),
    "openaq_v3": Case(
        {"stations": {"8118": "air-taiyuan-jiancaoping"}},
        {
            "/v3/locations/8118": "openaq_location.json",
            "/v3/sensors/3917/hours": "openaq_hours_pm25_p2.json",
            "/v3/sensors/3918/hours": "openaq_hours_co.json",
            "/v3/sensors/3919/hours": "openaq_hours_no2.json",
        },
        "/v3/sensors/3918/hours",
        (datetime(2025, 1, 10, 0, tzinfo=UTC), datetime(2025, 1, 10, 6, tzinfo=UTC)),
        secret="key",
    ),
    "generic_json": Case(
        {
            "match": ["id"],
            "options": {
                "path": "/api/air",
                "records": "data.list",
                "layout": "wide",
                "station": "siteCode",
                "time": "monitorTime",
                "columns": {"pm25": "pm25", "co": "co", "no2": "no2"},
                "kinds": ["air"],
            },
        },
        {"/api/air": "generic.json"},
        "/api/air",
        (bj(2025, 1, 10, 0), bj(2025, 1, 11, 0)),
    ),
    "generic_csv": Case(
        {
            "match": ["name"],
            "options": {
                "path": "/export.csv",
                "layout": "wide",
                "station": "断面",
                "time": "时间",
                "time_format": "%Y%m%d%H",
                "period": "4h",
                "columns": {"ph": "pH", "do": "溶解氧", "nh3n": "氨氮"},
                "kinds": ["water"],
            },
        },
        {"/export.csv": "generic.csv"},
        "/export.csv",
        (bj(2025, 1, 10, 0), bj(2025, 1, 11, 0)),
        json=False,
    ),
}
KINDS = sorted(CASES)


def setup(platform: FakePlatform, kind: str, fault: Reply | None = None, **over: Any) -> Case:
    case = CASES[kind]
    for path, name in case.routes.items():
        ctype = "application/json" if case.json else "text/csv"
        platform.on(path, Reply(fixture(name), content_type=ctype))
    if fault is not None:
        platform.on(case.fault_path, fault)
    return case


async def fetch(
    platform: FakePlatform,
    session: aiohttp.ClientSession,
    kind: str,
    base_url: str | None = None,
    **over: Any,
) -> Fetched:
    case = CASES[kind]
    cfg = source_config(kind, base_url or platform.base_url, **{**case.config, **over})
    return await make_source(cfg, session, secret=case.secret).fetch(*case.window)


def test_every_kind_has_a_case_and_a_sample_block() -> None:
    assert set(REGISTRY) == set(CASES), "every source kind needs a contract case"
    raw = yaml.safe_load((REPO / "config" / "sources.yaml").read_text(encoding="utf-8"))
    sample_kinds = {s["kind"] for s in raw["sources"]}
    assert sample_kinds == set(REGISTRY), "every kind needs a sample block in sources.yaml"
    shipped = load_sources(REPO / "config" / "sources.yaml")
    assert {s.kind for s in shipped.simulator.sources} >= {  # type: ignore[union-attr]
        "cnemc_air",
        "water_auto",
        "cma_surface",
        "openaq_v3",
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_output_contract(
    kind: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    case = setup(platform, kind)
    cfg = source_config(kind, platform.base_url, **case.config)
    src = make_source(cfg, session, secret=case.secret)
    got = await src.fetch(*case.window)
    start, end = case.window
    assert len(got) > 0
    n = len(got)
    assert len(got.parameter) == len(got.time) == len(got.flag) == len(got.period) == n
    feeds = set(src.feeds())
    for station, parameter, t, period, rec in zip(
        got.station, got.parameter, got.time, got.period, got.record, strict=True
    ):
        assert CATALOG.by_id[station].kind in feeds
        assert BY_CODE[parameter].kind == KINDS_OF[station]
        assert period in PERIODS
        assert 0 <= rec < len(got.records)
        if isinstance(t, datetime):
            assert t.tzinfo is not None and start <= t < end
    for r in got.rejects:
        assert r.source == cfg.name and r.reason and r.raw
    v = Validator(KINDS_OF).validate_frame(got.frame(), cfg.name)
    assert len(v.batch) + len(v.rejected) == n
    assert all(r.line is not None and 0 <= r.line < len(got.records) for r in v.rejected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("fault", "error", "check"),
    [
        (
            Reply("Internal Server Error", status=500, content_type="text/plain"),
            TransientSourceError,
            "HTTP 500",
        ),
        (Reply("", status=503, headers={"Retry-After": "120"}), TransientSourceError, "HTTP 503"),
        (
            Reply({"detail": "Too many"}, status=429, headers={"Retry-After": "7"}),
            TransientSourceError,
            "HTTP 429",
        ),
        (Reply({"detail": "Unauthorized"}, status=401), SourceFatalError, "HTTP 401"),
        (Reply({"detail": "Forbidden"}, status=403), SourceFatalError, "credentials"),
        (Reply({"detail": "bad request"}, status=400), SourceFatalError, "HTTP 400"),
        (Reply(hang=True), TransientSourceError, "timeout"),
        (
            Reply("<html><body>系统维护中</body></html>", content_type="text/html"),
            PayloadError,
            "unreadable JSON|not in the header",
        ),
    ],
    ids=["500", "503", "429", "401", "403", "400", "timeout", "html-page"],
)
async def test_error_contract(
    kind: str,
    fault: Reply,
    error: type[Exception],
    check: str,
    platform: FakePlatform,
    session: aiohttp.ClientSession,
) -> None:
    setup(platform, kind, fault)
    with pytest.raises(error, match=check) as info:
        await fetch(platform, session, kind, timeout=0.3)
    err = info.value
    if fault.status == 429:
        assert isinstance(err, TransientSourceError) and err.retry_after == 7.0
    if fault.status == 503:
        assert isinstance(err, TransientSourceError) and err.retry_after == 120.0
    if isinstance(err, SourceFatalError | TransientSourceError) and fault.status >= 400:
        assert getattr(err, "status", None) == fault.status


@pytest.mark.parametrize("kind", [k for k in KINDS if CASES[k].json])
async def test_truncated_json_is_a_payload_error(
    kind: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    case = CASES[kind]
    body = fixture(case.routes[case.fault_path])
    setup(platform, kind, Reply(body[: len(body) // 2]))
    with pytest.raises(PayloadError, match="unreadable JSON") as info:
        await fetch(platform, session, kind)
    assert info.value.raw  # kept for the quarantine


@pytest.mark.parametrize("kind", KINDS)
async def test_slow_answer_inside_the_timeout_is_fine(
    kind: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    case = setup(platform, kind)
    expected = await fetch(platform, session, kind)
    body = fixture(case.routes[case.fault_path])
    platform.on(
        case.fault_path,
        Reply(body, delay=0.05, content_type="application/json" if case.json else "text/csv"),
    )
    got = await fetch(platform, session, kind, timeout=10)
    assert sorted(map(str, zip(got.station, got.parameter, got.time, got.value, strict=True))) == (
        sorted(
            map(
                str,
                zip(
                    expected.station, expected.parameter, expected.time, expected.value, strict=True
                ),
            )
        )
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_refused_connection_is_retriable(
    kind: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    setup(platform, kind)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(TransientSourceError):
        await fetch(platform, session, kind, base_url=closed)


async def test_retry_after_as_an_http_date(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    setup(platform, "cnemc_air", Reply("", status=429, headers={"Retry-After": when}))
    with pytest.raises(TransientSourceError) as info:
        await fetch(platform, session, "cnemc_air")
    assert info.value.retry_after is not None and 60 < info.value.retry_after <= 90
