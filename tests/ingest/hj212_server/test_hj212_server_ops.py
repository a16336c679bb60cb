"""Running the receiver: gap recovery, the raw-frame archive, concurrent devices."""

from __future__ import annotations

import asyncio
import gc
import stat
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from envmon.catalog import Station
from envmon.db.spool import Spool
from envmon.ingest.hj212 import encode, format_time
from envmon.ingest.hj212.archive import parse_line
from envmon.ingest.hj212.codec import CpData
from envmon.ingest.hj212.device import Upload
from envmon.ingest.hj212.redact import redact
from envmon.schemas.readings import ReadingBatch
from envmon.timeutil import BEIJING, floor_hour

from ..test_sink import refuse_station
from .conftest import AIR, AIR2, CATALOG, WATER, Harness

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
HOUR = timedelta(hours=1)


async def store_hours(hj: Harness, station_id: str, first: datetime, last: datetime) -> None:
    await hj.execute(
        "INSERT INTO reading (station_id, parameter, period, ts, value, flag, source)"
        " SELECT %s, 'pm25', '1h', t, 30, 'N', 'import'"
        " FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 hour') AS t",
        (station_id, first, last),
    )


def hourly_history(
    served: list[tuple[str, datetime, datetime]],
) -> Callable[[str, datetime, datetime], list[Upload]]:
    def provide(cn: str, begin: datetime, end: datetime) -> list[Upload]:
        served.append((cn, begin, end))
        out: list[Upload] = []
        ts = begin
        while ts <= end:
            out.append((ts, {"a34004": (20.0 + ts.hour, "N"), "a21005": (0.5, "N")}))
            ts += HOUR
        return out

    return provide


async def test_gap_recovery_fills_the_missing_hours(hj: Harness) -> None:
    now_hour = floor_hour(datetime.now(BEIJING))
    await store_hours(hj, AIR.id, now_hour - 10 * HOUR, now_hour - 5 * HOUR)
    served: list[tuple[str, datetime, datetime]] = []
    async with hj.server() as srv:
        async with hj.device(srv, history_provider=hourly_history(served)) as dev:
            await dev.heartbeat()  # the station's first frame on this connection

            async def filled() -> bool:
                rows = await hj.query(
                    "SELECT last_ts, last_success_at FROM ingest_cursor"
                    " WHERE source = 'hj212' AND station_id = %s",
                    (AIR.id,),
                )
                return bool(rows) and rows[0][0] is not None and rows[0][0] >= now_hour - HOUR

            await hj.wait_until(filled)
            # The history answer was 9011, the uploads (each answered 9014), 9012.
            [request] = dev.history_requests
            assert (request.cn, request.st, request.flag, request.mn) == ("2061", "22", 5, AIR.mn)
            assert request.cp.fields["BeginTime"] == format_time(now_hour - 4 * HOUR)
            assert request.cp.fields["EndTime"] == format_time(served[0][2])
        await hj.settled(srv)
    [(cn, begin, end)] = served
    assert cn == "2061" and begin == now_hour - 4 * HOUR
    assert end in (now_hour - HOUR, now_hour)  # the clock may pass the hour meanwhile
    pm25 = [r[3] for r in await hj.readings(AIR.id) if r[1] == "pm25"]
    hours = int((end - (now_hour - 10 * HOUR)) / HOUR) + 1
    assert pm25 == [now_hour - 10 * HOUR + i * HOUR for i in range(hours)]
    [(last_ts, success, error)] = await hj.query(
        "SELECT last_ts, last_success_at, last_error FROM ingest_cursor WHERE station_id = %s",
        (AIR.id,),
    )
    assert last_ts == end and success is not None and error is None


@pytest.mark.parametrize(("max_hours", "asked"), [(72, True), (12, False)], ids=["in", "beyond"])
async def test_gap_recovery_asks_for_a_hole_in_the_middle_within_the_look_back(
    hj: Harness, max_hours: int, asked: bool
) -> None:
    # Issue 18: the last hour is there (an hour ago), but hours 19 and 18 ago
    # are missing. Within the look-back (ENVMON_HJ212__GAP_RECOVERY_MAX_HOURS)
    # the logger is asked for them (and only them: one request per hole);
    # beyond it, not at all.
    now_hour = await _not_at_the_hour()
    await store_hours(hj, AIR.id, now_hour - 30 * HOUR, now_hour - 20 * HOUR)
    await store_hours(hj, AIR.id, now_hour - 17 * HOUR, now_hour - HOUR)
    served: list[tuple[str, datetime, datetime]] = []
    async with hj.server(gap_recovery_max_hours=max_hours) as srv:
        async with hj.device(srv, history_provider=hourly_history(served)) as dev:
            await dev.heartbeat()
            if not asked:
                await asyncio.sleep(0.3)
                assert dev.history_requests == [] and srv.stats.history_requests == 0
                return

            async def filled() -> bool:
                hours = {r[3] for r in await hj.readings(AIR.id) if r[1] == "co"}
                return hours == {now_hour - 19 * HOUR, now_hour - 18 * HOUR}

            await hj.wait_until(filled)
            [request] = dev.history_requests
            assert request.cp.fields["BeginTime"] == format_time(now_hour - 19 * HOUR)
            assert request.cp.fields["EndTime"] == format_time(now_hour - 18 * HOUR)
        await hj.settled(srv)
    assert served == [("2061", now_hour - 19 * HOUR, now_hour - 18 * HOUR)]
    pm25 = [r[3] for r in await hj.readings(AIR.id) if r[1] == "pm25"]
    assert pm25 == [now_hour - 30 * HOUR + i * HOUR for i in range(30)]  # no hole, none twice


async def _not_at_the_hour() -> datetime:
    """The current hour, once far enough from its end that a test's few
    seconds stay in it (the hours asked for are counted from it)."""
    now = datetime.now(BEIJING)
    if now.minute == 59 and now.second >= 45:
        await asyncio.sleep(61 - now.second)
    return floor_hour(datetime.now(BEIJING))


@pytest.mark.parametrize(("max_requests", "expected"), [(6, 4), (2, 2)])
async def test_gap_recovery_asks_one_request_per_hole_at_the_start_middle_and_end(
    hj: Harness, max_requests: int, expected: int
) -> None:
    # Issue 18: one 2061 request per run of missing hours within the look-back,
    # one after the other, so that the logger resends only what is missing:
    # a hole at the start of the window (hours were stored before it), two in
    # the middle and the hours after the last stored one. Capped: the runs
    # closest together are merged (every missing hour is still asked for).
    now_hour = await _not_at_the_hour()
    since = now_hour - 47 * HOUR  # the first whole hour of a 48 h look-back
    await store_hours(hj, AIR.id, now_hour - 60 * HOUR, now_hour - 50 * HOUR)  # before it
    await store_hours(hj, AIR.id, now_hour - 44 * HOUR, now_hour - 30 * HOUR)
    await store_hours(hj, AIR.id, now_hour - 26 * HOUR, now_hour - 20 * HOUR)
    await store_hours(hj, AIR.id, now_hour - 18 * HOUR, now_hour - 6 * HOUR)
    holes = [
        (since, now_hour - 45 * HOUR),
        (now_hour - 29 * HOUR, now_hour - 27 * HOUR),
        (now_hour - 19 * HOUR, now_hour - 19 * HOUR),
        (now_hour - 5 * HOUR, now_hour - HOUR),
    ]
    asked = {
        6: holes,
        # 8 stored hours between the middle holes, 13 before the last, 15 after the first.
        2: [holes[0], (holes[1][0], holes[3][1])],
    }[max_requests]
    served: list[tuple[str, datetime, datetime]] = []
    async with hj.server(gap_recovery_max_hours=48, gap_recovery_max_requests=max_requests) as srv:
        async with hj.device(srv, history_provider=hourly_history(served)) as dev:
            await dev.heartbeat()

            resent = sum(int((e - b) / HOUR) + 1 for b, e in asked)

            async def answered() -> bool:
                # Every hour asked for is stored (the history uploads carry CO too).
                co = [r for r in await hj.readings(AIR.id) if r[1] == "co"]
                return len(co) == resent and srv.stats.history_requests == expected

            await hj.wait_until(answered)
            requests = [
                (r.cp.fields["BeginTime"], r.cp.fields["EndTime"]) for r in dev.history_requests
            ]
            assert requests == [(format_time(b), format_time(e)) for b, e in asked]
            # The next request went once the previous one had finished.
            assert len({r.qn for r in dev.history_requests}) == expected
        await hj.settled(srv)
    assert served == [("2061", b, e) for b, e in asked]
    hours = sorted({r[3] for r in await hj.readings(AIR.id) if r[1] == "pm25"})
    # Every hour from the first stored one to the last complete one, each once
    # (the hours asked for again by the merged request are stored once).
    assert hours == [now_hour - 60 * HOUR + i * HOUR for i in range(10 + 1)] + [
        since + i * HOUR for i in range(47)
    ]
    rows = await hj.query(
        "SELECT count(*), count(DISTINCT (parameter, ts)) FROM reading WHERE station_id = %s",
        (AIR.id,),
    )
    assert rows[0][0] == rows[0][1]
    # Nothing before the look-back was asked for (hours 49 and 48 ago stay missing).
    assert now_hour - 49 * HOUR not in hours and now_hour - 48 * HOUR not in hours


async def test_gap_recovery_of_many_stations_connecting_at_once(hj: Harness) -> None:
    # One look-up answers every station that connected meanwhile: each still
    # gets its own gap.
    now_hour = floor_hour(datetime.now(BEIJING))
    stations = [s for s in CATALOG.stations if s.kind == "air" and s.mn][:6]
    for i, station in enumerate(stations):
        await store_hours(hj, station.id, now_hour - 20 * HOUR, now_hour - (5 + i) * HOUR)
    served: dict[str, list[tuple[str, datetime, datetime]]] = {s.id: [] for s in stations}
    async with hj.server() as srv:
        devices = [
            hj.device(srv, s, history_provider=hourly_history(served[s.id])) for s in stations
        ]
        for dev in devices:
            await dev.connect()
        try:
            await asyncio.gather(*(dev.heartbeat() for dev in devices))

            async def all_asked() -> bool:
                return all(len(dev.history_requests) == 1 for dev in devices)

            await hj.wait_until(all_asked)
            for i, dev in enumerate(devices):
                [request] = dev.history_requests
                assert request.cp.fields["BeginTime"] == format_time(now_hour - (4 + i) * HOUR)
            assert srv.stats.history_requests == len(stations)
        finally:
            for dev in devices:
                await dev.close()


async def test_a_device_closed_as_the_host_asks_for_history_leaves_nothing_unawaited(
    hj: Harness,
) -> None:
    # The cause of the flaky test above: a history request dispatched in the
    # same loop step as close() left the answer coroutine never awaited (its
    # wrapper task was cancelled before it started). Here the request and the
    # close are back to back, every time.
    served: list[tuple[str, datetime, datetime]] = []
    async with hj.server() as srv:
        dev = hj.device(srv, history_provider=hourly_history(served))
        await dev.connect()
        await dev.heartbeat()
        request = dev.message(
            "2061", CpData({"BeginTime": format_time(T0), "EndTime": format_time(T0 + HOUR)})
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dev._dispatch(request)  # as the read loop does on a host request
            await dev.close()
            gc.collect()
        never_awaited = [w for w in caught if "never awaited" in str(w.message)]
        assert never_awaited == []
        assert dev.history_requests == [request]
        assert served == []  # cancelled before it asked its provider


async def test_a_2061_of_rtd_items_only_is_acknowledged_and_rejected_with_the_reason(
    hj: Harness,
) -> None:
    async with hj.server() as srv:
        async with hj.device(srv) as dev:
            cp = CpData(
                {"DataTime": format_time(T0)},
                {"a34004": {"Rtd": "35.0", "Flag": "N"}, "a21005": {"Rtd": "0.6"}},
            )
            reply = await dev.send(dev.message("2061", cp))
            assert reply is not None and reply.cn == "9014"
        await hj.settled(srv)
    assert await hj.readings() == []
    rows = await hj.rejected()
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [
        (
            AIR.id,
            param,
            T0,
            f"Rtd={raw!r} in a CN=2061 upload: an instantaneous value is not the period's Avg",
        )
        for param, raw in (("pm25", "35.0"), ("co", "0.6"))
    ]


async def test_a_batch_the_database_refuses_is_quarantined_acknowledged_and_blocks_nothing(
    hj: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 18: any error while storing. The real database refuses one
    # station's rows (SQLSTATE 53400, as TimescaleDB past a limit). The frame's
    # readings are written and fsynced to spool/quarantine/ with the reason, so
    # the logger may delete them: it gets its 9014. The other station's uploads
    # after it are stored, nothing is spooled as "database down".
    refuse_station(hj.db_url, AIR.id)
    async with hj.server() as srv:
        async with hj.device(srv) as refused, hj.device(srv, AIR2) as fine:
            reply = await refused.send(refused.upload_message("2061", T0, {"a34004": (35.0, "N")}))
            assert reply is not None and reply.cn == "9014"
            for k in range(3):
                later = await fine.send(
                    fine.upload_message("2061", T0 + k * HOUR, {"a34004": (40.0 + k, "N")})
                )
                assert later is not None and later.cn == "9014"
        await hj.settled(srv)
    assert [(r[0], r[1], r[3], r[4]) for r in await hj.readings()] == [
        (AIR2.id, "pm25", T0 + k * HOUR, 40.0 + k) for k in range(3)
    ]
    spool = Spool(hj.settings().spool_dir)
    assert spool.pending() == []  # not taken for "database unavailable"
    (kept,) = spool.quarantined()
    reason = kept.with_name(kept.name + ".reason.txt").read_text(encoding="utf-8")
    assert "refused by the database" in reason and "refused for the test" in reason
    back = Spool.load(kept)
    assert isinstance(back, ReadingBatch)
    assert set(back.station_id) == {AIR.id} and list(back.value) == [35.0]
    assert "ingest_cursor update failed" not in caplog.text


async def test_ingest_cursor_follows_without_a_flush(hj: Harness) -> None:
    async with hj.server() as srv:
        async with hj.device(srv) as dev:
            await dev.send_hourly(T0, {"a34004": (35.0, "N")})
            await dev.send_hourly(T0 + HOUR, {"a34004": (36.0, "N")})

            async def recorded() -> bool:
                rows = await hj.query(
                    "SELECT last_ts, last_success_at FROM ingest_cursor WHERE station_id = %s",
                    (AIR.id,),
                )
                return bool(rows) and rows[0][0] == T0 + HOUR and rows[0][1] is not None

            # Held back at most CURSOR_INTERVAL after the batch, then written by itself.
            await hj.wait_until(recorded, within=3.0)


@pytest.mark.parametrize(
    ("last_hours_ago", "max_hours"),
    [(1, 72), (100, 72)],
    ids=["recent", "beyond-max"],
)
async def test_no_gap_request_when_recent_or_too_old(
    hj: Harness, last_hours_ago: int, max_hours: int
) -> None:
    now_hour = floor_hour(datetime.now(BEIJING))
    last = now_hour - last_hours_ago * HOUR
    await store_hours(hj, AIR.id, last - 3 * HOUR, last)
    served: list[tuple[str, datetime, datetime]] = []
    async with hj.server(gap_recovery_max_hours=max_hours) as srv:
        async with hj.device(srv, history_provider=hourly_history(served)) as dev:
            await dev.heartbeat()
            await asyncio.sleep(0.2)
            assert dev.history_requests == [] and srv.stats.history_requests == 0


async def test_refused_history_request_is_recorded(hj: Harness) -> None:
    now_hour = floor_hour(datetime.now(BEIJING))
    await hj.execute(
        "INSERT INTO ingest_cursor (source, station_id, last_ts) VALUES ('hj212', %s, %s)",
        (AIR.id, now_hour - 6 * HOUR),
    )
    async with hj.server() as srv:
        async with hj.device(srv) as dev:  # no history provider: it refuses (QnRtn=2)
            await dev.heartbeat()

            async def recorded() -> bool:
                rows = await hj.query(
                    "SELECT last_error FROM ingest_cursor WHERE station_id = %s", (AIR.id,)
                )
                return bool(rows) and rows[0][0] is not None

            await hj.wait_until(recorded)
    [(error,)] = await hj.query(
        "SELECT last_error FROM ingest_cursor WHERE station_id = %s", (AIR.id,)
    )
    assert error.startswith("history request ") and "QnRtn=2 (request refused)" in error


async def test_two_devices_at_once(hj: Harness) -> None:
    async with hj.server() as srv:

        async def push(station: Station, code: str, value: float) -> None:
            async with hj.device(srv, station) as dev:
                for h in range(24):
                    await dev.send_hourly(T0 + h * HOUR, {code: (value + h, "N")})

        await asyncio.gather(push(AIR, "a34004", 10.0), push(AIR2, "a34004", 50.0))
        await push(WATER, "w21003", 0.1)
        await hj.settled(srv)
    counts = await hj.query(
        "SELECT station_id, count(*), min(value) FROM reading GROUP BY station_id ORDER BY 1"
    )
    assert sorted(counts) == sorted([(AIR.id, 24, 10.0), (AIR2.id, 24, 50.0), (WATER.id, 24, 0.1)])


async def test_archive_keeps_every_frame_with_time_peer_and_status(hj: Harness) -> None:
    old = hj.tmp_path / "archive" / "hj212-2000-01-01.log"
    old.parent.mkdir(parents=True)
    old.write_text("x\n")
    async with hj.server(archive_retention_days=30) as srv:
        assert not old.exists()  # pruned at start
        async with hj.device(srv) as dev:
            ok = encode(dev.upload_message("2061", T0, {"a34004": (35.0, "N")}))
            bad = ok.replace(b"a34004-Avg=35", b"a34004-Avg=36")  # CRC no longer matches
            await dev.send_raw(bad)
            await dev.send_raw(ok)
            local = dev._writer.get_extra_info("sockname")  # type: ignore[union-attr]
            await hj.wait_until(lambda: _has_answer(dev.received))
        async with hj.device(srv, pw="000000", timeout=0.1, retries=0) as intruder:
            wrong = encode(intruder.upload_message("2061", T0, {"a34004": (1.0, "N")}))
            await intruder.send_raw(wrong + b"\x00\xff\\garbage\r\n")
        await hj.settled(srv)
    [path] = (hj.tmp_path / "archive").iterdir()
    assert path.name == f"hj212-{datetime.now(UTC):%Y-%m-%d}.log"
    records = [parse_line(line) for line in path.read_text(encoding="utf-8").splitlines()]
    # Only frames that parsed, their passwords redacted (issue 18): the bad
    # CRC and the garbage are in ``rejected``, summarised.
    assert [(r.status, r.mn, r.raw) for r in records] == [
        ("ok", AIR.mn, redact(ok)),
        ("rejected", AIR.mn, redact(wrong)),
    ]
    assert b"PW=***;" in records[0].raw and b"PW=000000" not in records[1].raw
    assert records[0].peer == f"{local[0]}:{local[1]}"
    # Only the service's user reads the archive.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert all(abs(datetime.now(UTC) - r.received_at) < timedelta(minutes=1) for r in records)


async def _has_answer(messages: list[object]) -> bool:
    return bool(messages)
