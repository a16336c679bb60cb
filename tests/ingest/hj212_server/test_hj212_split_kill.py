"""Split uploads survive SIGKILL: no acknowledged packet is lost (issue 18).

A logger deletes each packet of a split upload once it has that packet's
9014 and only then sends the next; the group's readings can be stored only
when its last packet has come.  The real service (``envmon run`` in a
subprocess) is killed with SIGKILL at random moments while real TCP loggers
send split hourly uploads in the shapes field loggers use:

* DataTime in the first packet only, each packet with a QN of its own;
* one QN for all packets, DataTime in every packet;
* one QN for all packets, DataTime in the first packet only.

Each logger sends a packet until it has its 9014, reconnecting after the
kill, and then the next.  After every kill and at the end every reading of
every acknowledged packet is stored (a group whose packets straddle a kill
is completed from the journal and the packets sent after the restart), none
twice; the journal on disk is 0700/0600 and holds no password.  A group whose
last packet never comes is rejected with the reason after the split
time-out, measured from its last packet, across a restart too.
"""

from __future__ import annotations

import asyncio
import random
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from envmon.catalog import Station
from envmon.ingest.hj212 import CpData, Message
from envmon.ingest.hj212.device import Hj212Device
from envmon.timeutil import BEIJING

from .conftest import CATALOG, PASSWORDS, REPO, Harness
from .service import Service, upload_through_kills

T0 = datetime(2025, 7, 1, 0, tzinfo=BEIJING)
LOGGERS = 6
HOURS = 16  # per logger, three packets each
ROUNDS = 4
# Two parameters per packet (units as config/hj212.yaml's default profile).
PACKETS = (("a34004", "a34002"), ("a21004", "a21026"), ("a05024", "a21005"))
SHAPES = ("first-only, own QNs", "every packet, one QN", "first-only, one QN")


def _value(logger: int, hour: int, code: str) -> float:
    # Distinct per logger, hour and parameter: a reading found can only be this one.
    base = 10 + hour * 0.5 + logger * 0.01 + PACKETS_FLAT.index(code) * 7
    return round(base / 10 if code == "a21005" else base, 3)


PACKETS_FLAT = [code for pair in PACKETS for code in pair]


def _packets(logger: int, hour: int, mn: str) -> list[Message]:
    """The three packets of one hourly upload, in the logger's shape."""
    shape = logger % len(SHAPES)
    ts = T0 + timedelta(hours=hour)
    qn = f"{ts:%Y%m%d%H%M%S}{logger:03d}"
    packets = []
    for pno, codes in enumerate(PACKETS, start=1):
        fields = {"DataTime": f"{ts:%Y%m%d%H%M%S}"} if pno == 1 or shape == 1 else {}
        packets.append(
            Message(
                qn=qn if shape else f"{ts:%Y%m%d%H%M%S}{pno}{logger:02d}",
                st="22",
                cn="2061",
                pw=PASSWORDS[mn],
                mn=mn,
                flag=7,
                pnum=len(PACKETS),
                pno=pno,
                cp=CpData(
                    fields,
                    {c: {"Avg": f"{_value(logger, hour, c):g}", "Flag": "N"} for c in codes},
                ),
            )
        )
    return packets


async def _logger(
    index: int, mn: str, port: int, acked: set[tuple[int, int, int]], done: asyncio.Event
) -> None:
    """Send every packet until it is acknowledged, in order; reconnect after any failure."""
    todo = [(h, p) for h in range(HOURS) for p in _packets(index, h, mn)]
    while todo and not done.is_set():
        dev = Hj212Device("127.0.0.1", port, mn, PASSWORDS[mn], timeout=2.0, retries=0)
        try:
            await dev.connect()
            while todo:
                hour, packet = todo[0]
                reply = await dev.send(packet)
                if reply is not None and reply.cn == "9014" and reply.qn == packet.qn:
                    assert packet.pno is not None
                    acked.add((index, hour, packet.pno))
                    todo.pop(0)
                await asyncio.sleep(random.uniform(0, 0.01))
        except Exception:  # the service was killed: connect again, send again
            await asyncio.sleep(0.1)
        finally:
            await dev.close()


def _stations() -> list[Station]:
    profiled = yaml.safe_load((REPO / "config" / "hj212.yaml").read_text())["stations"]
    return [s for s in CATALOG.stations if s.kind == "air" and s.mn and s.id not in profiled]


def _check_journal(data_dir: Path, stations: list[Station]) -> None:
    journal = data_dir / "hj212" / "open-splits"
    if not journal.exists():
        return
    assert stat.S_IMODE(journal.stat().st_mode) == 0o700
    for path in journal.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        text = path.read_text(encoding="utf-8")
        for station in stations:
            assert f"PW={PASSWORDS[station.mn or '']}" not in text
            assert f'"pw":"{PASSWORDS[station.mn or ""]}"' not in text


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigkill_during_split_uploads_loses_no_acknowledged_packet(
    hj: Harness, tmp_path: Path
) -> None:
    stations = _stations()[:LOGGERS]
    data_dir = tmp_path / "var"
    service = Service(hj.db_url, data_dir, tmp_path / "service.log")
    acked: set[tuple[int, int, int]] = set()
    done = asyncio.Event()
    open_at_kill: list[int] = []

    async def after_kill() -> None:
        acked_at_kill = set(acked)
        # Groups acknowledged in full before the kill are stored; the
        # others' acknowledged packets wait in the journal.
        await _check(hj, stations, acked_at_kill, complete_only=True)
        open_at_kill.append(len({(i, h) for i, h, _ in acked_at_kill} - _complete(acked_at_kill)))
        _check_journal(data_dir, stations)

    kills = await upload_through_kills(
        service,
        [_logger(i, s.mn or "", service.port, acked, done) for i, s in enumerate(stations)],
        done,
        rounds=ROUNDS,
        rng=random.Random(1812),
        pause=(0.5, 2.0),
        after_kill=after_kill,
        within=150,
    )
    assert len(acked) == LOGGERS * HOURS * len(PACKETS)
    checked = await _check(hj, stations, acked)
    _check_journal(data_dir, stations)
    # Every group completed: nothing was given up.
    assert await hj.query("SELECT reason FROM rejected") == []
    assert kills == ROUNDS
    print(
        f"split packets acked={len(acked)} kills={kills} groups open at each kill={open_at_kill}"
        f" readings checked={checked}"
    )


def _complete(acked: set[tuple[int, int, int]]) -> set[tuple[int, int]]:
    groups = {(i, h) for i, h, _ in acked}
    return {g for g in groups if all((*g, p) in acked for p in range(1, len(PACKETS) + 1))}


async def _check(
    hj: Harness,
    stations: list[Station],
    acked: set[tuple[int, int, int]],
    *,
    complete_only: bool = False,
) -> int:
    rows = await hj.query(
        "SELECT station_id, parameter, ts, value, count(*) OVER"
        " (PARTITION BY station_id, parameter, period, ts) FROM reading"
        " WHERE source = 'hj212' AND period = '1h'"
    )
    stored = set()
    for station_id, parameter, ts, value, n in rows:
        assert n == 1, f"stored twice: {station_id} {parameter} {ts}"
        stored.add((station_id, ts, float(value)))
    complete = _complete(acked)
    checked = 0
    for index, hour, pno in acked:
        if complete_only and (index, hour) not in complete:
            continue
        ts = T0 + timedelta(hours=hour)
        for code in PACKETS[pno - 1]:
            value = _value(index, hour, code)
            assert (stations[index].id, ts, value) in stored, (
                f"acknowledged but lost: {SHAPES[index % 3]} {code} {ts} packet {pno}"
            )
            checked += 1
    return checked


async def _send_first_packet(port: int, station: Station, hour: int) -> None:
    mn = station.mn or ""
    async with Hj212Device("127.0.0.1", port, mn, PASSWORDS[mn], timeout=5.0) as dev:
        first = _packets(0, hour, mn)[0]
        reply = await dev.send(first)
        assert reply is not None and reply.cn == "9014"


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_split_group_never_completed_is_rejected_after_the_time_out_across_a_restart(
    hj: Harness, tmp_path: Path
) -> None:
    station = _stations()[0]
    data_dir = tmp_path / "var"
    service = Service(
        hj.db_url, data_dir, tmp_path / "service.log", ENVMON_HJ212__SPLIT_TIMEOUT_S="6"
    )
    loop = asyncio.get_running_loop()
    try:
        await service.start()
        # The first packet of an upload of three, acknowledged; then the service dies.
        await _send_first_packet(service.port, station, 0)
        acked = loop.time()
        await service.kill()
        _check_journal(data_dir, [station])
        assert any(p.stat().st_size for p in (data_dir / "hj212" / "open-splits").iterdir())
        await service.start()
        async with asyncio.timeout(30):
            while not (rows := await hj.query("SELECT station_id, raw, reason FROM rejected")):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        # Not before the time-out, which runs from the last packet whatever restarts.
        assert loop.time() - acked >= 6.0
        [(station_id, raw, reason)] = rows
        assert station_id == station.id
        assert reason.startswith("split_incomplete") and "timed out after 6 s" in reason
        assert "PNO 1 of PNUM=3" in reason
        # What the logger sent is in the reject, its password redacted.
        assert "a34004-Avg=" in raw and "PW=***" in raw
        assert f"PW={PASSWORDS[station.mn or '']}" not in raw
        assert await hj.query("SELECT count(*) FROM reading") == [(0,)]
        # Rejected once: the journal forgot the group (a restart brings nothing back).
        await service.stop()
        await service.start()
        await asyncio.sleep(8)
        assert len(await hj.query("SELECT reason FROM rejected")) == 1
    finally:
        await service.stop()
