"""Group robots: WeCom (企业微信群机器人) and DingTalk (钉钉自定义机器人).

WeCom: ``POST <url>?key=<key>`` with ``{"msgtype": "markdown", "markdown":
{"content": …}}`` (content at most 4096 bytes) or ``{"msgtype": "text", "text":
{"content": …, "mentioned_list": […], "mentioned_mobile_list": […]}}`` (2048
bytes). Answer ``{"errcode": 0, "errmsg": "ok"}``; 45009 is the robot's rate
limit (20 messages a minute), -1 "system busy".

DingTalk: ``POST <url>?access_token=<token>[&timestamp=<ms>&sign=<sign>]`` with
``{"msgtype": "markdown", "markdown": {"title": …, "text": …}, "at":
{"atMobiles": […], "isAtAll": false}}`` or ``msgtype: text``. With 加签, ``sign``
is base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")), URL-encoded; the
timestamp (milliseconds) must be within an hour of DingTalk's clock. 130101 is
"send too fast" (20 a minute).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Final
from urllib.parse import quote_plus

import aiohttp
from yarl import URL

from envmon.alerts.channels.base import HttpChannel, truncate_utf8
from envmon.alerts.message import Message

WECOM_RETRY: Final = frozenset({-1, 45009})
DINGTALK_RETRY: Final = frozenset({-1, 130101})
WECOM_MARKDOWN_MAX: Final = 4096
WECOM_TEXT_MAX: Final = 2048
DINGTALK_MAX: Final = 20000


def _with_query(url: str, query: str) -> URL:
    sep = "&" if "?" in url else "?"
    # Already percent-encoded: yarl must not encode the signature a second time.
    return URL(f"{url}{sep}{query}", encoded=True)


class WecomChannel(HttpChannel):
    type = "wecom"

    def __init__(
        self,
        name: str,
        timeout: float,
        session: aiohttp.ClientSession,
        url: str,
        key: str,
        msgtype: str,
        mentioned_users: list[str],
        mentioned_mobiles: list[str],
    ) -> None:
        super().__init__(name, timeout, session)
        self.url = url
        self.key = key
        self.msgtype = msgtype
        self.mentioned_users = mentioned_users
        self.mentioned_mobiles = mentioned_mobiles

    def body(self, message: Message) -> dict[str, Any]:
        if self.msgtype == "text":
            return {
                "msgtype": "text",
                "text": {
                    "content": truncate_utf8(message.text, WECOM_TEXT_MAX),
                    "mentioned_list": self.mentioned_users,
                    "mentioned_mobile_list": self.mentioned_mobiles,
                },
            }
        content = message.markdown(coloured=True)
        if self.mentioned_users:  # markdown messages mention by <@userid>
            content += "\n" + " ".join(f"<@{u}>" for u in self.mentioned_users)
        return {
            "msgtype": "markdown",
            "markdown": {"content": truncate_utf8(content, WECOM_MARKDOWN_MAX)},
        }

    async def send(self, message: Message, notice_id: int) -> str:
        body = json.dumps(self.body(message), ensure_ascii=False).encode("utf-8")
        _, text = await self.post_json(_with_query(self.url, f"key={quote_plus(self.key)}"), body)
        return self.robot_answer(text, WECOM_RETRY)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The signed-webhook ``sign`` parameter, already URL-encoded."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


class DingtalkChannel(HttpChannel):
    type = "dingtalk"

    def __init__(
        self,
        name: str,
        timeout: float,
        session: aiohttp.ClientSession,
        url: str,
        access_token: str,
        secret: str | None,
        msgtype: str,
        at_mobiles: list[str],
        at_all: bool,
    ) -> None:
        super().__init__(name, timeout, session)
        self.url = url
        self.access_token = access_token
        self.secret = secret
        self.msgtype = msgtype
        self.at_mobiles = at_mobiles
        self.at_all = at_all

    def body(self, message: Message) -> dict[str, Any]:
        at = {"atMobiles": self.at_mobiles, "isAtAll": self.at_all}
        # DingTalk only notifies the people whose @mobile appears in the text.
        mention = " ".join(f"@{m}" for m in self.at_mobiles)
        if self.msgtype == "text":
            text = message.text + (f"\n{mention}" if mention else "")
            return {
                "msgtype": "text",
                "text": {"content": truncate_utf8(text, DINGTALK_MAX)},
                "at": at,
            }
        md = message.markdown() + (f"\n\n{mention}" if mention else "")
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": truncate_utf8(md, DINGTALK_MAX)},
            "at": at,
        }

    def signed_url(self, now_ms: int | None = None) -> URL:
        query = f"access_token={quote_plus(self.access_token)}"
        if self.secret:
            ts = int(time.time() * 1000) if now_ms is None else now_ms
            query += f"&timestamp={ts}&sign={dingtalk_sign(self.secret, ts)}"
        return _with_query(self.url, query)

    async def send(self, message: Message, notice_id: int) -> str:
        body = json.dumps(self.body(message), ensure_ascii=False).encode("utf-8")
        _, text = await self.post_json(self.signed_url(), body)
        return self.robot_answer(text, DINGTALK_RETRY)
