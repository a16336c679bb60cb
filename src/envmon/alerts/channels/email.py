"""E-mail over SMTP (aiosmtplib): STARTTLS, implicit TLS or plain; UTF-8 text + HTML."""

from __future__ import annotations

import html
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import aiosmtplib

from envmon.alerts.channels.base import Channel
from envmon.alerts.message import Message

_DEFAULT_PORT = {"starttls": 587, "tls": 465, "none": 25}


class EmailChannel(Channel):
    type = "email"

    def __init__(
        self,
        name: str,
        timeout: float,
        *,
        host: str,
        port: int | None,
        security: str,
        verify: bool,
        ca_file: Path | None,
        username: str | None,
        password: str | None,
        sender: str,
        to: list[str],
        subject_prefix: str,
    ) -> None:
        super().__init__(name, timeout)
        self.host = host
        self.port = port or _DEFAULT_PORT[security]
        self.security = security
        self.verify = verify
        self.ca_file = ca_file
        self.username = username
        self.password = password
        self.sender = sender
        self.to = to
        self.subject_prefix = subject_prefix

    def build(self, message: Message, notice_id: int) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = f"{self.subject_prefix} {message.title}".strip()
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid("envmon-alert")
        mail["X-Envmon-Delivery"] = str(notice_id)
        mail.set_content(message.text, charset="utf-8")
        rows = "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in message.lines
        )
        link = (
            f"<p><a href='{html.escape(message.url)}'>在 Grafana 中查看</a></p>"
            if message.url
            else ""
        )
        mail.add_alternative(
            f"<html><body><h3>{html.escape(message.title)}</h3><table>{rows}</table>{link}"
            "</body></html>",
            subtype="html",
            charset="utf-8",
        )
        return mail

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.security == "none":
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def send(self, message: Message, notice_id: int) -> str:
        mail = self.build(message, notice_id)
        try:
            _, answer = await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.security == "tls",
                start_tls=self.security == "starttls",
                validate_certs=self.verify,
                tls_context=self._tls_context(),
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as err:
            reason = f"SMTP {err.code}: {err.message}"
            # 4xx: a passing condition (greylisting, mailbox busy); 5xx: permanent.
            if 400 <= err.code < 500:
                raise self._failed(reason) from err
            raise self._rejected(reason) from err
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            raise self._failed(f"{type(err).__name__}: {err}") from err
        return f"SMTP {answer}".strip()[:200]
