"""Issue 17: the loggers that really exist, against a real receiver over TCP.

MODBUS CRCs (configured and ``auto``), Annex C real-time frames with Flag=7
alone, zero-padded split packets with DataTime in the first packet only, PolId
lists and repeated PolId groups, SM4-encrypted HJ 212-2025 uploads (right and
wrong key), the 1014 key exchange, RF=1 corrections, every CN that asks for an
answer, misaligned period times and a 2005 logger's mg/m³ SO2.  The stations
with a profile are the demo's (config/hj212.yaml).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from envmon.catalog import Station
from envmon.ingest.hj212 import CpData, crc16, encode
from envmon.ingest.hj212.codec import FLAG_A, FLAG_D
from envmon.ingest.hj212.device import DeviceTimeout, Hj212Device
from envmon.ingest.hj212.profile import load_config
from envmon.simulate.loggers import SimulatedLoggers
from envmon.timeutil import BEIJING

from .conftest import AIR, CATALOG, PASSWORDS, REPO, Harness

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
WRONG = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def station(station_id: str) -> Station:
    return CATALOG.by_id[station_id]


MODBUS = station("air-placeholder-01")  # crc: modbus
SWAPPED = station("air-placeholder-02")  # crc: modbus_swapped, length: plus6
EDITION_2005 = station("air-placeholder-03")  # edition: "2005"
SM4 = station("air-placeholder-04")  # edition: "2025", encryption: sm4
AUTO = station("air-placeholder-05")  # crc: auto


def write_keys(path: Path, keys: dict[str, bytes]) -> None:
    entries: dict[str, object] = {mn: pw for mn, pw in PASSWORDS.items()}
    for mn, key in keys.items():
        entries[mn] = {"password": PASSWORDS[mn], "sm4_key": key.hex().upper()}
    path.write_text(yaml.safe_dump(entries), encoding="utf-8")
    path.chmod(0o600)


async def values_of(hj: Harness, station_id: str) -> list[tuple[str, str, datetime, float]]:
    rows = await hj.readings(station_id)
    return [(p, period, ts, v) for _, p, period, ts, v, _, _ in rows]


async def rejected(hj: Harness, station_id: str | None = None) -> list[str]:
    rows = await hj.query(
        "SELECT reason FROM rejected WHERE %(s)s::text IS NULL OR station_id = %(s)s ORDER BY id",
        {"s": station_id},
    )
    return [r for (r,) in rows]


async def test_modbus_crc_loggers_are_answered_in_their_variant_and_stored(hj: Harness) -> None:
    async with hj.server() as srv:
        modbus = hj.device(srv, MODBUS, crc="modbus")
        swapped = hj.device(srv, SWAPPED, crc="modbus_swapped", length_offset=6)
        async with modbus, swapped:
            # The device's decoder only accepts its own variant: an answer
            # in Annex A would not reach it and it would time out.
            await modbus.send_hourly(T0, {"a34004": (35.0, "N")})
            await swapped.send_hourly(T0, {"a34004": (36.0, "N")})
            assert not modbus.errors and not swapped.errors
        await srv.flush()
    assert await values_of(hj, MODBUS.id) == [("pm25", "1h", T0, 35.0)]
    assert await values_of(hj, SWAPPED.id) == [("pm25", "1h", T0, 36.0)]


async def test_a_standard_logger_sending_modbus_is_refused_with_the_reason(hj: Harness) -> None:
    async with hj.server() as srv:
        async with hj.device(srv, AIR, crc="modbus", retries=0, timeout=0.5) as dev:
            with pytest.raises(DeviceTimeout):
                await dev.send_hourly(T0, {"a34004": (35.0, "N")})
        await srv.flush()
    assert await values_of(hj, AIR.id) == []
    (reason,) = await rejected(hj, AIR.id)
    assert reason.startswith("crc_mismatch: the CRC is modbus")
    assert "annex_a" in reason


async def test_crc_auto_setting_learns_each_devices_variant(
    hj: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="envmon.ingest.hj212.session")
    async with hj.server(crc_auto=True) as srv:
        async with hj.device(srv, AIR, crc="modbus_swapped") as dev:
            await dev.send_hourly(T0, {"a34004": (35.0, "N")})
            await dev.send_hourly(T0 + timedelta(hours=1), {"a34004": (37.0, "N")})
        async with hj.device(srv, AUTO, crc="modbus") as dev:  # crc: auto in its profile
            await dev.send_hourly(T0, {"a34004": (30.0, "N")})
        await srv.flush()
        assert srv.directory.learned[AIR.mn.upper()] == "modbus_swapped"  # type: ignore[union-attr]
    assert [v for *_, v in await values_of(hj, AIR.id)] == [35.0, 37.0]
    assert [v for *_, v in await values_of(hj, AUTO.id)] == [30.0]
    learned = [r for r in caplog.messages if "crc variant" in r and AIR.id in r]
    assert len(learned) == 1  # logged once


async def test_split_packets_sharing_a_qn_store_every_reading_in_any_order(hj: Harness) -> None:
    # Issue 18: the common shape — every packet of one upload carries the same
    # QN, DataTime in one packet only (here the last one written), the packets
    # sent back to back without waiting and arriving out of order.
    async with hj.server() as srv:
        async with hj.device(srv) as dev:
            base = dev.upload_message(
                "2061", T0, {"a34004": (35.0, "N"), "a21005": (0.8, "N"), "a34002": (60.0, "N")}
            )
            codes = list(base.cp.pollutants)
            packets = [
                replace(
                    base,
                    flag=(dev.version << 2) | FLAG_D | FLAG_A,
                    pnum=3,
                    pno=pno,
                    cp=CpData(
                        base.cp.fields if pno == 3 else {},
                        {codes[pno - 1]: base.cp.pollutants[codes[pno - 1]]},
                    ),
                )
                for pno in (1, 2, 3)
            ]
            await dev.send_raw(b"".join(dev.frame(packets[i]) for i in (1, 2, 0)))
            answers = [await dev.next_message() for _ in packets]
            assert [(a.cn, a.qn) for a in answers] == [("9014", base.qn)] * 3
        await hj.settled(srv)
    assert await values_of(hj, AIR.id) == [
        ("co", "1h", T0, 0.8),
        ("pm10", "1h", T0, 60.0),
        ("pm25", "1h", T0, 35.0),
    ]
    assert await rejected(hj) == []


async def test_annex_c_realtime_zero_padded_splits_and_polid_lists(hj: Harness) -> None:
    async with hj.server() as srv:
        async with hj.device(srv) as dev:
            # Annex C's real-time example: Flag=7 without PNUM/PNO, one packet.
            realtime = dev.upload_message("2011", T0, {"a34004": (41.0, "N")}, flag=7)
            assert b"Flag=7;CP=" in encode(realtime)
            reply = await dev.send(realtime)
            assert reply is not None and reply.cn == "9014"
            # PNUM=00000002;PNO=00000001, DataTime in the first packet only.
            answers = await dev.send_split(
                "2061",
                T0,
                [{"a34004": (35.0, "N")}, {"a21005": (0.8, "N")}],
                datatime_first_only=True,
                pad=8,
            )
            assert [a.cn for a in answers] == ["9014", "9014"]
            # An alarm-style PolId list and 3020 groups (PolId repeated).
            info = dev.message(
                "3020",
                CpData({"DataTime": "20250601080000", "PolId": "LIST"}),
            )
            frame = encode(info)[6:-6].decode()
            body = frame.replace(
                "PolId=LIST",
                "PolId=a34004,a34002;i12001-Info=1;PolId=a21005;i12001-Info=2",
            )
            data = body.encode()
            await dev.send_raw(b"##%04d%b%04X\r\n" % (len(data), data, crc16(data)))
            answer = await dev.next_message()
            assert answer.cn == "9014" and answer.qn == info.qn
        await srv.flush()
    assert await values_of(hj, AIR.id) == [
        ("co", "1h", T0, 0.8),
        ("pm25", "1h", T0, 35.0),
        ("pm25", "rt", T0, 41.0),
    ]
    info_rows = await hj.query(
        "SELECT pol_id, info_id, value FROM hj212_device_info WHERE station_id = %s"
        " ORDER BY pol_id",
        (AIR.id,),
    )
    assert info_rows == [("a21005", "i12001-Info", "2"), ("a34004,a34002", "i12001-Info", "1")]
    (items,) = await hj.query(
        "SELECT items FROM hj212_device_event WHERE station_id = %s AND cn = '3020'", (AIR.id,)
    )
    assert [k for k, _ in items[0]].count("PolId") == 2


async def test_sm4_upload_stored_with_the_right_key_refused_with_a_wrong_one(
    hj: Harness,
) -> None:
    assert SM4.mn is not None
    write_keys(hj.tmp_path / "hj212-secrets.yaml", {SM4.mn: KEY})
    async with hj.server() as srv:
        async with hj.device(srv, SM4, version=2, sm4_key=KEY) as dev:
            await dev.send_hourly(T0, {"a34004": (35.0, "N"), "a21026": (8.0, "N")})
            # The receiver's request after a 1013 goes back encrypted: the
            # device decrypts it and sets its clock.
            await dev.request_time()
            async with asyncio.timeout(3):
                await dev.wait_time_set()
            # 1014: the device asks for its key; 9013, then 1014 with NewSK.
            reply = await dev.send(dev.message("1014", CpData({"SKCreateTime": "20250601080000"})))
            assert reply is not None and reply.cn == "9013"
            async with asyncio.timeout(3):
                while not dev.new_keys:  # noqa: ASYNC110 (a list filled by the device)
                    await asyncio.sleep(0.02)
            assert dev.new_keys == [KEY.hex().upper()]
        async with hj.device(srv, SM4, version=2, sm4_key=WRONG, retries=0, timeout=0.5) as bad:
            with pytest.raises(DeviceTimeout):
                await bad.send_hourly(T0 + timedelta(hours=1), {"a34004": (99.0, "N")})
        async with hj.device(srv, SM4, version=2, retries=0, timeout=0.5) as plain:
            with pytest.raises(DeviceTimeout):  # its profile says it encrypts
                await plain.send_hourly(T0 + timedelta(hours=2), {"a34004": (98.0, "N")})
        await srv.flush()
    assert await values_of(hj, SM4.id) == [("pm25", "1h", T0, 35.0), ("so2", "1h", T0, 8.0)]
    reasons = await rejected(hj, SM4.id)
    assert len(reasons) == 2
    assert reasons[0].startswith("decrypt: EncryptedData does not decrypt")
    assert reasons[1].startswith("decrypt: station air-placeholder-04 encrypts")


@pytest.mark.parametrize(
    ("cn", "answer"),
    [
        ("2013", "9014"),
        ("2052", "9014"),
        ("2062", "9014"),
        ("2111", "9014"),
        ("3019", "9014"),
        ("3020", "9014"),
        ("1001", "9013"),
        ("1014", "9013"),
    ],
)
async def test_every_cn_that_asks_gets_its_answer(hj: Harness, cn: str, answer: str) -> None:
    async with hj.server() as srv:
        async with hj.device(srv, version=2) as dev:
            cp = CpData({"DataTime": "20250601080000"}, {"a34004": {"Rtd": "12", "Flag": "N"}})
            reply = await dev.send(dev.message(cn, cp))
            assert reply is not None
            assert (reply.cn, reply.st, reply.flag) == (answer, "91", 8)  # 2025 echoed
        await srv.flush()
    if cn in ("2013", "3019", "3020"):
        (items,) = await hj.query(
            "SELECT items FROM hj212_device_event WHERE station_id = %s AND cn = %s",
            (AIR.id, cn),
        )
        assert ["DataTime", "20250601080000"] in items[0]


async def test_misaligned_hours_refused_with_a_reason_rf_resend_corrects(hj: Harness) -> None:
    async with hj.server() as srv:
        async with hj.device(srv) as dev:
            misaligned = T0.replace(hour=17, minute=57, second=59)
            await dev.send_hourly(misaligned, {"a34004": (35.0, "N")})
            await dev.upload(
                "2031", T0.replace(hour=18, minute=27, second=4), {"a34004": (9.0, "N")}
            )
            await dev.send_hourly(T0, {"a34004": (35.0, "N")})
            await dev.upload("2061", T0, {"a34004": (40.0, "N")}, fields={"RF": "1"})
        await srv.flush()
    assert await values_of(hj, AIR.id) == [("pm25", "1h", T0, 40.0)]
    reasons = await rejected(hj, AIR.id)
    assert reasons[0].startswith("bad_datatime: DataTime 2025-06-01 17:57:59 of a 1h value")
    assert reasons[1].startswith("bad_datatime: DataTime 2025-06-01 18:27:04 of a 1d value")


async def test_a_2005_logger_so2_in_mg_is_converted(hj: Harness) -> None:
    async with hj.server() as srv:
        dev = Hj212Device(
            "127.0.0.1",
            srv.port,
            EDITION_2005.mn or "",
            PASSWORDS[EDITION_2005.mn or ""],
            version=0,
            timeout=2.0,
        )
        async with dev:
            # "02" is SO2 in mg/m³ by HJ/T 212-2005, whatever air's a21026 override says.
            await dev.send_hourly(T0, {"02": (0.012, "N"), "04": (0.8, "N")})
        await srv.flush()
    assert await values_of(hj, EDITION_2005.id) == [
        ("co", "1h", T0, 0.8),
        ("so2", "1h", T0, 12.0),
    ]


async def test_simulated_loggers_of_every_kind_are_stored(hj: Harness) -> None:
    # The demo's loggers (make run) follow config/hj212.yaml: MODBUS, swapped + 6,
    # 2005, SM4 (and split: the fifth station), auto — all stored, nothing refused.
    stations = [AIR, MODBUS, SWAPPED, EDITION_2005, SM4, AUTO]
    keys = {s.mn: bytes([i]) * 16 for i, s in enumerate(stations, start=1) if s.mn}
    write_keys(hj.tmp_path / "hj212-secrets.yaml", keys)
    hour = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
    async with hj.server() as srv:
        loggers = SimulatedLoggers(
            stations,
            "127.0.0.1",
            srv.port,
            {mn.upper(): pw for mn, pw in PASSWORDS.items()},
            seed=7,
            interval_s=3600.0,
            run_loop=False,
            config=load_config(REPO / "config" / "hj212.yaml"),
            keys=keys,
        )
        async with loggers:
            assert loggers.split == {SM4.id}
            await loggers.send_hour(hour)
        assert (loggers.sent, loggers.failures) == (len(stations), 0)
        await srv.flush()
    assert await rejected(hj) == []
    for s in stations:
        rows = await values_of(hj, s.id)
        assert {(period, ts) for _, period, ts, _ in rows} == {("1h", hour)}, s.id
        assert {p for p, *_ in rows} >= {"pm25", "so2", "co"}, s.id
    # The 2005 logger sent SO2 in mg/m³ ("02"); stored in µg/m³ like the others.
    (so2,) = [v for p, _, _, v in await values_of(hj, EDITION_2005.id) if p == "so2"]
    assert so2 > 1
