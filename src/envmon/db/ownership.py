"""One owner per piece of work across every ``envmon run`` sharing a database.

Two instances behind a load balancer hold the same sources file and the same
alert rules; each source must still be polled by one of them, and each alert
raised by one. :class:`Ownership` holds PostgreSQL session-level advisory
locks on one dedicated connection (outside the pool, autocommit): the lock is
the ownership, and it ends when its holder ends — a clean stop closes the
connection, a ``kill -9`` or a lost network drops the session, and the
server releases every lock of it. Another instance takes a name over at its
next :meth:`owns` call.

::

    own = Ownership(conninfo, "envmon.poll")
    if await own.owns("cnemc-air"):   # held (or just taken) by this instance
        ...
    await own.close()

Locks are keyed by ``(hashtext(namespace), hashtext(name))`` — the two-int
form, so that a namespace never collides with the migrations' lock.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg import AsyncConnection

logger = logging.getLogger(__name__)


class Ownership:
    """Advisory-lock ownership of names within one namespace (see the module docstring)."""

    def __init__(self, conninfo: str, namespace: str) -> None:
        self.conninfo = conninfo
        self.namespace = namespace
        self.held: set[str] = set()
        self._conn: AsyncConnection[tuple[object, ...]] | None = None
        self._lock = asyncio.Lock()  # one session, one query at a time (jobs run at once)

    async def _connection(self) -> AsyncConnection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self.held.clear()  # a new session holds nothing
            self._conn = await AsyncConnection.connect(
                self.conninfo, autocommit=True, application_name=f"envmon {self.namespace}"
            )
        return self._conn

    async def owns(self, name: str) -> bool:
        """True if this instance holds ``name`` now (taking it if nobody does)."""
        async with self._lock:
            return await self._owns(name)

    async def _owns(self, name: str) -> bool:
        try:
            conn = await self._connection()
            if name in self.held:
                await conn.execute("SELECT 1")  # the session (and so the lock) is alive
                return True
            cur = await conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
                (self.namespace, name),
            )
            row = await cur.fetchone()
        except psycopg.OperationalError as err:
            # The session is gone, and its locks with it: someone else may own the
            # name by now. Not owned until a new session takes it again.
            logger.warning("%s ownership connection lost: %s", self.namespace, err)
            await self._drop()
            return False
        if row is not None and row[0]:
            self.held.add(name)
            logger.info("%s: this instance owns %s", self.namespace, name)
            return True
        return False

    async def _drop(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            except psycopg.Error:  # closing a broken connection
                pass
        self._conn = None
        self.held.clear()

    async def close(self) -> None:
        """Give every name up (closing the session releases its locks)."""
        async with self._lock:
            await self._drop()
