"""Simulated HJ 212 data loggers: the catalog's air and water stations pushing to
the receiver like real ones (2061 hourly uploads with Flag=5, waiting for each
9014, resending on time-out, answering the receiver's history requests).

Like the loggers in the field they are not all alike: each follows its
station's profile in ``config/hj212.yaml`` (``crc: modbus`` / ``modbus_swapped``,
``length: plus6``, ``edition: 2005`` — short codes, SO2 and CO in mg/m³ —,
``encryption: sm4`` with the key of the secrets file, ``edition: 2025``), and
every fifth station splits its hours over two packets with DataTime in the
first only and PNUM/PNO zero-padded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from envmon.catalog import Station
from envmon.ingest.hj212.codec import VERSION_2005, VERSION_2017, VERSION_2025
from envmon.ingest.hj212.codes import LEGACY_CODES
from envmon.ingest.hj212.crc import ANNEX_A, VARIANTS
from envmon.ingest.hj212.device import HistoryProvider, Hj212Device, Upload, Values
from envmon.ingest.hj212.profile import Hj212Config
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


# HJ 212-2017 code → HJ/T 212-2005 short code, for loggers of that edition.
_TO_2005 = {new: old for old, new in LEGACY_CODES.items()}
# The simulated values are in envmon's units (µg/m³ for SO2): what a 2005
# logger sends in mg/m³ (Annex B) is a thousandth of it.
_MG_PER_UG = {"a21026": 0.001, "a21002": 0.001}


def as_2005(values: Values) -> Values:
    """Upload values as an HJ/T 212-2005 logger writes them (short codes, mg/m³)."""
    out: dict[str, tuple[float | str, str]] = {}
    for code, (value, flag) in values.items():
        scale = _MG_PER_UG.get(code)
        if scale is not None and isinstance(value, float):
            value = round(value * scale, 6)
        out[_TO_2005.get(code, code)] = (value, flag)
    return out


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
        config: Hj212Config | None = None,
        keys: Mapping[str, bytes] | None = None,
    ) -> None:
        """``config`` (``config/hj212.yaml``) and ``keys`` (SM4 keys by MN) make
        each logger follow its station's protocol profile."""
        self.stations = [s for s in stations if s.mn and s.kind in ("air", "water")]
        self.host, self.port = host, port
        self.secrets = secrets
        self.seed = seed
        self.interval_s = interval_s
        self.devices: dict[str, Hj212Device] = {}
        self.sent = 0
        self.failures = 0
        self.run_loop = run_loop
        self.config = config or Hj212Config()
        self.keys = {k.upper(): v for k, v in (keys or {}).items()}
        self.split = {s.id for i, s in enumerate(self.stations) if i % 5 == 4}
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
            profile = self.config.station(s.id)
            key = self.keys.get(s.mn.upper()) if profile.encryption == "sm4" else None
            version = VERSION_2025 if key is not None else VERSION_2017
            dev = Hj212Device(
                self.host,
                self.port,
                s.mn,
                pw,
                st="22" if s.kind == "air" else "21",
                version=profile.edition if profile.edition is not None else version,
                history_provider=self._history(s),
                crc=profile.crc if profile.crc in VARIANTS else ANNEX_A,
                length_offset=profile.length_offset,
                sm4_key=key,
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
                    await self._upload(sid, dev, ts, values)
                    self.sent += 1
                except Exception as err:  # one logger's trouble must not stop the others
                    self.failures += 1
                    logger.warning("simulated logger %s: %s", sid, err)
                    with contextlib.suppress(Exception):
                        await dev.close()
                        await dev.connect()

        await asyncio.gather(*(one(sid, dev) for sid, dev in self.devices.items()))

    async def _upload(self, sid: str, dev: Hj212Device, ts: datetime, values: Values) -> None:
        if dev.version == VERSION_2005:
            values = as_2005(values)
        if sid in self.split and len(values) > 1:
            codes = list(values)
            half = len(codes) // 2
            parts = [
                {c: values[c] for c in codes[:half]},
                {c: values[c] for c in codes[half:]},
            ]
            await dev.send_split("2061", ts, parts, datatime_first_only=True, pad=8)
        else:
            await dev.send_hourly(ts, values)

    async def _loop(self) -> None:
        while True:
            last_complete = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
            try:
                await self.send_hour(last_complete)
            except Exception:
                logger.exception("simulated loggers failed")
            await asyncio.sleep(self.interval_s)


__all__ = ["SimulatedLoggers", "Values", "hourly_uploads"]
