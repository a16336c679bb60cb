"""Each source kind against a real HTTP server serving payloads shaped like the platform's.

What is checked is the platform's conventions: time labels and zones, missing
markers and sentinels, units, paging, station mapping, and that one bad
record is quarantined (with its reason and raw form) while the rest is kept.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import aiohttp
import pytest

from envmon.errors import ConfigError
from envmon.ingest.sources import Fetched, SourceFatalError, TransientSourceError
from envmon.ingest.sources.convert import unit_factor
from envmon.schemas.readings import Validator

from .conftest import (
    CATALOG,
    KINDS_OF,
    FakePlatform,
    Reply,
    bj,
    fixture,
    make_source,
    source_config,
)

AIR_CODES = {
    "1081A": "air-taiyuan-jiancaoping",
    "1082A": "air-taiyuan-nanzhai",
    "1083A": "air-taiyuan-julun",
    "1084A": "air-taiyuan-jianhe",
}


def readings(f: Fetched) -> dict[tuple[str, str, datetime], float | str | None]:
    return {
        (s, p, t): v
        for s, p, t, v in zip(f.station, f.parameter, f.time, f.value, strict=True)
        if isinstance(t, datetime)
    }


def validated(f: Fetched, source: str = "t") -> tuple[int, list[str]]:
    v = Validator(KINDS_OF).validate_frame(f.frame(), source)
    return len(v.batch), sorted(r.reason for r in v.rejected)


# --------------------------------------------------------------------------- cnemc_air


async def test_cnemc_air_end_of_hour_time_points_and_dashes(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", Reply(fixture("cnemc_air_2025011009.json")))
    cfg = source_config(
        "cnemc_air", platform.base_url, stations=AIR_CODES, options={"path": "/air"}
    )
    src = make_source(cfg, session)
    got = await src.fetch(bj(2025, 1, 10, 8), bj(2025, 1, 10, 9))
    # One request, for the END of the hour asked for, in Beijing time.
    assert [r.query for r in platform.seen("/air")] == [{"TimePoint": "2025-01-10 09:00:00"}]
    r = readings(got)
    start = bj(2025, 1, 10, 8)  # TimePoint 09:00 is the 08:00–09:00 mean
    assert {p: v for (s, p, t), v in r.items() if s == "air-taiyuan-jiancaoping"} == {
        "pm25": 88.0,
        "pm10": 131.0,
        "so2": 21.0,
        "no2": 57.0,
        "co": 1.6,  # mg/m³ as published and stored
        "o3": 8.0,
    }
    assert all(t == start for (_, _, t) in r)
    # "—", "" and null are missing values, not errors.
    assert {p for (s, p, _) in r if s == "air-taiyuan-nanzhai"} == {"pm10", "so2"}
    assert got.missing == 4
    assert got.ignored == 1  # 1001A (北京) is not ours
    # Quarantined by the source: an unreadable TimePoint, a record without StationCode.
    reasons = sorted(x.reason for x in got.rejects)
    assert reasons == ["record without StationCode", "unreadable TimePoint '2025-01-10 9点'"]
    assert "9点" in next(x.raw for x in got.rejects if "9点" in x.reason)
    # …and by the validator: text where a number belongs, a negative concentration.
    n, why = validated(got)
    assert n == 6 + 2 + 4
    assert why == ["negative concentration -4", "value '1.2.3' is not a number"]


async def test_cnemc_air_aspnet_dates_and_wrapped_rows(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", Reply(fixture("cnemc_air_aspnet.json")))
    cfg = source_config(
        "cnemc_air",
        platform.base_url,
        stations=AIR_CODES,
        options={"path": "/air", "time_param": None},
    )
    got = await make_source(cfg, session).fetch(bj(2025, 1, 10, 0), bj(2025, 1, 11, 0))
    # /Date(1736470800000)/ = 2025-01-10 09:00 Beijing → the 08:00 hour.
    assert set(got.time) == {bj(2025, 1, 10, 8)}
    assert len(got) == 6
    assert platform.seen("/air")[0].query == {}  # snapshot mode: no TimePoint


# --------------------------------------------------------------------------- water_auto


async def test_water_auto_table_paging_year_less_times_and_units(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on(
        "/water",
        Reply(fixture("water_auto_page1.json")),
        Reply(fixture("water_auto_page2.json")),
    )
    cfg = source_config(
        "water_auto",
        platform.base_url,
        match=["name"],
        options={"path": "/water", "page_size": 3},
    )
    got = await make_source(cfg, session).fetch(bj(2025, 1, 10, 0), bj(2025, 1, 11, 0))
    pages = platform.seen("/water")
    assert [p.query["PageIndex"] for p in pages] == ["1", "2"]
    assert pages[0].query["start"] == "2025-01-10 00:00:00"
    assert pages[0].query["end"] == "2025-01-11 00:00:00"
    r = readings(got)
    q = "water-hutuo-qiaoergou"
    # "01-10 08:00" has no year: placed in the window's year; the start of a 4-h cycle.
    t8 = bj(2025, 1, 10, 8)
    assert r[(q, "codmn", t8)] == 2.3  # the <span> wrapper is stripped
    assert r[(q, "conductivity", t8)] == 583.0  # 58.3 mS/m → µS/cm
    assert r[(q, "ph", t8)] == 8.12
    assert set(got.period) == {"4h"}
    # "--" and "*" are missing; 12:00 has turbidity and NH3-N missing.
    assert (q, "turbidity", bj(2025, 1, 10, 12)) not in r
    assert (q, "nh3n", bj(2025, 1, 10, 12)) not in r
    assert got.missing == 2
    assert got.ignored == 1  # 岗南水库 is in Hebei
    assert [x.reason for x in got.rejects] == ["row has 5 cells, the header 17"]
    n, why = validated(got)
    assert why == ["value '0.0.35' is not a number"]
    assert n == 9 + 7 + 8


async def test_water_auto_busy_answer_is_transient(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/water", Reply(fixture("water_auto_busy.json")))
    cfg = source_config("water_auto", platform.base_url, match=["name"], options={"path": "/water"})
    with pytest.raises(TransientSourceError, match="系统繁忙"):
        await make_source(cfg, session).fetch(bj(2025, 1, 10, 0), bj(2025, 1, 11, 0))


def test_water_year_is_placed_near_the_window() -> None:
    cfg = source_config("water_auto", "http://x.invalid", match=["name"])
    src = make_source(cfg, None)  # type: ignore[arg-type]
    payload = json.loads(fixture("water_auto_page1.json"))
    for row in payload["tbody"]:
        row[3] = "12-31 20:00"
    got = src.parse(payload, bj(2025, 1, 1, 0), bj(2025, 1, 2, 0))  # type: ignore[attr-defined]
    assert {t for t in got.time} == {bj(2024, 12, 31, 20)}


# --------------------------------------------------------------------------- cma_surface


async def test_cma_surface_utc_hours_sentinels_and_request(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/api", Reply(fixture("cma_surface.json")))
    cfg = source_config(
        "cma_surface",
        platform.base_url,
        match=["station_no"],
        options={"user_id": "USR_TEST", "batch": 200},
    )
    src = make_source(cfg, session, secret="s3cret")
    got = await src.fetch(bj(2025, 1, 10, 7), bj(2025, 1, 11, 1))
    (req,) = platform.seen("/api")
    # The service's time range is UTC and closed; observation times close their hour.
    assert req.query["timeRange"] == "[20250110000000,20250110170000]"
    assert req.query["interfaceId"] == "getSurfEleByTimeRangeAndStaID"
    assert req.query["dataCode"] == "SURF_CHN_MUL_HOR"
    assert req.query["userId"] == "USR_TEST" and req.query["pwd"] == "s3cret"
    # The 11 weather stations with a 5-digit 区站号: ten national and 五台山中台顶 (53589).
    assert len(req.query["staIDs"].split(",")) == 11
    assert req.query["elements"].startswith("Station_Id_C,Year,Mon,Day,Hour,TEM,RHU,PRS")
    r = readings(got)
    # Hour 0 UTC = 08:00 Beijing, closing the 07:00 hour.
    t = datetime(2025, 1, 9, 23, tzinfo=UTC)
    assert r[("wx-53677", "air_temp", t)] == -4.3
    assert r[("wx-53677", "visibility", t)] == 8200.0
    assert r[("wx-53677", "precip", t)] == 0.0
    # Hour 16 UTC = 00:00 Beijing of the 11th: 999999 missing, 999990 trace → 0.0,
    # 999017 calm → no direction, 999998 not observed.
    late = datetime(2025, 1, 10, 15, tzinfo=UTC)
    assert r[("wx-53677", "precip", late)] == 0.0
    assert ("wx-53677", "rh", late) not in r
    assert ("wx-53677", "wind_dir", late) not in r
    assert ("wx-53677", "visibility", late) not in r
    assert r[("wx-53677", "wind_speed", late)] == 0.1
    assert got.ignored == 1  # 54511 (北京)
    assert [x.reason for x in got.rejects] == [
        "unreadable observation time Year=2025 Mon=1 Day=10 Hour=25"
    ]
    n, why = validated(got)
    assert why == ["value 85 °C outside the plausible range [-50, 50]"]
    assert n == 7 + 4 + 7  # 53677 at 16 UTC: TEM, PRS, wind speed and the trace of rain


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("cma_surface_busy.json", TransientSourceError),
        ("cma_surface_auth.json", SourceFatalError),
    ],
)
async def test_cma_return_codes(
    platform: FakePlatform, session: aiohttp.ClientSession, name: str, error: type[Exception]
) -> None:
    # The service says HTTP 200 even when the query failed: returnCode decides.
    platform.on("/api", Reply(fixture(name)))
    cfg = source_config("cma_surface", platform.base_url, match=["station_no"])
    with pytest.raises(error, match="CMA returnCode"):
        await make_source(cfg, session).fetch(bj(2025, 1, 10, 0), bj(2025, 1, 10, 6))


async def test_cma_no_data_is_an_empty_answer(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/api", Reply(fixture("cma_surface_nodata.json")))
    cfg = source_config("cma_surface", platform.base_url, match=["station_no"])
    got = await make_source(cfg, session).fetch(bj(2025, 1, 10, 0), bj(2025, 1, 10, 6))
    assert len(got) == 0 and not got.rejects


# --------------------------------------------------------------------------- openaq_v3


async def test_openaq_sensors_pages_units_flags_and_key(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/v3/locations/8118", Reply(fixture("openaq_location.json")))
    platform.on(
        "/v3/sensors/3917/hours",
        Reply(fixture("openaq_hours_pm25_p1.json")),
        Reply(fixture("openaq_hours_pm25_p2.json")),
    )
    platform.on("/v3/sensors/3918/hours", Reply(fixture("openaq_hours_co.json")))
    platform.on("/v3/sensors/3919/hours", Reply(fixture("openaq_hours_no2.json")))
    cfg = source_config(
        "openaq_v3",
        platform.base_url,
        stations={"8118": "air-taiyuan-jiancaoping"},
        options={"limit": 3},
    )
    got = await make_source(cfg, session, secret="k-123").fetch(
        datetime(2025, 1, 10, 0, tzinfo=UTC), datetime(2025, 1, 10, 6, tzinfo=UTC)
    )
    assert all(r.headers.get("X-API-Key") == "k-123" for r in platform.requests)
    pm = platform.seen("/v3/sensors/3917/hours")
    assert [p.query["page"] for p in pm] == ["1", "2"]  # a full page → ask for the next
    assert pm[0].query["datetime_from"] == "2025-01-10T00:00:00Z"
    assert not platform.seen("/v3/sensors/3920/hours")  # temperature is not envmon's
    r = readings(got)
    t0 = datetime(2025, 1, 10, 0, tzinfo=UTC)  # datetimeFrom: the start of the hour
    assert r[("air-taiyuan-jiancaoping", "pm25", t0)] == 88.0
    # 1.4 ppm CO = 1.4 × 28.010 / 24.465 mg/m³; 21 ppb NO2 = 21 × 46.0055 / 24.465 µg/m³.
    assert r[("air-taiyuan-jiancaoping", "co", t0)] == pytest.approx(1.6028, abs=1e-4)
    assert r[("air-taiyuan-jiancaoping", "no2", t0)] == pytest.approx(39.49, abs=1e-2)
    assert got.missing == 1  # a null value
    assert [x.reason for x in got.rejects] == ["value flagged by the provider (flagInfo.hasFlags)"]
    n, why = validated(got)
    assert why == ["negative concentration -1143.76"]  # -999 ppm, converted, then refused
    assert n == 4


async def test_openaq_gone_location_is_a_station_error(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/v3/locations/8118", Reply(fixture("openaq_location.json")))
    platform.on("/v3/sensors/3917/hours", Reply(fixture("openaq_hours_pm25_p2.json")))
    platform.on("/v3/sensors/3918/hours", Reply(fixture("openaq_hours_co.json")))
    platform.on("/v3/sensors/3919/hours", Reply({"detail": "Sensor not found"}, status=404))
    cfg = source_config(
        "openaq_v3",
        platform.base_url,
        stations={"8118": "air-taiyuan-jiancaoping", "9999": "air-taiyuan-nanzhai"},
    )
    got = await make_source(cfg, session, secret="k").fetch(
        datetime(2025, 1, 10, 0, tzinfo=UTC), datetime(2025, 1, 10, 6, tzinfo=UTC)
    )
    assert set(got.station_errors) == {"air-taiyuan-nanzhai", "air-taiyuan-jiancaoping"}
    assert "404" in got.station_errors["air-taiyuan-nanzhai"]
    assert "sensor 3919" in got.station_errors["air-taiyuan-jiancaoping"]
    assert len(got) == 2  # the other sensors still count


def test_openaq_needs_a_key() -> None:
    cfg = source_config("openaq_v3", "http://x.invalid", stations={"1": "air-taiyuan-nanzhai"})
    with pytest.raises(ConfigError, match="API key"):
        make_source(cfg, None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- generic


async def test_generic_json_wide_with_units(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/api/air", Reply(fixture("generic.json")))
    cfg = source_config(
        "generic_json",
        platform.base_url,
        match=["id"],
        options={
            "path": "/api/air",
            "params": {"from": "{start}", "to": "{end}"},
            "request_time_format": "%Y-%m-%d %H:%M:%S",
            "records": "data.list",
            "layout": "wide",
            "station": "siteCode",
            "time": "monitorTime",
            "time_format": "%Y-%m-%d %H:%M:%S",
            "time_label": "end",
            "columns": {"pm25": "pm25", "co": "co", "no2": "no2"},
            "units": {"co": "mg/m3"},
            "kinds": ["air"],
        },
    )
    got = await make_source(cfg, session).fetch(bj(2025, 1, 10, 0), bj(2025, 1, 11, 0))
    assert platform.seen("/api/air")[0].query == {
        "from": "2025-01-10 00:00:00",
        "to": "2025-01-11 00:00:00",
    }
    r = readings(got)
    assert r[("air-taiyuan-jiancaoping", "pm25", bj(2025, 1, 10, 8))] == 88.0
    assert r[("air-taiyuan-jiancaoping", "co", bj(2025, 1, 10, 8))] == 1.6
    assert got.ignored == 1 and got.missing == 2
    assert [x.reason for x in got.rejects] == ["unreadable time 'yesterday' (%Y-%m-%d %H:%M:%S)"]
    n, why = validated(got)
    assert why == ["value '107 ppb' is not a number"]
    assert n == 3


async def test_generic_csv_long_rows_and_short_lines(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/export.csv", Reply(fixture("generic.csv"), content_type="text/csv"))
    cfg = source_config(
        "generic_csv",
        platform.base_url,
        match=["name"],
        options={
            "path": "/export.csv",
            "layout": "wide",
            "station": "断面",
            "time": "时间",
            "time_format": "%Y%m%d%H",
            "period": "4h",
            "columns": {"ph": "pH", "do": "溶解氧", "nh3n": "氨氮"},
            "kinds": ["water"],
        },
    )
    got = await make_source(cfg, session).fetch(bj(2025, 1, 10, 0), bj(2025, 1, 11, 0))
    r = readings(got)
    assert r[("water-hutuo-qiaoergou", "nh3n", bj(2025, 1, 10, 8))] == 0.128
    assert set(got.period) == {"4h"}
    assert got.ignored == 1 and got.missing == 1
    assert [x.reason for x in got.rejects] == ["line 4: 3 cells, the header has 6"]
    _, why = validated(got)
    assert why == ["value 'abc' is not a number"]


def test_generic_options_are_checked_and_name_the_source() -> None:
    cfg = source_config(
        "generic_json", "http://x.invalid", match=["id"], options={"layout": "long"}
    )
    with pytest.raises(ConfigError, match=r"source 't-generic-json' \(generic_json\).*station"):
        make_source(cfg, None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- shared pieces


def test_unit_conversions_at_the_gb3095_reference_state() -> None:
    # 1 ppm CO = 28.010 / 24.465 = 1.1449 mg/m³; 1 ppb SO2 = 64.066 / 24.465 µg/m³.
    assert unit_factor("co", "ppm") == pytest.approx(1.14490, abs=1e-5)
    assert unit_factor("so2", "ppb") == pytest.approx(2.61868, abs=1e-5)
    assert unit_factor("co", "µg/m³") == 0.001
    assert unit_factor("pressure", "kPa") == 10.0
    assert unit_factor("visibility", "km") == 1000.0
    with pytest.raises(ValueError, match="cannot be converted"):
        unit_factor("pm25", "ppm")


def test_station_map_errors_name_the_source_and_the_code() -> None:
    cfg = source_config(
        "cnemc_air",
        "http://x.invalid",
        stations={"1081A": "air-nowhere", "53677": "wx-53677"},
    )
    with pytest.raises(ConfigError) as info:
        make_source(cfg, None)  # type: ignore[arg-type]
    text = str(info.value)
    assert "source 't-cnemc-air'" in text
    assert "'1081A' maps to unknown catalog station 'air-nowhere'" in text
    assert "'53677' maps to weather station 'wx-53677'" in text
    assert len(CATALOG.of_kind("air")) == 26


async def test_passwords_in_the_query_never_reach_errors(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/api", Reply("denied", status=400, content_type="text/plain"))
    cfg = source_config("cma_surface", platform.base_url, match=["station_no"],
                        options={"user_id": "USR"})  # fmt: skip
    with pytest.raises(SourceFatalError) as info:
        await make_source(cfg, session, secret="hunter2").fetch(
            bj(2025, 1, 10, 0), bj(2025, 1, 10, 6)
        )
    assert "pwd=***" in str(info.value) and "hunter2" not in str(info.value)
    assert platform.seen("/api")[0].query["pwd"] == "hunter2"
