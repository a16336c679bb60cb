"""Real payloads recorded from provincial platforms (fixtures/provincial/README.md names them).

A record a platform publishes without a time (.NET's DateTime.MinValue) or with
an impossible one is one reject with its reason, never a failed fetch or poll;
the provincial spellings of the pollutants are read; unknown fields are
reported once per source; a mirror's mislabelled zone is a source setting.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from envmon.app import App
from envmon.ingest.poller import SourcePoller
from envmon.ingest.sources import Fetched
from envmon.ingest.sources.cnemc_air import CnemcAir

from .conftest import (
    FIXTURES,
    FakeClock,
    FakePlatform,
    FakeSleep,
    Reply,
    bj,
    make_source,
    query,
    source_config,
)

# The platforms' own codes, mapped to one catalog station only to be read here.
STATION = "air-taiyuan-jiancaoping"


def payload(name: str) -> Any:
    return json.loads((FIXTURES / "provincial" / name).read_text(encoding="utf-8"))


def values(f: Fetched) -> dict[tuple[str, datetime], float | str | None]:
    return {
        (p, t): v
        for p, t, v in zip(f.parameter, f.time, f.value, strict=True)
        if isinstance(t, datetime)
    }


def cnemc(
    session: aiohttp.ClientSession, base_url: str = "http://127.0.0.1:9", **over: Any
) -> CnemcAir:
    cfg = source_config(
        "cnemc_air",
        base_url,
        stations={"1084A": STATION, "1321A": STATION},
        options={"path": "/air", **over.pop("options", {})},
        **over,
    )
    src = make_source(cfg, session)
    assert isinstance(src, CnemcAir)
    return src


async def test_dotnet_min_date_is_one_reject_and_provincial_names_are_read(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="envmon.ingest.sources.cnemc_air")
    got = cnemc(session).parse(payload("liaoning_station_detail.json"))
    assert [r.reason for r in got.rejects] == [
        "TimePoint '/Date(-62135596800000)/' is .NET DateTime.MinValue"
        " (the platform's 'no time': no data for this station)"
    ]
    assert got.rejects[0].station_id == STATION
    assert '"StationName": "裕农路"' in got.rejects[0].raw
    # The other record: PM25 is PM2.5, O38 and PM2524 are the platform's derived values.
    hour = datetime(2016, 7, 6, 11, tzinfo=UTC)  # TimePoint 12:00Z closes the hour
    assert values(got) == {
        ("pm25", hour): 32.0,
        ("pm10", hour): 67.0,
        ("so2", hour): 9.0,
        ("no2", hour): 18.0,
        ("co", hour): 1.0,
        ("o3", hour): 135.0,
    }
    assert got.missing == 0
    assert not [r for r in caplog.records if "unknown field" in r.getMessage()]


async def test_impossible_time_is_one_reject_not_an_exception(
    session: aiohttp.ClientSession,
) -> None:
    recs = payload("liaoning_station_detail.json")
    recs[0]["TimePoint"] = "0001-01-01 00:00:00"  # readable, but an hour earlier does not exist
    recs.append({**recs[1], "TimePoint": "/Date(99999999999999999999)/"})
    got = cnemc(session).parse(recs)
    reasons = [r.reason for r in got.rejects]
    assert reasons[0].startswith("unreadable record: OverflowError"), reasons
    assert reasons[1] == "unreadable TimePoint '/Date(99999999999999999999)/'"
    assert len(values(got)) == 6  # the good record is whole; nothing of the bad ones
    assert len(got.records) == 1


async def test_lower_case_mirror_and_a_zone_mislabelled_as_z(
    session: aiohttp.ClientSession,
) -> None:
    rec = payload("pm25in_aqis_by_station.json")
    opts = {"station_field": "station_code", "time_field": "time_point"}
    as_sent = cnemc(session, options=opts).parse(rec)
    assert values(as_sent)[("pm25", datetime(2015, 3, 10, 12, tzinfo=UTC))] == 71.0
    # A mirror that writes Beijing time with a 'Z': the source says so.
    fixed = cnemc(session, options=opts, ignore_time_offset=True).parse(rec)
    got = values(fixed)
    hour = bj(2015, 3, 10, 12)  # 13:00 Beijing closes the 12:00–13:00 hour
    assert got == {
        ("pm25", hour): 71.0,
        ("pm10", hour): 137.0,
        ("so2", hour): 33.0,
        ("no2", hour): 37.0,
        ("co", hour): 1.065,
        ("o3", hour): 57.0,
    }
    # A naive time in another zone, declared by the source's timezone.
    naive = [{**rec[0], "time_point": "2015-03-10 13:00:00"}]
    utc = cnemc(session, options=opts, timezone="UTC").parse(naive)
    assert {t for (_, t) in values(utc)} == {datetime(2015, 3, 10, 12, tzinfo=UTC)}


async def test_unknown_fields_reported_once_per_source(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="envmon.ingest.sources.cnemc_air")
    rec = {**payload("liaoning_station_detail.json")[1], "PM1": 12, "Benzene": 3}
    src = cnemc(session)
    for _ in range(3):
        src.parse([rec])
    src.parse([{**rec, "NH3": 5}])
    cnemc(session).parse([rec])  # another source instance: reported for it too
    msgs = [r.getMessage() for r in caplog.records if "unknown field" in r.getMessage()]
    assert msgs == [
        "source=t-cnemc-air unknown field(s) Benzene, PM1 in its records: not read"
        " (map them with options.fields if they are pollutants)",
        "source=t-cnemc-air unknown field(s) NH3 in its records: not read"
        " (map them with options.fields if they are pollutants)",
        "source=t-cnemc-air unknown field(s) Benzene, PM1 in its records: not read"
        " (map them with options.fields if they are pollutants)",
    ]


async def test_poll_with_a_min_date_record_succeeds_and_rejects_it_once(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    recs = payload("liaoning_station_detail.json")
    now_hour = {**recs[1], "TimePoint": "2025-01-10 09:00:00"}  # a current record beside it
    platform.on("/air", Reply([recs[0], now_hour]))
    cfg = source_config(
        "cnemc_air",
        platform.base_url,
        stations={"1084A": STATION},
        options={"path": "/air"},
        initial_lookback="1h",
        interval="10m",
    )
    clock = FakeClock(bj(2025, 1, 10, 9, 30))
    p = SourcePoller(app.intake, cfg, session, clock=clock, sleep=FakeSleep(), rng=random.Random(7))
    for _ in range(2):  # every poll while the record is there
        report = await p.poll()
        assert report.error is None
        clock.advance(minutes=10)
    rows = await query(db_url, "SELECT parameter, value FROM reading ORDER BY parameter")
    assert dict(rows) == {
        "co": 1.0,
        "no2": 18.0,
        "o3": 135.0,
        "pm10": 67.0,
        "pm25": 32.0,
        "so2": 9.0,
    }
    rejected = await query(db_url, "SELECT reason, times, station_id FROM rejected")
    assert len(rejected) == 1
    assert "DateTime.MinValue" in rejected[0][0]
    assert rejected[0][1] == 1  # seen on every poll, stored once
    assert rejected[0][2] == STATION
