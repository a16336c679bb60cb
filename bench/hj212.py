"""Benchmark (issue 4): 2,000 HJ 212 data loggers → ``Hj212Server`` → PostgreSQL.

Goal on the 2-core machine: ≥ 5,000 frames/s sustained (10 values each) into
the database, p99 from send to commit < 1 s, exactly as many readings stored as
sent.

* The receiver is the real ``Hj212Server`` (the service's default tuning) on
  127.0.0.1:0 with the real ``Validator`` and ``Writer`` over a throwaway
  cluster with durable defaults, in *this* process (so that its ``on_batch``
  hook can stamp each batch, and this process's CPU time is the server's CPU
  time; PostgreSQL and the generator are measured from /proc).  ``on_batch``
  is awaited right after the writer's transaction committed — after the
  once-a-second ``ingest_cursor`` update when one is due, so a stamp is late
  by that round trip at worst: an upper bound of the commit time, unlike
  ``received_at`` (``now()``, the start of the transaction).
* The load generator is a separate process (multiprocessing, spawn): 2,000 TCP
  connections, each a water-quality data logger with its own MN that sends
  hourly uploads (CN=2061, Flag=5: the A bit) of 10 pollutants, hour after
  hour (a backlog replay: every logger sends the same hours, as after an
  outage) and, like a real logger, sends its next upload only after the 9014
  for the previous one.
  The connections are paced to a target aggregate rate (each at rate/2,000,
  evenly staggered).  Every frame is encoded (length, CRC) before the clock
  starts, so the generator costs little of the 2 cores the server shares.
* Send → commit: the generator records ``time.monotonic()`` (one clock for
  every process on Linux) when it writes each frame; after the run the frames
  are joined on (station, DataTime) with the commit stamps of the batches that
  carried them.  Figures are over the frames *sent* in the measured window,
  after a warm-up (connection start-up, the receiver's gap-recovery look-ups).
* Readings stored vs sent: ``count(*)`` of ``reading`` after the run against
  10 × every frame the generator wrote (warm-up included).

The machine is shared (other test runs, other benchmarks): the last figure is
how busy the whole machine was during the window, ours and everyone else's.

The ceiling (issue 16): after the measured point, higher offered loads
(``BENCH_HJ212_CEILING``, frames/s, a fresh cluster each, 5 s warm-up and 12 s
measured) until one is not carried (or, when the point itself was not
carried, lower ones — ``BENCH_HJ212_CEILING_DOWN`` — until one is). Not
carried: p99 send → commit ≥ 1 s, or a frame lost. The loggers wait for each
9014, so the rate committed is what the receiver sustained; the highest one
of a carried load is the ceiling, reported against a raw ``COPY``
(CSV, same-shaped table with its key) of the readings the measured point
stored, in the same run. Goal ≥ 0.4×.

Tuning by environment: BENCH_HJ212_CONNS, BENCH_HJ212_RATE (frames/s),
BENCH_HJ212_WARMUP and BENCH_HJ212_SECONDS (s); BENCH_HJ212_DEBUG=1 logs each
batch the receiver writes (size, validation and write time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import yaml
from pydantic import SecretStr

from bench.common import REPO, Timer, bench_cluster, figure
from envmon.catalog import Catalog, load_catalog
from envmon.db.connection import open_pool
from envmon.db.embedded import EmbeddedCluster
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.ingest.hj212 import CpData, Message, encode, format_time
from envmon.ingest.hj212.profile import load_config
from envmon.ingest.hj212.server import Hj212Server
from envmon.ingest.sink import Intake, Sink
from envmon.receivers import ReceiverWorkers
from envmon.schemas.readings import ReadingBatch, Validator
from envmon.settings import AlertSettings, Hj212Settings, Settings
from envmon.timeutil import BEIJING

CONNS = int(os.environ.get("BENCH_HJ212_CONNS", 2000))
RATE = float(os.environ.get("BENCH_HJ212_RATE", 5500))
WARMUP = float(os.environ.get("BENCH_HJ212_WARMUP", 8))
SECONDS = float(os.environ.get("BENCH_HJ212_SECONDS", 25))
GOAL_RATE = 5000.0
GOAL_P99 = 1.0
GOAL_CEILING_RATIO = 0.4  # issue 16: the ceiling against a raw COPY of the same readings
# Offered loads tried above RATE for the ceiling (a fresh cluster each, shorter windows).
CEILING_RATES = [
    float(x) for x in os.environ.get("BENCH_HJ212_CEILING", "6500,7500,9000").split(",") if x
]
CEILING_DOWN = [
    float(x) for x in os.environ.get("BENCH_HJ212_CEILING_DOWN", "4500,3500,2500").split(",") if x
]
# The receiver in several processes (envmon run --workers N): offered loads tried.
WORKERS = int(os.environ.get("BENCH_HJ212_WORKERS", 2))
WORKERS_RATES = [
    float(x)
    for x in os.environ.get("BENCH_HJ212_WORKERS_RATES", "7000,8500,10000,11500").split(",")
    if x
]
CEILING_WARMUP = 5.0
CEILING_SECONDS = 12.0
# Hourly uploads from 2020 on: in the past, and a new key for every frame.
BASE = datetime(2020, 1, 1, tzinfo=BEIJING)
BASE_UTC = np.datetime64("2019-12-31T16:00:00", "us")
PASSWORD = "bench1"
# Water pollutants (HJ 212-2017 Annex B.1): typical level, spread (lognormal σ), decimals.
POLLUTANTS = {
    "w01001": (7.5, 0.03, 2),  # pH
    "w01009": (8.0, 0.2, 2),  # dissolved oxygen, mg/L
    "w01019": (3.0, 0.3, 1),  # permanganate index
    "w01018": (15.0, 0.3, 1),  # COD
    "w01017": (3.0, 0.3, 1),  # BOD5
    "w21003": (0.3, 0.4, 3),  # ammonia nitrogen
    "w21011": (0.1, 0.4, 3),  # total phosphorus
    "w21001": (1.2, 0.3, 2),  # total nitrogen
    "w01010": (15.0, 0.2, 1),  # water temperature, °C
    "w01014": (500.0, 0.2, 0),  # conductivity, µS/cm
}
VALUES = len(POLLUTANTS)
MARKER = "ph"  # one reading per frame: used to join frames with their commit


def bench_catalog(n: int) -> Catalog:
    """``n`` water sections with their own MN (copies of a catalog section)."""
    model = next(s for s in load_catalog(REPO / "config" / "stations.yaml") if s.kind == "water")
    return Catalog(
        model.model_copy(update={"id": station_id(i), "mn": mn(i), "name": f"bench {i}"})
        for i in range(n)
    )


def station_id(i: int) -> str:
    return f"water-bench-{i:05d}"


def mn(i: int) -> str:
    return f"BE{i:022X}"


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# --------------------------------------------------------------------------- generator


def build_frames(i: int, count: int) -> list[bytes]:
    """Connection ``i``'s uploads, hour after hour from BASE, encoded."""
    rng = np.random.default_rng(i)
    spread = np.array([sigma for _, sigma, _ in POLLUTANTS.values()])
    factors = np.exp(rng.standard_normal((count, VALUES)) * spread)
    frames = []
    for k in range(count):
        ts = BASE + timedelta(hours=k)
        pollutants = {
            code: {"Avg": f"{level * f:.{places}f}", "Flag": "N"}
            for (code, (level, _, places)), f in zip(POLLUTANTS.items(), factors[k], strict=True)
        }
        message = Message(
            qn=f"{ts:%Y%m%d%H%M%S}{i % 1000:03d}",
            st="21",
            cn="2061",
            pw=PASSWORD,
            mn=mn(i),
            flag=5,
            cp=CpData({"DataTime": format_time(ts)}, pollutants),
        )
        frames.append(encode(message))
    return frames


class _Logger(asyncio.Protocol):
    """One data logger: sends upload k at its due time, or when the 9014 of
    upload k - 1 arrives if that is later."""

    def __init__(self, run: _Run, index: int, frames: list[bytes]) -> None:
        self.run = run
        self.index = index
        self.frames = frames
        self.transport: asyncio.Transport | None = None
        self.sent: list[float] = []
        self.answered: list[float] = []
        self.buffer = b""
        self.done = run.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def due(self, k: int) -> float:
        return self.run.t0 + (k + self.index / self.run.conns) / self.run.per_conn

    def start(self) -> None:
        self.run.loop.call_at(self.due(0), self.send)

    def send(self) -> None:
        k = len(self.sent)
        now = time.monotonic()
        if k >= len(self.frames) or now >= self.run.t_end or self.transport is None:
            self.finish()
            return
        self.sent.append(now)
        self.transport.write(self.frames[k])

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        answers = self.buffer.count(b"\r\n")
        if not answers:
            return
        self.buffer = self.buffer[self.buffer.rfind(b"\r\n") + 2 :]
        for _ in range(answers):
            if len(self.answered) < len(self.sent):
                self.answered.append(now)
        if len(self.answered) == len(self.sent):
            nxt = self.due(len(self.sent))
            if nxt <= now:
                self.send()
            else:
                self.run.loop.call_at(nxt, self.send)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.finish()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class _Run:
    loop: asyncio.AbstractEventLoop
    conns: int
    per_conn: float
    t0: float = 0.0
    t_end: float = 0.0
    cpu: list[float] = field(default_factory=list)


def generator(
    port: int, conns: int, rate: float, window: tuple[float, float], pipe: Connection
) -> None:
    """The load generator process: build, connect, report ready, run, report."""
    _raise_fd_limit(conns + 256)
    per_conn = rate / conns
    count = int(sum(window) * per_conn) + 2
    frames = [build_frames(i, count) for i in range(conns)]
    asyncio.run(_generate(port, conns, per_conn, frames, window, pipe))


async def _generate(
    port: int,
    conns: int,
    per_conn: float,
    frames: list[list[bytes]],
    window: tuple[float, float],
    pipe: Connection,
) -> None:
    warmup, seconds = window
    loop = asyncio.get_running_loop()
    run = _Run(loop, conns, per_conn)
    loggers = [_Logger(run, i, frames[i]) for i in range(conns)]
    for start in range(0, conns, 200):
        await asyncio.gather(
            *(
                loop.create_connection(lambda lg=lg: lg, "127.0.0.1", port)
                for lg in loggers[start : start + 200]
            )
        )
    pipe.send("ready")
    run.t0 = await loop.run_in_executor(None, pipe.recv)
    run.t_end = run.t0 + warmup + seconds
    for lg in loggers:
        lg.start()
    for at in (run.t0 + warmup, run.t_end):
        loop.call_at(at, lambda: run.cpu.append(time.process_time()))
    # Answers still due after the end: wait for them, but not for ever.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(warmup + seconds + 30):
            await asyncio.gather(*(lg.done for lg in loggers))
    for lg in loggers:
        if lg.transport is not None:
            lg.transport.close()
    await asyncio.sleep(0.5)
    sent = [np.array(lg.sent) for lg in loggers]
    answered = [np.array(lg.answered) for lg in loggers]
    pipe.send({"sent": sent, "answered": answered, "cpu": run.cpu})


# --------------------------------------------------------------------------- CPU accounting


def _stat(pid: int | str) -> list[str]:
    # Fields after the command name, which may itself hold spaces or ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _postgres_cpu(cluster: EmbeddedCluster) -> float:
    """CPU seconds used by the cluster so far: the postmaster, its reaped
    children and its live children (backends, walwriter, checkpointer…)."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
    total = sum(int(x) for x in _stat(postmaster)[11:15])  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(entry.name)
        except (OSError, IndexError):
            continue
        if int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    tick = os.sysconf("SC_CLK_TCK")
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / tick, sum(values) / tick


@dataclass
class _Sample:
    at: float
    server: float
    server_system: float
    postgres: float
    machine: tuple[float, float]


# --------------------------------------------------------------------------- server side


@dataclass
class Outcome:
    sent: list[np.ndarray[Any, Any]]
    answered: list[np.ndarray[Any, Any]]
    generator_cpu: list[float]
    commits: list[tuple[float, ReadingBatch]]
    samples: list[_Sample]
    t0: float
    batches: int
    rejected: int
    spooled: int
    workers: int = 1


def _worker_files(tmp: Path, catalog: Catalog) -> tuple[Path, Path]:
    """What receiver worker processes read: the bench's catalog, and the shipped
    HJ 212 units without its demo stations' profiles; the passwords go into
    DATA_DIR/hj212-secrets.yaml."""
    stations = tmp / "stations.yaml"
    stations.write_text(
        yaml.safe_dump(
            {"stations": [s.model_dump(mode="json", exclude_none=True) for s in catalog]},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    config = yaml.safe_load((REPO / "config" / "hj212.yaml").read_text(encoding="utf-8"))
    config["stations"] = {}
    hj212 = tmp / "hj212.yaml"
    hj212.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    secrets = tmp / "hj212-secrets.yaml"
    secrets.write_text(yaml.safe_dump({s.mn: PASSWORD for s in catalog if s.mn}))
    secrets.chmod(0o600)
    return stations, hj212


def _cpu_of(pids: list[int]) -> tuple[float, float]:
    """(user + system, system) CPU seconds of processes so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = system = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12])
            system += int(fields[12])
    return total / tick, system / tick


async def serve(
    cluster: EmbeddedCluster,
    tmp: Path,
    rate: float,
    window: tuple[float, float],
    *,
    workers: int = 1,
) -> Outcome:
    warmup, seconds = window
    catalog = bench_catalog(CONNS)
    files: dict[str, Any] = {}
    if workers > 1:
        stations, hj212 = _worker_files(tmp, catalog)
        files = {
            "stations_file": stations,
            "database_url": SecretStr(cluster.url()),
            "log_level": "WARNING",
            # As the single process here: no alert service, so nothing forwarded.
            "alerts": AlertSettings(enabled=False),
        }
    settings = Settings(
        data_dir=tmp,
        config_dir=REPO / "config",
        # Every simulated logger connects from 127.0.0.1: the per-address cap
        # (a defence against one hostile peer, issue 18) is lifted here.
        hj212=Hj212Settings(
            host="127.0.0.1",
            port=0,
            max_connections=CONNS + 100,
            max_connections_per_address=CONNS + 100,
            workers=workers,
            # As the single process here: the receiver only (no derive job).
            worker_derive=False,
            **({"config_file": hj212} if workers > 1 else {}),
        ),
        **files,
    )
    worker_pids: list[int] = []
    commits: list[tuple[float, ReadingBatch]] = []

    async def on_batch(batch: ReadingBatch) -> None:
        commits.append((time.monotonic(), batch))

    samples: list[_Sample] = []

    def sample() -> None:
        # The server: this process, and its receiver workers when there are any.
        cpu, system = _cpu_of(worker_pids)
        samples.append(
            _Sample(
                time.monotonic(),
                time.process_time() + cpu,
                os.times().system + system,
                _postgres_cpu(cluster),
                _machine_busy(),
            )
        )

    loop = asyncio.get_running_loop()
    async with open_pool(settings, url=cluster.url()) as pool:
        sink = Sink(Writer(pool), Spool(settings.spool_dir))
        sink.listen(on_batch)
        validator = Validator({s.id: s.kind for s in catalog.stations})
        async with (
            Hj212Server(
                settings,
                Intake(sink, validator, catalog, pool),
                secrets={s.mn: PASSWORD for s in catalog.stations if s.mn},
                # The shipped units and profiles (its demo stations are not in the
                # bench's catalog of copies).
                config=load_config(REPO / "config" / "hj212.yaml"),
            ) as srv,
            ReceiverWorkers(settings, srv.port) as others,
        ):
            await others.wait_ready()
            worker_pids[:] = others.running
            ctx = mp.get_context("spawn")
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=generator, args=(srv.port, CONNS, rate, window, theirs))
            proc.start()
            ready = await loop.run_in_executor(None, ours.recv)
            assert ready == "ready", ready
            t0 = time.monotonic() + 1.0
            ours.send(t0)
            for at in (t0 + warmup, t0 + warmup + seconds):
                loop.call_at(at, sample)
            result = await loop.run_in_executor(None, ours.recv)
            await loop.run_in_executor(None, proc.join)
            async with asyncio.timeout(30):
                while srv.connections:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await srv.flush()
            stats = srv.stats
    return Outcome(
        result["sent"],
        result["answered"],
        result["cpu"],
        commits,
        samples,
        t0,
        stats.batches,
        stats.written.rejected,
        stats.written.spooled,
        workers,
    )


def _commit_times(commits: list[tuple[float, ReadingBatch]], hours: int) -> np.ndarray[Any, Any]:
    """Commit time of each (connection, hour) frame, NaN where none."""
    out = np.full(CONNS * hours, np.nan)
    index = {station_id(i): i for i in range(CONNS)}
    for at, batch in commits:
        mask = batch.parameter == MARKER
        conn = np.array([index[s] for s in batch.station_id[mask]], dtype=np.int64)
        hour = (batch.ts[mask] - BASE_UTC) // np.timedelta64(1, "h")
        out[conn * hours + hour.astype(np.int64)] = at
    return out


@dataclass
class Point:
    """One offered load: what it achieved."""

    offered: float
    rate: float  # frames/s committed in the window
    p99: float  # s, send → commit
    complete: bool  # every frame sent stored, none missing in the window

    @property
    def sustained(self) -> bool:
        """Within the p99 goal, nothing lost. The loggers wait for each 9014, as real
        ones do, so what was committed (not what was offered) is what the receiver
        sustained: a slower receiver slows the loggers down, and its latency shows."""
        return self.complete and self.p99 < GOAL_P99


def run_point(
    rate: float,
    window: tuple[float, float],
    *,
    verbose: bool,
    raw_copy: bool = False,
    workers: int = 1,
) -> tuple[Point, float | None]:
    """One run at an offered load in a fresh cluster; with ``raw_copy``, also the
    raw COPY rate (readings/s) of the same readings into a same-shaped table."""
    with bench_cluster() as cluster, tempfile.TemporaryDirectory(prefix="envmon-bench-") as tmp:
        out = asyncio.run(serve(cluster, Path(tmp), rate, window, workers=workers))
        with psycopg.connect(cluster.url()) as conn:
            (stored,) = conn.execute("SELECT count(*) FROM reading").fetchone() or (0,)
            (rejected,) = conn.execute("SELECT count(*) FROM rejected").fetchone() or (0,)
            reasons = conn.execute(
                "SELECT reason, count(*) FROM rejected GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
            ).fetchall()
        copy_rate = _raw_copy_rate(cluster.url()) if raw_copy else None
    point = report(out, rate, window, int(stored), int(rejected), reasons, verbose=verbose)
    return point, copy_rate


def _raw_copy_rate(url: str) -> float:
    """The stored readings, COPYed as CSV into a same-shaped table with its key."""
    with psycopg.connect(url) as conn:
        buf = bytearray()
        with conn.cursor().copy(
            "COPY (SELECT station_id, parameter, period, ts, value, flag FROM reading)"
            " TO STDOUT (FORMAT csv)"
        ) as copy:
            for block in copy:
                buf += block
        conn.execute("CREATE TABLE reading_raw (LIKE reading INCLUDING ALL)")
        conn.execute("ALTER TABLE reading_raw ALTER source SET DEFAULT 'raw'")
        conn.commit()
        with (
            Timer() as t,
            conn.cursor().copy(
                "COPY reading_raw (station_id, parameter, period, ts, value, flag)"
                " FROM STDIN (FORMAT csv)"
            ) as copy,
        ):
            view = memoryview(buf)
            for k in range(0, len(view), 1 << 20):
                copy.write(view[k : k + (1 << 20)])
        conn.commit()
        (n,) = conn.execute("SELECT count(*) FROM reading_raw").fetchone() or (0,)
    return int(n) / t.seconds


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    if os.environ.get("BENCH_HJ212_DEBUG"):
        logging.getLogger("envmon.ingest.hj212.server").setLevel(logging.DEBUG)
    _raise_fd_limit(CONNS + 256)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"hj212 benchmark: {CONNS:,} logger connections, target {RATE:,.0f} frames/s "
        f"({VALUES} values each), warm-up {WARMUP:g} s, measured {SECONDS:g} s "
        f"(load average before: {' '.join(load)})"
    )
    point, copy_rate = run_point(RATE, (WARMUP, SECONDS), verbose=True, raw_copy=True)
    assert copy_rate is not None
    # The ceiling: higher offered loads, each in a fresh cluster, until one is not
    # carried within the p99 goal.
    # Up from the measured point while each step is carried; down from it until
    # one is, when the point itself was not.
    best = point if point.sustained else None
    steps = (
        [r for r in CEILING_RATES if r > RATE]
        if best
        else sorted((r for r in CEILING_DOWN if r < RATE), reverse=True)
    )
    for offered in steps:
        step, _ = run_point(offered, (CEILING_WARMUP, CEILING_SECONDS), verbose=False)
        print(
            f"  ceiling step: offered {offered:,.0f} frames/s → {step.rate:,.0f} committed, "
            f"p99 {step.p99:.2f} s, {'complete' if step.complete else 'INCOMPLETE'}: "
            f"{'sustained' if step.sustained else 'not sustained'}"
        )
        if step.sustained:
            if best is None or step.rate > best.rate:
                best = step
            if offered < RATE:
                break  # going down: the first carried load is the ceiling
        else:
            break  # going up: past the ceiling
    ceiling = best.rate if best is not None else 0.0
    # The same with the receiver in WORKERS processes (envmon run --workers N).
    many = _ceiling(WORKERS, point.rate if point.sustained else 0.0) if WORKERS > 1 else None
    print("  ceiling:")
    figure("raw COPY of the same readings (csv, same-shaped table)", copy_rate, "readings/s")
    figure("HJ 212 ceiling, one process (p99 < 1 s, nothing lost)", ceiling, "frames/s")
    figure("  / raw COPY (readings)", ceiling * VALUES / copy_rate, "×")
    if many is not None:
        figure(
            f"HJ 212 ceiling, {WORKERS} receiver processes (p99 9014 < 1 s, nothing lost)",
            many,
            "frames/s",
        )
    best_ceiling = max(ceiling, many or 0.0)
    figure(
        "HJ 212 ceiling / raw COPY (readings)",
        best_ceiling * VALUES / copy_rate,
        "×",
        f"goal ≥ {GOAL_CEILING_RATIO:.2f}",
    )


def _ceiling(workers: int, floor: float) -> float:
    """The highest load carried by ``workers`` receiver processes: up through
    WORKERS_RATES above ``floor`` while each is carried; when the first is not,
    down through CEILING_DOWN until one is."""

    def step(offered: float) -> Point:
        point, _ = run_point(
            offered, (CEILING_WARMUP, CEILING_SECONDS), verbose=False, workers=workers
        )
        print(
            f"  ceiling step, {workers} processes: offered {offered:,.0f} frames/s → "
            f"{point.rate:,.0f} answered, p99 send → 9014 {point.p99:.2f} s, "
            f"{'complete' if point.complete else 'INCOMPLETE'}: "
            f"{'sustained' if point.sustained else 'not sustained'}"
        )
        return point

    best = 0.0
    ups = [r for r in WORKERS_RATES if r > floor]
    for offered in ups:
        point = step(offered)
        if not point.sustained:
            break
        best = max(best, point.rate)
    if best:
        return best
    for offered in sorted((r for r in CEILING_DOWN if r < min(ups, default=RATE)), reverse=True):
        point = step(offered)
        if point.sustained:
            return point.rate
    return 0.0


def report(
    out: Outcome,
    offered: float,
    window: tuple[float, float],
    stored: int,
    rejected: int,
    reasons: list[tuple[Any, ...]],
    *,
    verbose: bool,
) -> Point:
    warmup, seconds = window
    w0, w1 = out.t0 + warmup, out.t0 + warmup + seconds
    hours = max(len(s) for s in out.sent) + 1
    commit = _commit_times(out.commits, hours)
    sent_frames = sum(len(s) for s in out.sent)
    send_t = np.concatenate(out.sent)
    answer_t = np.concatenate(
        [
            np.pad(a, (0, len(s) - len(a)), constant_values=np.nan)
            for s, a in zip(out.sent, out.answered, strict=True)
        ]
    )
    keys = np.concatenate([i * hours + np.arange(len(s)) for i, s in enumerate(out.sent)])
    in_window = (send_t >= w0) & (send_t < w1)
    if out.workers > 1:
        # The other processes' commits are not stamped here: each frame's 9014,
        # sent only once its batch is committed, stands for its commit (later).
        commit = np.full(CONNS * hours, np.nan)
        commit[keys] = answer_t
        committed = int(((answer_t >= w0) & (answer_t < w1)).sum()) * VALUES
    else:
        committed = sum(len(b) for at, b in out.commits if w0 <= at < w1)
    delay = commit[keys[in_window]] - send_t[in_window]
    missing = int(np.isnan(delay).sum())
    rtt = (answer_t - send_t)[in_window]
    unanswered = int(np.isnan(answer_t).sum())
    s0, s1 = out.samples
    wall = s1.at - s0.at
    gen_cpu = (
        (out.generator_cpu[1] - out.generator_cpu[0]) / wall
        if len(out.generator_cpu) == 2
        else float("nan")
    )
    busy = (s1.machine[0] - s0.machine[0]) / wall

    def pct(a: np.ndarray[Any, Any], q: float) -> float:
        a = a[~np.isnan(a)]
        return float(np.percentile(a, q)) * 1000 if len(a) else float("nan")

    show = figure if verbose else _quiet
    if verbose:
        print("  figures:")
    show(
        "frames sent (measured window)",
        in_window.sum() / seconds,
        "frames/s",
        f"target {offered:,.0f}",
    )
    show(
        "frames stored (committed in the window)",
        committed / VALUES / seconds,
        "frames/s",
        f"goal ≥ {GOAL_RATE:,.0f}",
    )
    show("readings stored (committed in the window)", committed / seconds, "readings/s")
    to = "9014" if out.workers > 1 else "commit"
    show(f"send → {to} p50", pct(delay, 50), "ms")
    show(f"send → {to} p99", pct(delay, 99), "ms", f"goal < {GOAL_P99 * 1000:,.0f}")
    show(f"send → {to} max", pct(delay, 100), "ms")
    show("frames of the window not committed", missing, "frames", "expected 0")
    show("9014 round trip p50", pct(rtt, 50), "ms")
    show("9014 round trip p99", pct(rtt, 99), "ms")
    show("frames without a 9014 (all)", unanswered, "frames", "expected 0")
    show("readings sent (all frames × 10)", sent_frames * VALUES, "readings")
    show(
        "readings stored (count in reading)",
        stored,
        "readings",
        f"expected {sent_frames * VALUES:,}",
    )
    show("rejected rows", rejected, "rows", "expected 0")
    for reason, n in reasons:
        if verbose:
            print(f"    rejected {n:,}: {reason[:100]}")
    show(
        "batches written (mean readings per batch)",
        out.batches,
        "batches",
        f"{(stored / out.batches if out.batches else 0):,.0f} each",
    )
    show("server process CPU", (s1.server - s0.server) / wall * 100, "% of a core")
    frames_done = max(committed / VALUES, 1)
    show("server CPU per frame", (s1.server - s0.server) / frames_done * 1e6, "µs")
    show(
        "  of which system time (kernel: sockets, files)",
        (s1.server_system - s0.server_system) / frames_done * 1e6,
        "µs",
    )
    show("PostgreSQL CPU", (s1.postgres - s0.postgres) / wall * 100, "% of a core")
    show("load generator CPU", gen_cpu * 100, "% of a core")
    show("whole machine busy (2 cores = 200)", busy * 100, "% of a core")
    rate, p99 = committed / VALUES / seconds, pct(delay, 99) / 1000
    complete = stored == sent_frames * VALUES and not missing
    met = rate >= GOAL_RATE and p99 < GOAL_P99 and complete
    if verbose:
        print(
            f"  goal {'met' if met else 'NOT met'}: {rate:,.0f} frames/s, p99 {p99:.2f} s, "
            f"stored {'=' if stored == sent_frames * VALUES else '≠'} sent"
        )
    return Point(offered, rate, p99, complete)


def _quiet(*args: object) -> None:
    pass


if __name__ == "__main__":
    main()
