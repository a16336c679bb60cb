"""Delivery channels: webhook, e-mail, WeCom and DingTalk robots, and the log."""

from __future__ import annotations

import logging

import aiohttp

from envmon.alerts import rules as cfg
from envmon.alerts.channels.base import Channel
from envmon.alerts.channels.email import EmailChannel
from envmon.alerts.channels.robots import DingtalkChannel, WecomChannel
from envmon.alerts.channels.webhook import WebhookChannel
from envmon.alerts.message import Message

__all__ = [
    "Channel",
    "DingtalkChannel",
    "EmailChannel",
    "LogChannel",
    "WebhookChannel",
    "WecomChannel",
    "build_channels",
]

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogChannel(Channel):
    """Messages into the service log (the embedded demo's default route)."""

    type = "log"

    def __init__(self, name: str, level: str = "warning") -> None:
        super().__init__(name, 1.0)
        self.level = _LEVELS[level]
        self.logger = logging.getLogger("envmon.alerts.notify")

    async def send(self, message: Message, notice_id: int) -> str:
        # The alert's number is the one its message shows (告警编号) and `alerts ack` takes;
        # the outbox row is only the delivery's.
        event_id = message.data.get("event_id")
        self.logger.log(
            self.level,
            "alert %s %s (outbox=%d)",
            f"#{event_id}" if event_id is not None else "test",
            message.text.replace("\n", " | "),
            notice_id,
        )
        return "logged"


def build_channels(
    config: cfg.AlertConfig, session: aiohttp.ClientSession, default_timeout: float
) -> dict[str, Channel]:
    """One channel object per configured channel, secrets taken from the config."""
    out: dict[str, Channel] = {}
    for name, c in config.channels.items():
        timeout = c.timeout.total_seconds() if c.timeout else default_timeout
        if isinstance(c, cfg.LogChannel):
            out[name] = LogChannel(name, c.level)
        elif isinstance(c, cfg.WebhookChannel):
            out[name] = WebhookChannel(
                name, timeout, session, c.url, config.secret(c.secret_env), dict(c.headers)
            )
        elif isinstance(c, cfg.EmailChannel):
            out[name] = EmailChannel(
                name,
                timeout,
                host=c.host,
                port=c.port,
                security=c.security,
                verify=c.verify,
                ca_file=c.ca_file,
                username=c.username,
                password=config.secret(c.password_env),
                sender=c.sender,
                to=list(c.to),
                subject_prefix=c.subject_prefix,
            )
        elif isinstance(c, cfg.WecomChannel):
            out[name] = WecomChannel(
                name,
                timeout,
                session,
                c.url,
                config.secret(c.key_env) or "",
                c.msgtype,
                list(c.mentioned_users),
                list(c.mentioned_mobiles),
            )
        elif isinstance(c, cfg.DingtalkChannel):
            out[name] = DingtalkChannel(
                name,
                timeout,
                session,
                c.url,
                config.secret(c.access_token_env) or "",
                config.secret(c.secret_env),
                c.msgtype,
                list(c.at_mobiles),
                c.at_all,
            )
    return out
