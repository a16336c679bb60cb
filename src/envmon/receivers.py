"""``envmon run --workers N``: the HJ 212 receiver in N processes, one port.

The main process runs the whole service (:mod:`envmon.service`), its own
receiver included, and keeps N-1 **receiver workers** running beside it: each
``envmon run --receiver-worker K`` listens on the same port (``SO_REUSEPORT``)
and runs only a receiver — its own database pool, sink, spool, raw-frame
archive and split journal (under ``DATA_DIR/workers/K``) — so that decoding,
validation and the writes use every core. Every device is served by its home
worker whichever process accepted its connection (:mod:`envmon.ingest.hj212.workers`).

What a worker stores reaches the rest as a single instance's would: each
worker runs the derive job too (its advisory locks keep derivers apart), and
each stored batch goes to the alert owner in the transaction that stores it
(``Writer.announce``), as between instances (docs/scaling.md). A worker never
owns the alerts.

A worker that exits (or is killed) is started again after
``RESTART_AFTER_S``; its spool and split journal are replayed when it starts.
A worker stops when the main process does — also when the main process is
killed: its standard input, a pipe from the main process, ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from types import TracebackType

from envmon.ingest.hj212.workers import ready
from envmon.settings import Settings

logger = logging.getLogger(__name__)

RESTART_AFTER_S = 1.0
STOP_TIMEOUT_S = 20.0


class ReceiverWorkers:
    """The main process's receiver workers, kept running (an async context manager)."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.workers = settings.hj212.workers
        self.port = port
        self.started = 0  # worker processes started (restarts included)
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def running(self) -> list[int]:
        """The pids of the workers running now."""
        return [p.pid for p in self._procs.values() if p.returncode is None]

    def _env(self, index: int) -> dict[str, str]:
        """The worker's environment: the main process's, with the settings a
        worker uses as the main process has them (they may not come from the
        environment alone)."""
        s = self.settings
        env = dict(os.environ)
        hj = s.hj212.model_dump(mode="json", exclude_none=True)
        hj["passwords"] = {mn: pw.get_secret_value() for mn, pw in s.hj212.passwords.items()}
        hj.update(workers=self.workers, worker_index=index, port=self.port)
        env.update({f"ENVMON_HJ212__{k.upper()}": _env_value(v) for k, v in hj.items()})
        env.update(
            {
                f"ENVMON_WRITER__{k.upper()}": _env_value(v)
                for k, v in s.writer.model_dump(mode="json", exclude_none=True).items()
            }
        )
        env.update(
            {
                "ENVMON_DATA_DIR": str(s.data_dir.resolve()),
                "ENVMON_CONFIG_DIR": str(s.config_dir.resolve()),
                "ENVMON_STATIONS_FILE": str(s.stations_path.resolve()),
                "ENVMON_EMBEDDED_PORT": str(s.embedded_port),
                "ENVMON_POOL_MIN_SIZE": str(s.pool_min_size),
                "ENVMON_POOL_MAX_SIZE": str(s.pool_max_size),
                "ENVMON_LOG_LEVEL": s.log_level,
                "ENVMON_ALERTS__ENABLED": str(s.alerts.enabled).lower(),
            }
        )
        if s.database_url is not None:
            env["ENVMON_DATABASE_URL"] = s.database_url.get_secret_value()
        if s.database_password is not None:
            env["ENVMON_DATABASE_PASSWORD"] = s.database_password.get_secret_value()
        return env

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until every worker takes connections handed over to it (it listens
        on the port from then on)."""
        async with asyncio.timeout(within):
            while not all(ready(self.settings, k) for k in range(1, self.workers)):  # noqa: ASYNC110 (other processes)
                await asyncio.sleep(0.05)

    async def __aenter__(self) -> ReceiverWorkers:
        for k in range(1, self.workers):
            self._tasks.append(asyncio.create_task(self._keep(k), name=f"hj212-worker-{k}"))
        return self

    async def _keep(self, index: int) -> None:
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "envmon.cli",
                "run",
                "--receiver-worker",
                str(index),
                env=self._env(index),
                stdin=asyncio.subprocess.PIPE,
            )
            self._procs[index] = proc
            self.started += 1
            logger.info("hj212 receiver worker %d started pid=%d", index, proc.pid)
            code = await proc.wait()
            if self._stopping:
                return
            logger.warning(
                "hj212 receiver worker %d exited code=%s; started again in %g s",
                index,
                code,
                RESTART_AFTER_S,
            )
            await asyncio.sleep(RESTART_AFTER_S)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        # No restart from now on; then the workers are asked to stop.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._procs.values():
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                logger.error("hj212 receiver worker pid=%d did not stop: killed", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def _env_value(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when standard input (the main process's pipe) ends: the main
    process stopped or was killed."""

    def readable() -> None:
        try:
            more = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            more = b""
        if not more:
            loop.remove_reader(0)
            stop.set()

    os.set_blocking(0, False)
    loop.add_reader(0, readable)


async def serve_worker(settings: Settings) -> None:
    """One receiver worker (``envmon run --receiver-worker K``), until stopped."""
    from envmon.alerts.relay import announcement
    from envmon.app import open_app
    from envmon.db.connection import database_url
    from envmon.derive_job import DeriveJob
    from envmon.ingest.hj212.auth import load_secrets
    from envmon.ingest.hj212.server import Hj212Server

    index = settings.hj212.worker_index
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    _watch_parent(loop, stop)
    async with open_app(settings, url=database_url(settings)) as app:
        if app.sink.spool.pending():
            replayed = await app.sink.replay_spool()
            logger.info("hj212 worker %d: spool replayed: %d readings", index, replayed.accepted)
        if settings.alerts.enabled:
            # Judged by the alert owner: each batch goes to it with its commit.
            instance = f"{socket.gethostname()}:{os.getpid()}/hj212-worker-{index}"
            app.sink.writer.announce = lambda batch: announcement(batch, instance)
        secrets = load_secrets(settings.hj212_secrets_path, settings.hj212.passwords)
        async with contextlib.AsyncExitStack() as stack:
            if settings.hj212.worker_derive:
                # The days this worker stores are derived soon after, here (the
                # derive job's locks keep derivers in several processes apart).
                await stack.enter_async_context(DeriveJob(app))
            srv = await stack.enter_async_context(
                Hj212Server(settings, app.intake, secrets=secrets)
            )
            logger.info(
                "hj212 receiver worker %d of %d serving port %d",
                index,
                settings.hj212.workers,
                srv.port,
            )
            await stop.wait()
    logger.info("hj212 receiver worker %d stopped", index)
