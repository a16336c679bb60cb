"""``envmon run --workers N``: one HJ 212 port served by N processes (issue 16).

The kernel gives each new connection to any of the processes (``SO_REUSEPORT``);
every device must still be served by one process, its home, for its split
groups, learned CRC variant, warnings and gap recovery to be right. Proven
with the real service in a subprocess and real TCP loggers that open a new
connection for every packet of their split uploads — so the packets of one
group are accepted by different processes — while a worker is killed with
SIGKILL (and started again by the main process):

* every acknowledged packet's readings are stored, once; no group is rejected;
* every frame of a device is in the raw-frame archive of one process only
  (its home), and both processes served devices;
* killing the main process stops its workers (nothing keeps the port).

Plus the MN peek on the first frame of every published shape in the field
corpus, and the moving of journals and spools when N changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from envmon.catalog import Station
from envmon.db.spool import Spool
from envmon.ingest.hj212 import CpData, Message, encode
from envmon.ingest.hj212.device import Hj212Device
from envmon.ingest.hj212.splitjournal import SplitJournal, SplitPacket
from envmon.ingest.hj212.workers import PEEK_LIMIT, home_of, journal_dir, peek_mn, rehome
from envmon.schemas.readings import Rejection
from envmon.settings import Settings
from envmon.timeutil import BEIJING

from .conftest import PASSWORDS, REPO, Harness
from .service import Service
from .test_hj212_split_kill import PACKETS, _check, _packets, _stations

FIELD = REPO / "tests" / "ingest" / "hj212" / "field"
T0 = datetime(2025, 7, 1, 0, tzinfo=BEIJING)


# --------------------------------------------------------------------------- the MN peek


@pytest.mark.parametrize("case", sorted(p.name for p in FIELD.iterdir() if p.is_dir()))
def test_peek_finds_the_mn_of_every_published_shape(case: str) -> None:
    raw = (FIELD / case / "input.bin").read_bytes()
    end = raw.find(b"\r\n")
    first = raw if end < 0 else raw[: end + 2]  # (one case has no line end)
    mn = first.split(b"MN=", 1)[1].split(b";", 1)[0].decode()
    assert peek_mn(first) == mn
    assert peek_mn(raw) == mn
    # Byte by byte: undecided until the MN's ";" has come, then decided.
    cut = first.index(b"MN=") + 3 + len(mn)
    assert all(peek_mn(first[:n]) is None for n in range(cut + 1))
    assert peek_mn(first[: cut + 1]) == mn


def test_peek_gives_up_on_what_is_no_frame() -> None:
    assert peek_mn(b"GET / HTTP/1.1\r\n") is None  # may still be noise before a frame
    assert peek_mn(b"x" * PEEK_LIMIT) == ""
    assert peek_mn(b"##0050QN=1;ST=22;CN=2011;PW=1;Flag=5;CP=&&&&") == ""  # no MN
    assert peek_mn(b"##0050QN=1;ST=22;CN=2011;PW=1;Flag=5\r\n") == ""
    assert peek_mn(b"##0050QN=1;XMN=77;ST=22;CN=2011;PW=1;Flag=5;CP=&&") == ""


def test_a_device_has_one_home_whatever_the_case_of_its_mn() -> None:
    mns = [s.mn for s in _stations() if s.mn]
    for mn in mns:
        assert home_of(mn, 2) == home_of(mn.lower(), 2) == home_of(f" {mn} ", 2)
    homes = [home_of(mn, 2) for mn in mns]
    assert 0 < sum(homes) < len(homes)  # both workers have devices


# --------------------------------------------------------------------------- N changes


def _packet(mn: str, pno: int) -> SplitPacket:
    message = Message(
        qn=f"20250701000000{pno:03d}",
        st="22",
        cn="2061",
        pw="***",
        mn=mn,
        flag=7,
        pnum=3,
        pno=pno,
        cp=CpData({"DataTime": "20250701000000"}, {"a34004": {"Avg": "12"}}),
    )
    return SplitPacket.of("S", T0, encode(message).decode(), message)


def test_rehome_moves_packets_to_their_home_and_spools_of_workers_gone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, config_dir=REPO / "config")
    mns = [s.mn or "" for s in _stations()[:8]]
    # Written as if by 4 workers: each packet in the journal of its home among 4.
    for k in range(4):
        journal = SplitJournal(journal_dir(settings, k))
        journal.open()
        for mn in mns:
            if home_of(mn, 4) == k:
                journal.append(_packet(mn, 1))
                journal.append(_packet(mn, 2))
        journal.close()
    spool = Spool(tmp_path / "workers" / "3" / "spool")
    spool.append_rejects([Rejection("hj212", "raw", "reason")])
    Spool(tmp_path / "spool").append_rejects([Rejection("hj212", "main", "reason")])

    moved, files = rehome(settings, 2)

    where: dict[str, list[int]] = defaultdict(list)
    for k in range(4):
        for packet in SplitJournal(journal_dir(settings, k)).open():
            where[packet.message.mn].append(k)
    assert {mn: sorted(ks) for mn, ks in where.items()} == {mn: [home_of(mn, 2)] * 2 for mn in mns}
    assert moved == sum(2 for mn in mns if home_of(mn, 4) != home_of(mn, 2))
    assert files == 1 and not spool.pending()
    main = Spool(tmp_path / "spool").pending()
    assert [p.name for p in main] == ["000000000001-rejected.jsonl", "000000000002-rejected.jsonl"]
    # Done once: a second start moves nothing.
    assert rehome(settings, 2) == (0, 0)


# --------------------------------------------------------------------------- the real service


async def _logger(
    index: int,
    mn: str,
    port: int,
    hours: int,
    acked: set[tuple[int, int, int]],
    done: asyncio.Event,
) -> None:
    """Every packet on a connection of its own, resent until acknowledged."""
    todo = [(h, p) for h in range(hours) for p in _packets(index, h, mn)]
    while todo and not done.is_set():
        hour, packet = todo[0]
        dev = Hj212Device("127.0.0.1", port, mn, PASSWORDS[mn], timeout=3.0, retries=0)
        try:
            await dev.connect()
            reply = await dev.send(packet)
            if reply is not None and reply.cn == "9014" and reply.qn == packet.qn:
                assert packet.pno is not None
                acked.add((index, hour, packet.pno))
                todo.pop(0)
        except Exception:  # a worker was killed, or its home is starting: again
            await asyncio.sleep(0.05)
        finally:
            await dev.close()


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _archived_mns(directory: Path) -> set[str]:
    mns = set()
    for path in directory.glob("hj212-*.log"):
        text = path.read_text(encoding="utf-8", errors="replace")
        mns |= {part.split(";", 1)[0] for part in text.split("MN=")[1:]}
    return mns


async def _workers_up(
    service: Service, n: int, *, starts: int = 1, within: float = 60.0
) -> list[int]:
    """The pids of the main process's n - 1 workers, once each says it serves
    (``starts`` times in all: after a restart, 2)."""
    assert service.proc is not None
    async with asyncio.timeout(within):
        while True:
            kids = [pid for pid in _children(service.proc.pid) if _alive(pid)]
            log = service.log.read_text(encoding="utf-8", errors="replace")
            if len(kids) == n - 1 and all(
                log.count(f"hj212 receiver worker {k} of {n} serving") >= starts
                for k in range(1, n)
            ):
                return kids
            await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_workers_serve_each_device_in_its_home_through_a_kill(
    hj: Harness, tmp_path: Path
) -> None:
    # Four devices at home in each process.
    homes = [[s for s in _stations() if home_of(s.mn or "", 2) == k][:4] for k in (0, 1)]
    stations: list[Station] = homes[0] + homes[1]
    hours = 6
    data_dir = tmp_path / "var"
    service = Service(hj.db_url, data_dir, tmp_path / "service.log", ENVMON_HJ212__WORKERS="2")
    acked: set[tuple[int, int, int]] = set()
    done = asyncio.Event()
    await service.start()
    try:
        [worker] = await _workers_up(service, 2)
        tasks = [
            asyncio.create_task(_logger(i, s.mn or "", service.port, hours, acked, done))
            for i, s in enumerate(stations)
        ]
        # SIGKILL the worker once a third is acknowledged; the main process starts it again.
        async with asyncio.timeout(120):
            while len(acked) < len(stations) * hours * len(PACKETS) // 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        os.kill(worker, signal.SIGKILL)
        [again] = await _workers_up(service, 2, starts=2)
        assert again != worker
        async with asyncio.timeout(180):
            await asyncio.gather(*tasks)
    finally:
        done.set()
        assert service.proc is not None
        main_pid = service.proc.pid
        kids = _children(main_pid) if service.proc.poll() is None else []
        await service.stop()
    # Stopped with the main process.
    assert not any(_alive(pid) for pid in kids)

    assert len(acked) == len(stations) * hours * len(PACKETS)
    checked = await _check(hj, stations, acked)  # every acknowledged reading, once
    assert checked == len(acked) * 2
    assert await hj.query("SELECT reason FROM rejected") == []
    # Each device in one process's archive, both processes serving.
    main_mns = _archived_mns(data_dir / "archive")
    worker_mns = _archived_mns(data_dir / "workers" / "1" / "archive")
    mns = {s.mn or "" for s in stations}
    assert main_mns | worker_mns == mns
    assert not main_mns & worker_mns, f"served by both: {main_mns & worker_mns}"
    assert main_mns == {mn for mn in mns if home_of(mn, 2) == 0}
    log = service.log.read_text(encoding="utf-8", errors="replace")
    assert "hj212 receiver worker 1 exited" in log  # the kill, and the restart
    print(json.dumps({"acked": len(acked), "main": len(main_mns), "worker": len(worker_mns)}))


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_workers_stop_when_the_main_process_is_killed(hj: Harness, tmp_path: Path) -> None:
    service = Service(
        hj.db_url, tmp_path / "var", tmp_path / "service.log", ENVMON_HJ212__WORKERS="3"
    )
    await service.start()
    try:
        kids = await _workers_up(service, 3)
        await service.kill()
        async with asyncio.timeout(30):
            while any(_alive(pid) for pid in kids):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        # Nothing listens on the port any more: a new main process can take it.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", service.port)
    finally:
        await service.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_what_a_worker_stores_is_derived_soon(hj: Harness, tmp_path: Path) -> None:
    """The main process's derive job looks at the queue once a minute unless
    its own writes wake it: the worker derives what it stored itself."""
    station = next(s for s in _stations() if home_of(s.mn or "", 2) == 1)
    mn = station.mn or ""
    service = Service(
        hj.db_url, tmp_path / "var", tmp_path / "service.log", ENVMON_HJ212__WORKERS="2"
    )
    await service.start()
    try:
        await _workers_up(service, 2)
        async with Hj212Device("127.0.0.1", service.port, mn, PASSWORDS[mn], timeout=5.0) as dev:
            reply = await dev.send(
                Message(
                    qn="20250701100000001",
                    st="22",
                    cn="2061",
                    pw=PASSWORDS[mn],
                    mn=mn,
                    flag=5,
                    cp=CpData(
                        {"DataTime": "20250701100000"},
                        {
                            "a34004": {"Avg": "35", "Flag": "N"},
                            "a34002": {"Avg": "70", "Flag": "N"},
                        },
                    ),
                )
            )
            assert reply is not None and reply.cn == "9014"
        async with asyncio.timeout(30):
            while not await hj.query(  # noqa: ASYNC110
                "SELECT pm25 FROM air_hour WHERE station_id = %s", (station.id,)
            ):
                await asyncio.sleep(0.2)
    finally:
        await service.stop()
    # Stored and derived by the worker, the device's home.
    assert _archived_mns(tmp_path / "var" / "workers" / "1" / "archive") == {mn}
