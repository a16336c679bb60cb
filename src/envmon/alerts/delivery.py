"""The dispatcher: notifications from the outbox to their channels, with retries.

Notifications written by this process are handed over in memory the moment
their transaction commits (no polling: the path from a reading to a webhook is
one database round trip plus the HTTP request). Each attempt is logged in
``alert_delivery``; a passing failure is retried with exponential back-off and
jitter; after ``max_attempts`` (or at once, when the channel refuses the
message for good) the notification becomes a dead letter (``alert_dead_letter``,
shown by ``envmon alerts list`` and the status). Robots that allow 20 messages
a minute get a token bucket, so a storm waits instead of being refused.

Delivery is at least once: a crash after a channel accepted a message and
before the database recorded it sends it again after the claim expires. The
``X-Envmon-Delivery`` header (webhooks) carries the notification id for
receivers that want to drop the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from envmon.alerts.channels import Channel
from envmon.alerts.errors import DeliveryFailed, DeliveryRejected
from envmon.alerts.message import Message
from envmon.alerts.model import Notice
from envmon.db.writer import Pool
from envmon.ratelimit import TokenBucket
from envmon.retry import Backoff
from envmon.settings import AlertSettings

logger = logging.getLogger(__name__)

_DB_ERRORS = (psycopg.Error, PoolTimeout)

_SENT = """
WITH n AS (
    UPDATE alert_notification SET state = 'sent', attempts = %(attempt)s, sent_at = now(),
        claimed_until = NULL, last_error = NULL
    WHERE id = %(id)s RETURNING id
)
INSERT INTO alert_delivery (notification_id, channel, attempt, ok, status, duration_ms)
SELECT id, %(channel)s, %(attempt)s, true, %(status)s, %(ms)s FROM n
"""
_RETRY = """
WITH n AS (
    UPDATE alert_notification SET attempts = %(attempt)s, last_error = %(error)s,
        next_attempt_at = now() + make_interval(secs => %(delay)s),
        claimed_until = now() + make_interval(secs => %(delay)s + 120)
    WHERE id = %(id)s RETURNING id
)
INSERT INTO alert_delivery (notification_id, channel, attempt, ok, error, duration_ms)
SELECT id, %(channel)s, %(attempt)s, false, %(error)s, %(ms)s FROM n
"""
_DEAD = """
WITH n AS (
    UPDATE alert_notification SET state = 'dead', attempts = %(attempt)s,
        last_error = %(error)s, claimed_until = NULL
    WHERE id = %(id)s RETURNING id, channel, kind, payload
), d AS (
    INSERT INTO alert_dead_letter (notification_id, channel, kind, payload, attempts, last_error)
    SELECT id, channel, kind, payload, %(attempt)s, %(error)s FROM n
    ON CONFLICT (notification_id) DO UPDATE SET attempts = EXCLUDED.attempts,
        last_error = EXCLUDED.last_error, created_at = now(), requeued_at = NULL
)
INSERT INTO alert_delivery (notification_id, channel, attempt, ok, error, duration_ms)
SELECT id, %(channel)s, %(attempt)s, false, %(error)s, %(ms)s FROM n
"""
# A test message that failed: logged, not retried, not a dead letter.
_GAVE_UP = """
WITH n AS (
    UPDATE alert_notification SET state = 'dead', attempts = %(attempt)s,
        last_error = %(error)s, claimed_until = NULL
    WHERE id = %(id)s RETURNING id
)
INSERT INTO alert_delivery (notification_id, channel, attempt, ok, error, duration_ms)
SELECT id, %(channel)s, %(attempt)s, false, %(error)s, %(ms)s FROM n
"""
# Pending notifications nobody is sending (left by a stopped process, or due again);
# with `retries`, also those waiting for a retry however far off (a start tries them
# at once). A notice never tried and not yet due waits for its digest hour.
_CLAIM = """
UPDATE alert_notification
SET claimed_until = greatest(next_attempt_at, now()) + interval '2 minutes'
WHERE id IN (
    SELECT id FROM alert_notification
    WHERE state = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
      AND (next_attempt_at <= now() + make_interval(secs => %(horizon)s)
           OR (%(retries)s AND attempts > 0))
    ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED
)
RETURNING id, channel, kind, payload, event_id, attempts,
    greatest(extract(epoch FROM next_attempt_at - now()), 0)
"""


class RateLimiter:
    """``per_minute`` messages a minute for one channel, bursts up to that many."""

    def __init__(self, per_minute: int) -> None:
        self._bucket = TokenBucket(per_minute / 60.0, float(per_minute), time.monotonic())
        self._lock = asyncio.Lock()

    @property
    def tokens(self) -> float:
        """The budget left (negative while a message waits for its turn)."""
        return self._bucket.tokens

    @tokens.setter
    def tokens(self, value: float) -> None:
        self._bucket.tokens = value

    async def acquire(self) -> None:
        async with self._lock:
            wait = self._bucket.take(1.0, time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)


class Dispatcher:
    """Delivery workers over the outbox; ``submit`` hands over fresh notifications."""

    def __init__(
        self,
        pool: Pool,
        channels: dict[str, Channel],
        settings: AlertSettings,
        per_minute: dict[str, int | None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.channels = channels
        self.settings = settings
        # One back-off policy for every retrying part (envmon.retry), randomness injectable.
        self.backoff = Backoff(
            settings.backoff_initial_s, settings.backoff_max_s, rng or random.Random()
        )
        self.limiters = {
            name: RateLimiter(n) for name, n in (per_minute or {}).items() if n is not None
        }
        self._queue: asyncio.Queue[Notice] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._busy = 0
        self._idle = asyncio.Event()  # nothing queued, in flight or waiting for a retry
        self._idle.set()
        self._settled = asyncio.Event()  # nothing queued or in flight
        self._owned: set[int] = set()  # notification ids in this process's hands
        self._episode_locks: dict[int, list[Any]] = {}  # event id → [lock, users]
        self.sent = 0
        self.failed = 0
        self.dead = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for i in range(self.settings.delivery_workers):
            self._workers.append(asyncio.create_task(self._work(), name=f"alert-delivery-{i}"))
        # What a previous run left pending is tried at once (a restart is a fine
        # moment to try a failing channel again), then on its back-off.
        await self.sweep(0.0, at_once=True)

    async def stop(self, drain_s: float = 5.0) -> None:
        """Deliver what is due now (for at most ``drain_s``), then stop."""
        try:
            async with asyncio.timeout(drain_s):
                while self._queue.qsize() or self._busy:
                    self._settled.clear()
                    await self._settled.wait()
        except TimeoutError:
            logger.warning("alert delivery stopped with %d notices queued", self._queue.qsize())
        for handle in self._timers.values():
            handle.cancel()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        # What is left stays pending in the outbox; release the claims so that the
        # next start (of this or another process) sends it at once.
        left = sorted(self._owned)
        if left:
            try:
                async with self.pool.connection(timeout=2.0) as conn:
                    await conn.execute(
                        "UPDATE alert_notification SET claimed_until = NULL"
                        " WHERE id = ANY(%s) AND state = 'pending'",
                        (left,),
                    )
            except _DB_ERRORS as err:
                logger.warning("could not release %d alert notices: %s", len(left), err)

    # ------------------------------------------------------------------ input

    def submit(self, notices: Iterable[Notice]) -> None:
        for n in notices:
            self._owned.add(n.id)
            self._idle.clear()
            self._queue.put_nowait(n)

    def _later(self, notice: Notice, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._owned.add(notice.id)
        self._idle.clear()

        def fire() -> None:
            self._timers.pop(notice.id, None)
            self._queue.put_nowait(notice)

        old = self._timers.pop(notice.id, None)
        if old is not None:
            old.cancel()
        self._timers[notice.id] = loop.call_later(delay, fire)

    async def sweep(self, horizon_s: float, *, at_once: bool = False) -> int:
        """Take over pending notifications nobody is sending (start-up, a crashed peer).

        ``at_once``: send them now, retries included, instead of when they are due.
        """
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(_CLAIM, {"horizon": horizon_s, "retries": at_once})
                rows = await cur.fetchall()
        except _DB_ERRORS as err:
            logger.warning("alert outbox sweep failed: %s", err)
            return 0
        for nid, channel, kind, payload, event_id, attempts, wait in rows:
            notice = Notice(int(nid), channel, kind, dict(payload), event_id, int(attempts))
            if nid in self._owned:  # already queued or waiting here: the claim was renewed
                continue
            self._later(notice, 0.0 if at_once else float(wait))
        if rows:
            logger.info("alert outbox: %d pending notices taken over", len(rows))
        return len(rows)

    async def wait_idle(self, within: float = 10.0) -> None:
        """Until nothing is queued, in flight or waiting for a retry (tests, the CLI)."""
        async with asyncio.timeout(within):
            while self._queue.qsize() or self._busy or self._timers:
                self._idle.clear()
                await self._idle.wait()

    # ------------------------------------------------------------------ workers

    def _backoff(self, attempt: int) -> float:
        return self.backoff.delay(attempt)

    async def _work(self) -> None:
        while True:
            notice = await self._queue.get()
            self._busy += 1
            try:
                await self._deliver_in_order(notice)
            except Exception:  # a worker must survive anything one message does
                logger.exception("alert #%s delivery failed outbox=%d", notice.event_id, notice.id)
            finally:
                self._busy -= 1
                if not (self._queue.qsize() or self._busy):
                    self._settled.set()
                    if not self._timers:
                        self._idle.set()

    async def _deliver_in_order(self, notice: Notice) -> None:
        """Notices of one episode go out in the order they were queued (fired, then resolved)."""
        if notice.event_id is None:
            await self.deliver(notice)
            return
        entry = self._episode_locks.get(notice.event_id)
        if entry is None:
            entry = self._episode_locks[notice.event_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                await self.deliver(notice)
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._episode_locks[notice.event_id]

    async def deliver(self, notice: Notice, *, retry: bool = True) -> tuple[bool, str]:
        """One attempt; records it; schedules the retry or writes the dead letter.

        ``retry=False`` (a test message, someone is watching): one attempt only.
        Returns (delivered, the channel's status or the error).
        """
        attempt = notice.attempts + 1
        channel = self.channels.get(notice.channel)
        t0 = time.perf_counter()
        error: str | None = None
        retry_it = False
        status = ""
        if channel is None:
            error = f"channel '{notice.channel}' is no longer configured"
        else:
            limiter = self.limiters.get(notice.channel)
            if limiter is not None:
                await limiter.acquire()
            try:
                status = await channel.send(Message.from_payload(notice.payload), notice.id)
            except DeliveryFailed as err:
                error, retry_it = err.reason, True
            except DeliveryRejected as err:
                error = err.reason
            except Exception as err:  # a channel bug: keep the message, try again later
                logger.exception("alert channel %s raised", notice.channel)
                error, retry_it = f"{type(err).__name__}: {err}", True
        ms = (time.perf_counter() - t0) * 1000
        params: dict[str, Any] = {
            "id": notice.id,
            "channel": notice.channel,
            "attempt": attempt,
            "ms": ms,
            "status": status,
            "error": error,
        }
        if error is None:
            self.sent += 1
            self._owned.discard(notice.id)
            await self._record(_SENT, params)
            logger.debug(
                "alert #%s sent channel=%s outbox=%d %s",
                notice.event_id,
                notice.channel,
                notice.id,
                status,
            )
            return True, status
        if not retry:
            self._owned.discard(notice.id)
            await self._record(_GAVE_UP, params)
            return False, error
        if retry_it and attempt < self.settings.max_attempts:
            self.failed += 1
            delay = self._backoff(attempt)
            params["delay"] = delay
            logger.warning(
                "alert #%s channel=%s outbox=%d attempt=%d failed, retry in %.1f s: %s",
                notice.event_id,
                notice.channel,
                notice.id,
                attempt,
                delay,
                error,
            )
            await self._record(_RETRY, params)
            self._later(
                Notice(
                    notice.id,
                    notice.channel,
                    notice.kind,
                    notice.payload,
                    notice.event_id,
                    attempt,
                ),
                delay,
            )
            return False, error
        self.dead += 1
        self._owned.discard(notice.id)
        logger.error(
            "alert #%s channel=%s outbox=%d is a dead letter after %d attempt(s): %s",
            notice.event_id,
            notice.channel,
            notice.id,
            attempt,
            error,
        )
        await self._record(_DEAD, params)
        return False, error

    async def _record(self, statement: str, params: dict[str, Any]) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(statement, params)
        except _DB_ERRORS as err:
            logger.warning("alert delivery log not written outbox=%s: %s", params["id"], err)


async def requeue_dead(pool: Pool, ids: list[int] | None = None) -> int:
    """Send dead letters again (all, or the given notification ids)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "WITH d AS (UPDATE alert_dead_letter SET requeued_at = now()"
            " WHERE requeued_at IS NULL AND (%(ids)s::bigint[] IS NULL"
            "  OR notification_id = ANY(%(ids)s)) RETURNING notification_id)"
            " UPDATE alert_notification n SET state = 'pending', attempts = 0,"
            " next_attempt_at = now(), claimed_until = NULL FROM d"
            " WHERE n.id = d.notification_id RETURNING n.id",
            {"ids": ids},
        )
        return len(await cur.fetchall())
