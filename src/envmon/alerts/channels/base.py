"""What every channel is: ``send(message, notice_id)``, raising by what to do next.

A channel only knows how to deliver one message once. Retries, back-off, the
delivery log, rate limits and dead letters are the dispatcher's
(:mod:`envmon.alerts.delivery`). A channel raises :class:`DeliveryFailed` for a
passing fault (timeout, connection refused, 5xx, 429, a robot's rate limit) and
:class:`DeliveryRejected` when retrying cannot help (a bad key, a 4xx).
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from typing import Any

import aiohttp
from yarl import URL

from envmon.alerts.errors import DeliveryFailed, DeliveryRejected
from envmon.alerts.message import Message


class Channel(ABC):
    """One configured destination (a webhook, a robot, a mailbox, the log)."""

    type: str = ""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout

    @abstractmethod
    async def send(self, message: Message, notice_id: int) -> str:
        """Deliver once; returns a short status for the delivery log."""

    def _failed(self, reason: str) -> DeliveryFailed:
        return DeliveryFailed(self.name, reason)

    def _rejected(self, reason: str) -> DeliveryRejected:
        return DeliveryRejected(self.name, reason)


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` of UTF-8 without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"


class HttpChannel(Channel):
    """A channel that POSTs JSON over the app's one HTTP session."""

    def __init__(self, name: str, timeout: float, session: aiohttp.ClientSession) -> None:
        super().__init__(name, timeout)
        self.session = session

    async def post_json(
        self,
        url: str | URL,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST; (status, body text) on 2xx, else the right exception."""
        hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            async with self.session.post(
                url, data=body, headers=hdrs, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except TimeoutError as err:
            raise self._failed(f"timed out after {self.timeout:g} s") from err
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as err:
            raise self._failed(f"{type(err).__name__}: {err}") from err
        if status == 429 or status >= 500:
            raise self._failed(f"HTTP {status}: {text[:200]}")
        if status >= 300:
            raise self._rejected(f"HTTP {status}: {text[:200]}")
        return status, text

    def robot_answer(self, text: str, retry_codes: frozenset[int]) -> str:
        """WeCom and DingTalk answer HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``."""
        try:
            answer: Any = json.loads(text)
            code = int(answer.get("errcode", -999))
            msg = str(answer.get("errmsg", ""))
        except (ValueError, AttributeError, TypeError) as err:
            raise self._failed(f"unreadable answer: {text[:200]!r}") from err
        if code == 0:
            return f"errcode 0 {msg}".strip()
        if code in retry_codes:
            raise self._failed(f"errcode {code}: {msg}")
        raise self._rejected(f"errcode {code}: {msg}")
