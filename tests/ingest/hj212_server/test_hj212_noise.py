"""Issue 18: CRC mismatches and authentication failures are visible — one WARNING
per MN per hour with the count, and a line in ``envmon status`` — on a real
receiver over TCP and a real database."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import psycopg
import pytest

from envmon.ingest.hj212 import encode
from envmon.ingest.hj212.device import DeviceTimeout, Hj212Device
from envmon.ingest.hj212.noise import AUTH, CRC
from envmon.service import hj212_noise
from envmon.timeutil import BEIJING

from .conftest import AIR, AIR2, Harness, wrong_crc

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
HOUR = timedelta(hours=1)
VALUES = {"a34004": (35.0, "N")}


async def bad_crc_then_good(dev: Hj212Device, ts: datetime) -> None:
    await dev.send_raw(wrong_crc(encode(dev.upload_message("2061", ts, VALUES))))
    await dev.send_hourly(ts, VALUES)  # answered: the bad frame before it was taken


async def wrong_password(dev: Hj212Device, ts: datetime) -> None:
    with pytest.raises(DeviceTimeout):
        await dev.send_hourly(ts, VALUES)


async def test_crc_and_auth_failures_warn_once_per_mn_per_hour_with_the_count(
    hj: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="envmon.ingest.hj212.noise")
    clock = [1000.0]

    def warned() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "envmon.ingest.hj212.noise"]

    async with hj.server(auth_failures_before_close=100) as srv:
        srv.noise.clock = lambda: clock[0]
        async with (
            hj.device(srv) as dev,
            hj.device(srv, AIR2, pw="999999", timeout=0.3, retries=0) as intruder,
        ):
            for k in range(5):
                await bad_crc_then_good(dev, T0 + k * HOUR)
                await wrong_password(intruder, T0 + k * HOUR)
            first = warned()
            assert len(first) == 2
            assert f"hj212 {CRC} from MN={AIR.mn}: count=1 " in first[0]
            assert f"hj212 {AUTH} from MN={AIR2.mn}: count=1 " in first[1]
            assert f"wrong access password for MN {AIR2.mn}" in first[1]
            assert "999999" not in "".join(first)
            clock[0] += 3600.0  # an hour later: the count of the quiet hour, once
            await bad_crc_then_good(dev, T0 + 5 * HOUR)
            await wrong_password(intruder, T0 + 5 * HOUR)
            later = warned()[2:]
            assert len(later) == 2
            assert f"hj212 {CRC} from MN={AIR.mn}: count=5 " in later[0]
            assert f"hj212 {AUTH} from MN={AIR2.mn}: count=5 " in later[1]
            assert srv.noise.totals == {CRC: 6, AUTH: 6}
        await hj.settled(srv)
    # `envmon status`: counted from the rejects of the last hour (another process).
    async with await psycopg.AsyncConnection.connect(hj.db_url) as conn:
        assert await hj212_noise(conn) == {
            "crc_mismatch": {"frames": 6, "from": 1},
            "auth_failed": {"frames": 6, "from": 1},
        }


def test_envmon_status_prints_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    from envmon.cli import _print_status

    st = {
        "postgresql": "15",
        "timescaledb": None,
        "stations": {},
        "readings_total": 0,
        "rejected_24h": {},
        "spool_pending_files": 0,
        "hj212_noise_1h": {
            "crc_mismatch": {"frames": 6, "from": 1},
            "auth_failed": {"frames": 1234, "from": 3},
        },
    }
    _print_status(st)
    assert (
        "HJ 212 in the last hour: 6 CRC mismatches from 1 MN(s), "
        "1,234 authentication failures from 3 MN(s)"
    ) in capsys.readouterr().out
