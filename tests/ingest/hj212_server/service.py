"""The real service (``envmon run``, only the HJ 212 receiver on) in a
subprocess, for the tests that kill it with SIGKILL while loggers upload."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from .conftest import PASSWORDS, REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """``envmon run`` over ``db_url`` with its data in ``data_dir``; ``extra``
    environment variables on top of the receiver's test settings."""

    def __init__(self, db_url: str, data_dir: Path, log: Path, **extra: str) -> None:
        self.db_url = db_url
        self.data_dir = data_dir
        self.log = log
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, within: float = 60.0) -> None:
        """Start it and wait until it accepts connections."""
        proc = self.proc = self._spawn()
        async with asyncio.timeout(within):
            while True:
                assert proc.poll() is None, "the service ended"
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.1)
                    continue
                writer.close()
                return

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "ENVMON_DATABASE_URL": self.db_url,
            "ENVMON_DATA_DIR": str(self.data_dir),
            "ENVMON_CONFIG_DIR": str(REPO / "config"),
            "ENVMON_SIMULATOR__ENABLED": "false",
            "ENVMON_API__ENABLED": "false",
            "ENVMON_COLLECT__ENABLED": "false",
            "ENVMON_ALERTS__ENABLED": "false",
            "ENVMON_HJ212__ENABLED": "true",
            "ENVMON_HJ212__HOST": "127.0.0.1",
            "ENVMON_HJ212__PORT": str(self.port),
            "ENVMON_HJ212__GAP_RECOVERY": "false",
            "ENVMON_HJ212__PASSWORDS": json.dumps(PASSWORDS),
            **self.extra,
        }
        cli = Path(sys.executable).with_name("envmon")
        with self.log.open("ab") as out:
            return subprocess.Popen([str(cli), "run"], env=env, stdout=out, stderr=out)

    async def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.proc.wait, 30)


async def upload_through_kills(
    service: Service,
    loggers: list[Coroutine[Any, Any, None]],
    done: asyncio.Event,
    *,
    rounds: int,
    rng: random.Random,
    pause: tuple[float, float],
    after_kill: Callable[[], Awaitable[None]],
    within: float,
) -> int:
    """Run ``loggers`` against the service, killed ``rounds`` times after a
    random pause and started again (``after_kill`` checks what must hold while
    it is down); return the number of kills once every logger is done."""
    await service.start()
    tasks = [asyncio.create_task(logger) for logger in loggers]
    kills = 0
    try:
        for _ in range(rounds):
            await asyncio.sleep(rng.uniform(*pause))
            await service.kill()
            kills += 1
            await after_kill()
            await service.start()
        async with asyncio.timeout(within):
            await asyncio.gather(*tasks)
    finally:
        done.set()
        await service.stop()
    return kills
