"""Simulated HJ 212 data loggers: the catalog's air and water stations pushing to
the receiver like real ones (2061 hourly uploads with Flag=5, waiting for each
9014, resending on time-out, answering the receiver's history requests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from envmon.catalog import Station
from envmon.ingest.hj212.device import HistoryProvider, Hj212Device, Upload, Values
from envmon.parameters import BY_CODE
from envmon.simulate.generator import simulate
from envmon.timeutil import now

logger = logging.getLogger(__name__)


def hourly_uploads(station: Station, start: datetime, end: datetime, *, seed: int) -> list[Upload]:
    """The station's simulated hours in [start, end) as HJ 212 upload values."""
    by_hour: dict[datetime, dict[str, tuple[float | str, str]]] = defaultdict(dict)
    for frame in simulate([station], start, end, seed=seed, kinds=(station.kind,)):
        for p, t, v, f, period in zip(
            frame["parameter"],
            frame["time"],
            frame["value"],
            frame["flag"],
            frame["period"],
            strict=True,
        ):
            code = BY_CODE[p].hj212
            # Water stations report every 4 hours, as 2061 "hourly" uploads
            # stamped with the start of the sampling hour (as real ones do).
            if not code or period not in ("1h", "4h"):
                continue
            by_hour[datetime.fromisoformat(t)][code] = (float(v), str(f))
    return sorted(by_hour.items())


class SimulatedLoggers:
    """One connected logger per air and water station of the catalog."""

    def __init__(
        self,
        stations: Sequence[Station],
        host: str,
        port: int,
        secrets: dict[str, str],
        *,
        seed: int,
        interval_s: float,
        run_loop: bool = True,
    ) -> None:
        self.stations = [s for s in stations if s.mn and s.kind in ("air", "water")]
        self.host, self.port = host, port
        self.secrets = secrets
        self.seed = seed
        self.interval_s = interval_s
        self.devices: dict[str, Hj212Device] = {}
        self.sent = 0
        self.failures = 0
        self.run_loop = run_loop
        self._task: asyncio.Task[None] | None = None

    def _history(self, station: Station) -> HistoryProvider:
        def provide(cn: str, begin: datetime, end: datetime) -> list[Upload]:
            if cn != "2061":
                return []
            return hourly_uploads(station, begin, end + timedelta(hours=1), seed=self.seed)

        return provide

    async def __aenter__(self) -> SimulatedLoggers:
        for s in self.stations:
            assert s.mn is not None
            pw = self.secrets.get(s.mn.upper()) or self.secrets.get(s.mn, "")
            dev = Hj212Device(
                self.host,
                self.port,
                s.mn,
                pw,
                st="22" if s.kind == "air" else "21",
                history_provider=self._history(s),
            )
            try:
                await dev.connect()
            except OSError as err:
                logger.warning("simulated logger %s cannot connect: %s", s.id, err)
                continue
            self.devices[s.id] = dev
        if self.run_loop:
            self._task = asyncio.create_task(self._loop(), name="simulated-loggers")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for dev in self.devices.values():
            with contextlib.suppress(Exception):
                await dev.close()

    async def send_hour(self, hour: datetime) -> None:
        """Every logger uploads the hour starting at ``hour``."""
        by_id = {s.id: s for s in self.stations}

        async def one(sid: str, dev: Hj212Device) -> None:
            uploads = await asyncio.to_thread(
                hourly_uploads, by_id[sid], hour, hour + timedelta(hours=1), seed=self.seed
            )
            for ts, values in uploads:
                try:
                    await dev.send_hourly(ts, values)
                    self.sent += 1
                except Exception as err:  # one logger's trouble must not stop the others
                    self.failures += 1
                    logger.warning("simulated logger %s: %s", sid, err)
                    with contextlib.suppress(Exception):
                        await dev.close()
                        await dev.connect()

        await asyncio.gather(*(one(sid, dev) for sid, dev in self.devices.items()))

    async def _loop(self) -> None:
        while True:
            last_complete = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
            try:
                await self.send_hour(last_complete)
            except Exception:
                logger.exception("simulated loggers failed")
            await asyncio.sleep(self.interval_s)


__all__ = ["SimulatedLoggers", "Values", "hourly_uploads"]
