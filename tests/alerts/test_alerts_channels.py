"""Every channel against a real server: WeCom and DingTalk robots (their own JSON, the
DingTalk signature), SMTP (aiosmtpd, plain and STARTTLS with login), and the log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from envmon.app import App
from envmon.db.embedded import free_port

from .conftest import AIR, PM25_RULE, Clock, Receiver, base_hour, config, feed, rows, service

DING_SECRET = "SECd1ng-t3st-secret+/="


async def test_wecom_and_dingtalk_robots(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config(
        [PM25_RULE],
        channels={
            "wecom": {"type": "wecom", "url": receiver.url + "/cgi-bin/webhook/send",
                      "key_env": "TEST_WECOM_KEY", "mentioned_users": ["zhangsan"]},
            "wecom-text": {"type": "wecom", "url": receiver.url + "/wecom-text",
                           "key_env": "TEST_WECOM_KEY", "msgtype": "text",
                           "mentioned_mobiles": ["13800000000"]},
            "ding": {"type": "dingtalk", "url": receiver.url + "/robot/send",
                     "access_token_env": "TEST_DING_TOKEN", "secret_env": "TEST_DING_SECRET",
                     "at_mobiles": ["13900000000"]},
        },
        routes=[{"name": "default", "channels": ["wecom", "wecom-text", "ding"]}],
        env={"TEST_DING_TOKEN": "tok-abc", "TEST_DING_SECRET": DING_SECRET},
    )  # fmt: skip
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await receiver.wait_for(3)
        await svc.wait_delivered()

    (wecom,) = receiver.on("/cgi-bin/webhook/send")
    assert wecom.query == {"key": "wk-123"}
    body = wecom.json
    assert body["msgtype"] == "markdown" and set(body) == {"msgtype", "markdown"}
    content = body["markdown"]["content"]
    assert content.startswith('### <font color="warning">【告警·警告】')
    assert "> **站点**：尖草坪" in content and "<@zhangsan>" in content
    assert "[在 Grafana 中查看](http://grafana.test/d/envmon-air-station?" in content

    (text,) = receiver.on("/wecom-text")
    assert text.json["msgtype"] == "text"
    assert text.json["text"]["mentioned_mobile_list"] == ["13800000000"]
    assert "监测值：150 µg/m³" in text.json["text"]["content"]

    (ding,) = receiver.on("/robot/send")
    assert ding.query["access_token"] == "tok-abc"
    # 加签: sign = base64(HMAC-SHA256(secret, f"{timestamp}\n{secret}")), URL-encoded on
    # the wire (the receiver sees it decoded).
    ts = ding.query["timestamp"]
    expected = base64.b64encode(
        hmac.new(DING_SECRET.encode(), f"{ts}\n{DING_SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert ding.query["sign"] == expected
    assert ding.json["msgtype"] == "markdown"
    assert ding.json["markdown"]["title"].startswith("【告警·警告】PM2.5")
    assert ding.json["markdown"]["text"].endswith("@13900000000")
    assert ding.json["at"] == {"atMobiles": ["13900000000"], "isAtAll": False}
    sent = await rows(app, "SELECT channel, status FROM alert_delivery ORDER BY channel")
    assert sent == [
        ("ding", "errcode 0 ok"),
        ("wecom", "errcode 0 ok"),
        ("wecom-text", "errcode 0 ok"),
    ]


async def test_robot_error_codes(app: App, receiver: Receiver) -> None:
    """45009 (rate limit) is retried; 93000 (bad webhook key) is a dead letter at once."""
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config(
        [PM25_RULE],
        channels={"a": {"type": "wecom", "url": receiver.url + "/a", "key_env": "TEST_WECOM_KEY"}},
        routes=[{"name": "default", "channels": ["a"]}],
    )
    receiver.answers = [(200, {"errcode": 45009, "errmsg": "api freq out of limit"})]
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await receiver.wait_for(2)
        await svc.wait_delivered()
    log = await rows(app, "SELECT attempt, ok, error FROM alert_delivery ORDER BY id")
    assert log == [(1, False, "errcode 45009: api freq out of limit"), (2, True, None)]

    receiver.default = (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    clock.advance(hours=1)
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 50.0)])
        await receiver.wait_for(3)
        await svc.wait_delivered()
    dead = await rows(app, "SELECT kind, attempts, last_error FROM alert_dead_letter")
    assert dead == [("resolved", 1, "errcode 93000: invalid webhook url")]


# ------------------------------------------------------------------ e-mail


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"smtp-pass"
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Iterator[tuple[Mailbox, int]]:
    import ssl

    box = Mailbox()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certificate[0]), str(certificate[1]))
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=False,
        authenticator=box.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


async def test_email_over_starttls_with_login(
    app: App, smtp: tuple[Mailbox, int], certificate: tuple[Path, Path]
) -> None:
    box, port = smtp
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    mail = {"type": "email", "host": "127.0.0.1", "port": port, "from": "envmon@example.cn",
            "to": ["duty@example.cn", "lead@example.cn"],
            "subject_prefix": "[太忻环境]"}  # fmt: skip
    cfg = config(
        [PM25_RULE],
        channels={
            "tls": {**mail, "security": "starttls", "ca_file": str(certificate[0]),
                    "username": "envmon", "password_env": "TEST_SMTP_PASSWORD"},
            "plain": {**mail, "security": "none"},
        },
        routes=[{"name": "default", "channels": ["tls", "plain"]}],
        env={"TEST_SMTP_PASSWORD": "smtp-pass"},
    )  # fmt: skip
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await svc.wait_delivered()
    assert box.logins == ["envmon"]  # the password came from the environment, over TLS
    assert len(box.messages) == 2
    assert box.envelopes[0] == ("envmon@example.cn", ["duty@example.cn", "lead@example.cn"])
    msg = box.messages[0]
    assert msg["Subject"].startswith("[太忻环境] 【告警·警告】PM2.5")
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert "站点：尖草坪" in text.get_content() and "150 µg/m³" in text.get_content()
    assert "<th align='left'>站点</th>" in html.get_content()
    assert await rows(app, "SELECT count(*) FROM alert_delivery WHERE ok") == [(2,)]


async def test_email_refused_login_is_a_dead_letter(
    app: App, smtp: tuple[Mailbox, int], certificate: tuple[Path, Path]
) -> None:
    box, port = smtp
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config(
        [PM25_RULE],
        channels={"tls": {"type": "email", "host": "127.0.0.1", "port": port,
                          "from": "envmon@example.cn", "to": "duty@example.cn",
                          "ca_file": str(certificate[0]), "username": "envmon",
                          "password_env": "TEST_SMTP_PASSWORD"}},
        routes=[{"name": "default", "channels": ["tls"]}],
        env={"TEST_SMTP_PASSWORD": "wrong"},
    )  # fmt: skip
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await svc.wait_delivered()
    assert box.messages == []
    ((attempts, error),) = await rows(app, "SELECT attempts, last_error FROM alert_dead_letter")
    assert attempts == 1 and error.startswith("SMTP 535")


async def test_log_channel(app: App, caplog: pytest.LogCaptureFixture) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config([PM25_RULE])  # no channels, no routes: the default route to the log
    with caplog.at_level(logging.WARNING, logger="envmon.alerts.notify"):
        async with service(app, cfg, clock) as svc:
            await feed(app, [(AIR, "pm25", h0, 150.0)])
            await svc.wait_delivered()
    (record,) = [r for r in caplog.records if r.name == "envmon.alerts.notify"]
    assert "【告警·警告】PM2.5 小时浓度超过 115 µg/m³ — 尖草坪" in record.getMessage()
    assert await rows(app, "SELECT channel, status FROM alert_delivery") == [("log", "logged")]
