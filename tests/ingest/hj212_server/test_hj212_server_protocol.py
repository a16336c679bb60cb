"""The receiver speaks HJ 212 to real TCP devices and stores what they upload."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from envmon.ingest.hj212 import CpData, Message, decode, encode
from envmon.ingest.hj212.server import Hj212Server
from envmon.timeutil import BEIJING

from .conftest import AIR, PASSWORDS, WATER, Harness

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
HOUR = {
    "a34004": (35.2, "N"),  # PM2.5 in µg/m³ (config/hj212.yaml air override)
    "a34002": (78.0, "N"),
    "a21026": (12.0, "N"),  # SO2 µg/m³
    "a21004": (35.0, "N"),
    "a05024": (98.0, "C"),  # O3, flagged calibrating
    "a21005": (0.8, "N"),  # CO mg/m³
}


async def test_hourly_upload_is_answered_and_stored(hj: Harness, srv: Hj212Server) -> None:
    async with hj.device(srv) as dev:
        upload = dev.upload_message("2061", T0, HOUR)
        reply = await dev.send(upload)
    # §7.7: same QN, ST=91, CN=9014, same PW and MN, Flag=4 (2017), empty CP.
    assert reply is not None and dev.received == [reply] and reply.qn == upload.qn
    assert (reply.st, reply.cn, reply.flag, reply.pw, reply.mn) == (
        "91",
        "9014",
        4,
        PASSWORDS[AIR.mn],
        AIR.mn,
    )
    assert reply.cp == CpData()
    await hj.settled(srv)
    rows = await hj.readings()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        (AIR.id, "co", "1h", T0, 0.8, "N", "hj212"),
        (AIR.id, "no2", "1h", T0, 35.0, "N", "hj212"),
        (AIR.id, "o3", "1h", T0, 98.0, "C", "hj212"),
        (AIR.id, "pm10", "1h", T0, 78.0, "N", "hj212"),
        (AIR.id, "pm25", "1h", T0, 35.2, "N", "hj212"),
        (AIR.id, "so2", "1h", T0, 12.0, "N", "hj212"),
    ]
    assert await hj.rejected() == []
    # The hourly upload moved the station's cursor.
    cursor = await hj.query(
        "SELECT last_ts, last_success_at IS NOT NULL FROM ingest_cursor"
        " WHERE source = 'hj212' AND station_id = %s",
        (AIR.id,),
    )
    assert cursor == [(T0, True)]


async def test_periods_of_each_data_command(hj: Harness, srv: Hj212Server) -> None:
    ts = T0 + timedelta(minutes=37, seconds=12)
    async with hj.device(srv) as dev:
        await dev.send_realtime(ts, {"a34004": (41.0, "N")})  # 2011: the sampling instant
        await dev.send_minute(T0 + timedelta(minutes=5), {"a34004": (40.0, "N")}, interval=5)
        await dev.send_minute(T0, {"a34004": (39.0, "N")}, interval=10)  # not a stored period
        await dev.upload("2031", T0.replace(hour=0), {"a34004": (38.0, "N")})  # 2031: the day
        await dev.upload("2061", T0, {"a34004": (41.3, "N")})
    await hj.settled(srv)
    rows = {(r[2], r[3]): r[4] for r in await hj.readings(AIR.id)}
    assert rows == {
        ("rt", ts): 41.0,
        ("5min", T0 + timedelta(minutes=5)): 40.0,
        ("1d", T0.replace(hour=0)): 38.0,
        ("1h", T0): 41.3,
    }
    [reject] = await hj.rejected()
    assert reject[1] == AIR.id and "unknown period '10min'" in reject[5]
    assert "a34004-Avg=39" in reject[4]  # the raw frame is kept


async def test_water_station_units(hj: Harness, srv: Hj212Server) -> None:
    async with hj.device(srv, WATER) as dev:
        await dev.send_hourly(
            T0, {"w01001": (7.62, "N"), "w21003": (0.215, "N"), "w01009": (8.1, "M")}
        )
    await hj.settled(srv)
    rows = [(r[1], r[4], r[5]) for r in await hj.readings(WATER.id)]
    assert rows == [("do", 8.1, "M"), ("nh3n", 0.215, "N"), ("ph", 7.62, "N")]


async def test_no_answer_when_a_is_0(hj: Harness, srv: Hj212Server) -> None:
    async with hj.device(srv) as dev:
        message = dev.upload_message("2061", T0, {"a34004": (35.0, "N")}, flag=4)
        assert await dev.send(message) is None
        # A heartbeat afterwards is answered: the upload before it was not.
        await dev.heartbeat()
        assert [m.cn for m in dev.received] == ["9013"]
    await hj.settled(srv)
    assert [(r[1], r[4]) for r in await hj.readings()] == [("pm25", 35.0)]


def _lone_packet(pno: int, value: str, hour: str = "20250601090000") -> Message:
    return Message(
        qn="20250601100000001",
        st="22",
        cn="2061",
        pw=PASSWORDS[AIR.mn],
        mn=AIR.mn,
        flag=7,
        pnum=2,
        pno=pno,
        cp=CpData({"DataTime": hour}, {"a34004" if pno == 1 else "a34002": {"Avg": value}}),
    )


async def test_split_packets_one_answer_each_then_merged(hj: Harness, srv: Hj212Server) -> None:
    async with hj.device(srv) as dev:
        parts = [{"a34004": (35.0, "N"), "a34002": (70.0, "N")}, {"a21005": (0.9, "N")}]
        answers = await dev.send_split("2061", T0, parts)
        assert len(answers) == 2
        sent = [m for m in dev.received if m.cn == "9014"]
        assert answers == sent and answers[0].qn != answers[1].qn
        await srv.flush()
        # Two packets, one hour: three readings.
        assert {r[1] for r in await hj.readings()} == {"pm25", "pm10", "co"}
        # A lone first packet of another hour waits for its second.
        first = _lone_packet(1, "1")
        reply = await dev.send(first)
        assert reply is not None and reply.qn == first.qn
    await hj.settled(srv)
    # The connection closed with the group open (issue 18: no longer rejected
    # then): its acknowledged packet waits in the journal for the rest, which
    # the device sends on its next connection.
    assert len(await hj.readings()) == 3 and await hj.rejected() == []
    assert len(srv.journal) == 1 and srv.split_groups_open == 1
    async with hj.device(srv) as dev:
        assert await dev.send(_lone_packet(2, "2")) is not None
    await hj.settled(srv)
    nine = [r[1:5] for r in await hj.readings() if r[3] == T0 + timedelta(hours=1)]
    assert nine == [
        ("pm10", "1h", T0 + timedelta(hours=1), 2.0),
        ("pm25", "1h", T0 + timedelta(hours=1), 1.0),
    ]
    assert await hj.rejected() == [] and len(srv.journal) == 0 and srv.split_groups_open == 0


async def test_split_group_whose_rest_never_comes_is_rejected_after_the_time_out(
    hj: Harness,
) -> None:
    async with hj.server(split_timeout_s=0.5) as srv:
        async with hj.device(srv) as dev:
            assert await dev.send(_lone_packet(1, "1")) is not None
        await hj.settled(srv)
        assert await hj.rejected() == []

        async def rejected() -> bool:
            await srv.flush()
            return bool(await hj.rejected())

        await hj.wait_until(rejected)
        [reject] = await hj.rejected()
        assert reject[1] == AIR.id
        assert reject[5].startswith("split_incomplete") and "timed out after 0.5 s" in reject[5]
        assert "PNO 1 of PNUM=2" in reject[5]
        # The packet as it came, its password redacted.
        assert "a34004-Avg=1" in reject[4] and "PW=***" in reject[4]
        assert f"PW={PASSWORDS[AIR.mn]}" not in reject[4]
        assert len(srv.journal) == 0


async def test_time_calibration_1013_gets_9013_then_1012(
    hj: Harness, srv: Hj212Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="envmon.ingest.hj212.server")
    async with hj.device(srv) as dev:
        before = datetime.now(BEIJING).replace(microsecond=0)
        reply = await dev.request_time()
        assert (reply.cn, reply.st, reply.flag) == ("9013", "91", 4)
        async with asyncio.timeout(2):
            when = await dev.wait_time_set()
        request = next(m for m in dev.received if m.cn == "1012")
        assert request.flag == 5 and request.mn == AIR.mn and request.pw == PASSWORDS[AIR.mn]
        assert before - timedelta(seconds=1) <= when <= datetime.now(BEIJING)
        assert [m.cn for m in dev.received] == ["9013", "1012"]

        # The device answered 9011 + 9012 and the receiver closed the request.
        async def finished() -> bool:
            return "set_time request finished" in caplog.text

        await hj.wait_until(finished, within=2)
    assert "ok=True ExeRtn=1 (success)" in caplog.text


async def test_heartbeat_9015_gets_9013(hj: Harness, srv: Hj212Server) -> None:
    async with hj.device(srv, version=2) as dev:  # HJ 212-2025: Flag=9 out, Flag=8 back
        reply = await dev.heartbeat()
    assert (reply.cn, reply.st, reply.flag, reply.qn) == ("9013", "91", 8, dev.received[0].qn)


async def test_chunked_merged_and_garbage_tcp_writes(hj: Harness, srv: Hj212Server) -> None:
    async with hj.device(srv) as dev:
        frames = [
            encode(dev.upload_message("2061", T0 + timedelta(hours=h), {"a34004": (30.0 + h, "N")}))
            for h in range(4)
        ]
        # One byte at a time.
        for i in range(len(frames[0])):
            await dev.send_raw(frames[0][i : i + 1])
        # Two frames merged into one write, with garbage and blank lines around them.
        await dev.send_raw(b"\x00\xffnoise\r\n" + frames[1] + b"\r\n" + frames[2] + b"junk")
        # A frame split across writes at an awkward place.
        await dev.send_raw(frames[3][:7])
        await asyncio.sleep(0.05)
        await dev.send_raw(frames[3][7:])
        await hj.wait_until(answered(dev.received, "9014", 4))
    await hj.settled(srv)
    assert [r[4] for r in await hj.readings()] == [30.0, 31.0, 32.0, 33.0]
    reasons = [r[5] for r in await hj.rejected()]
    assert len(reasons) == 2 and all(r.startswith("garbage") for r in reasons)


def answered(messages: list[Message], cn: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return sum(m.cn == cn for m in messages) >= n

    return check


async def test_bad_values_are_quarantined_with_the_frame(hj: Harness, srv: Hj212Server) -> None:
    async with hj.device(srv) as dev:
        await dev.send_hourly(
            T0,
            {
                "a34004": ("abc", "N"),  # not a number
                "a34002": (-5.0, "N"),  # negative concentration (validator)
                "a21004": (30.0, "X"),  # flag not in Table 8
                "a99999": (1.0, "N"),  # unknown code
                "w21003": (0.5, "N"),  # a water parameter from an air station
                "a21005": (0.7, "N"),  # fine
            },
        )
    await hj.settled(srv)
    assert [(r[1], r[4]) for r in await hj.readings()] == [("co", 0.7)]
    rejected = await hj.rejected()
    reasons = sorted(r[5] for r in rejected)
    assert len(reasons) == 5
    assert any("'abc' is not a number" in r for r in reasons)
    assert any("negative concentration" in r for r in reasons)
    assert any("'X' not in HJ 212-2017 Table 8" in r for r in reasons)
    assert any("unknown pollutant code 'a99999'" in r for r in reasons)
    assert any("not measured at air station" in r for r in reasons)
    assert all(r[0] == "hj212" and r[1] == AIR.id and "CN=2061" in r[4] for r in rejected)


@pytest.mark.parametrize("version", [0, 1])
async def test_answer_flag_follows_the_device_version(
    hj: Harness, srv: Hj212Server, version: int
) -> None:
    async with hj.device(srv, version=version) as dev:
        reply = await dev.send_hourly(T0, {"a34004": (35.0, "N")})
    assert reply.flag == version << 2
    assert decode(encode(reply)) == reply
