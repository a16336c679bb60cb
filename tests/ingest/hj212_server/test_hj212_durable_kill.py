"""Durable before acknowledged, tried the hard way (issue 18).

The real service (``envmon run`` in a subprocess, only the HJ 212 receiver
on) takes hourly uploads from real TCP loggers, each frame with values no
other frame has.  The service is killed with SIGKILL at random moments and
started again; the loggers reconnect and send again every frame they have
no 9014 for.  At the end every reading of every acknowledged frame must be
in the database, and none twice.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from envmon.ingest.hj212.device import Hj212Device
from envmon.timeutil import BEIJING

from .conftest import CATALOG, PASSWORDS, REPO, Harness
from .service import Service, upload_through_kills

T0 = datetime(2025, 6, 1, 0, tzinfo=BEIJING)
LOGGERS = 8
FRAMES = 60  # per logger, one hour each
ROUNDS = 4
PARAMS = {"a34004": 0.0, "a34002": 20.0, "a21004": 5.0}  # pm25, pm10, no2


def _values(logger: int, frame: int) -> dict[str, tuple[float, str]]:
    # Distinct per frame and parameter: a reading found can only be this one.
    base = 10 + frame * 0.5 + logger * 0.01
    return {code: (round(base + offset, 2), "N") for code, offset in PARAMS.items()}


async def _logger(
    index: int, mn: str, port: int, acked: set[tuple[int, int]], done: asyncio.Event
) -> None:
    """Send every frame until it is acknowledged; reconnect after any failure."""
    todo = list(range(FRAMES))
    while todo and not done.is_set():
        dev = Hj212Device("127.0.0.1", port, mn, PASSWORDS[mn], timeout=2.0, retries=0)
        try:
            await dev.connect()
            while todo:
                frame = todo[0]
                reply = await dev.upload("2061", T0 + timedelta(hours=frame), _values(index, frame))
                if reply is not None and reply.cn == "9014":
                    acked.add((index, frame))
                    todo.pop(0)
                await asyncio.sleep(random.uniform(0, 0.02))
        except Exception:  # the service was killed: connect again, send again
            await asyncio.sleep(0.1)
        finally:
            await dev.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigkill_loses_no_acknowledged_reading(hj: Harness, tmp_path: Path) -> None:
    # Loggers of the default profile (config/hj212.yaml gives a few others theirs).
    profiled = yaml.safe_load((REPO / "config" / "hj212.yaml").read_text())["stations"]
    stations = [s for s in CATALOG.stations if s.kind == "air" and s.mn and s.id not in profiled][
        :LOGGERS
    ]
    service = Service(hj.db_url, tmp_path / "var", tmp_path / "service.log")
    acked: set[tuple[int, int]] = set()
    done = asyncio.Event()

    async def after_kill() -> None:
        # Everything acknowledged before the kill must be stored now.
        await _check(hj, stations, set(acked))

    kills = await upload_through_kills(
        service,
        [_logger(i, s.mn or "", service.port, acked, done) for i, s in enumerate(stations)],
        done,
        rounds=ROUNDS,
        rng=random.Random(18),
        pause=(0.3, 1.5),
        after_kill=after_kill,
        within=120,
    )
    assert len(acked) == LOGGERS * FRAMES
    checked = await _check(hj, stations, acked)
    assert kills == ROUNDS
    print(f"frames acked={len(acked)} kills={kills} readings checked={checked}")


async def _check(hj: Harness, stations: list[object], acked: set[tuple[int, int]]) -> int:
    rows = await hj.query(
        "SELECT station_id, parameter, ts, value, count(*) OVER"
        " (PARTITION BY station_id, parameter, period, ts) FROM reading"
        " WHERE source = 'hj212' AND period = '1h'"
    )
    stored = {}
    for station_id, parameter, ts, value, n in rows:
        assert n == 1, f"stored twice: {station_id} {parameter} {ts}"
        stored[(station_id, ts, float(value))] = parameter
    checked = 0
    ids = [s.id for s in stations]  # type: ignore[attr-defined]
    for index, frame in acked:
        ts = T0 + timedelta(hours=frame)
        for code, (value, _) in _values(index, frame).items():
            assert (ids[index], ts, value) in stored, f"acknowledged but lost: {code} {ts}"
            checked += 1
    return checked
