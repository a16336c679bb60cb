"""A generic JSON webhook, signed with HMAC-SHA256.

Headers: ``X-Envmon-Event`` (firing, escalated, resolved, test),
``X-Envmon-Delivery`` (the notification id: the same on every retry, so a
receiver can drop a repeat), ``X-Envmon-Timestamp`` (Unix seconds) and, when
the channel has a secret, ``X-Envmon-Signature: sha256=<hex>`` where the hex is
HMAC-SHA256(secret, ``"<timestamp>." + body``). Signing the timestamp with the
body lets a receiver refuse replays (check it is recent).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp

from envmon.alerts.channels.base import HttpChannel
from envmon.alerts.message import Message

SIGNATURE_HEADER = "X-Envmon-Signature"
TIMESTAMP_HEADER = "X-Envmon-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel(HttpChannel):
    type = "webhook"

    def __init__(
        self,
        name: str,
        timeout: float,
        session: aiohttp.ClientSession,
        url: str,
        secret: str | None,
        headers: dict[str, str],
    ) -> None:
        super().__init__(name, timeout, session)
        self.url = url
        self.secret = secret
        self.headers = headers

    def body(self, message: Message, notice_id: int) -> bytes:
        doc = {
            "id": notice_id,
            "kind": message.kind,
            "severity": message.severity,
            "title": message.title,
            "text": message.text,
            "markdown": message.markdown(),
            "url": message.url,
            "fields": [{"name": k, "value": v} for k, v in message.lines],
            **message.data,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def send(self, message: Message, notice_id: int) -> str:
        body = self.body(message, notice_id)
        ts = str(int(time.time()))
        headers = {
            **self.headers,
            "X-Envmon-Event": message.kind,
            "X-Envmon-Delivery": str(notice_id),
            TIMESTAMP_HEADER: ts,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
        status, _ = await self.post_json(self.url, body, headers)
        return f"HTTP {status}"
