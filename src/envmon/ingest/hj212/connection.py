"""One HJ 212 device connection as the receiver keeps it: its transport, its
session, why it is not being read, and what it is owed (held replies, the
authentication deadline, its reject budget)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from envmon.ratelimit import TokenBucket

from .session import Session


@dataclass(eq=False)
class Connection:
    """One device connection: its transport, its session and why it is not
    being read (``paused``: "room", "throttle", "writing")."""

    peer: str
    transport: asyncio.Transport
    session: Session
    last_rx: float
    bucket: TokenBucket  # frames a second this client may send (a flood only slows it)
    closing: bool = False
    throttle_s: float = 0.0  # how long the bucket's debt takes to pay
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None  # the throttle's end
    send_deadline: asyncio.TimerHandle | None = None  # a client that does not read
    queued: int = 0  # chunks read and waiting in the server's inbox
    held: int = 0  # replies waiting for their frames to be durable
    opened: float = 0.0  # loop time of the accept
    rejects: int = 0  # rejects stored for this connection
    rejects_dropped: int = 0  # beyond max_rejects_per_connection: one summary row
    eof: bool = False  # the peer sends no more: close when everything is answered
    lost: bool = False  # the peer is gone: what is queued is processed, then the end
    # Receiver workers: what was read before the first frame's MN said which
    # worker serves the device (None: this one, decided).
    routing: bytearray | None = None

    def close(self) -> None:
        self.closing = True
        self.transport.close()

    def pause(self, reason: str) -> None:
        if not self.paused and not self.closing:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self.paused:
            return
        self.paused.discard(reason)
        if not self.paused and not self.closing:
            self.transport.resume_reading()


def peer_name(transport: asyncio.BaseTransport) -> str:
    info: Any = transport.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        host, port = info[0], info[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(info or "?")
