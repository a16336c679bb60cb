"""Messages for people on call, in Chinese: station, city, parameter, value and limit,
category, Beijing time, and a link to the station's Grafana dashboard.

A message is rendered once, when its transition happens, and stored with the
notification, so that a message delivered after a restart (or a retry hours
later) says what was true when it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote, urlencode

from envmon.alerts.model import NOTICE_ZH, Episode, NoticeKind
from envmon.alerts.rules import SEVERITY_ZH
from envmon.catalog import Catalog
from envmon.timeutil import to_beijing

# Dashboard UIDs (the dashboards are provisioned with these UIDs).
DASHBOARD_UID: Final = {
    "air": "envmon-air-station",
    "water": "envmon-water",
    "weather": "envmon-weather",
}
KIND_ZH: Final = {"air": "空气站", "water": "水质断面", "weather": "气象站"}
# Markdown colours the WeCom robot understands (<font color="warning">): warning is
# orange, info green, comment grey.
_WECOM_COLOUR: Final = {"critical": "warning", "warning": "warning", "info": "comment"}


def fmt_number(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def value_label(ep: Episode, *, first: bool = False) -> str:
    """An episode's latest (or ``first``: firing) value as people read it.

    With its unit, a water class as Ⅰ–Ⅴ/劣Ⅴ — the text its messages show, never the
    bare number the engine compares (``6`` for 劣Ⅴ).
    """
    text = None if first else ep.details.get("last_text")
    if text is None and (first or ep.last_value == ep.value):
        text = ep.details.get("value_text")
    if text:
        return str(text)
    value = ep.value if first else ep.last_value
    return f"{fmt_number(value)} {ep.unit}" if ep.unit and value is not None else fmt_number(value)


def fmt_time(ts: datetime | None) -> str:
    return "—" if ts is None else to_beijing(ts).strftime("%Y-%m-%d %H:%M")


_PERIOD_S: Final = {"1min": 60, "5min": 300, "1h": 3600, "4h": 14400}


def fmt_data_time(ts: datetime | None, period: str | None) -> str:
    """A reading's time; for a period, the span it covers (09:00–10:00 for 09:00's hour)."""
    if ts is None:
        return "—"
    start = to_beijing(ts)
    if period == "1d":
        return start.strftime("%Y-%m-%d") + " 日均"
    if period in _PERIOD_S:
        end = start + timedelta(seconds=_PERIOD_S[period])
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"
    return fmt_time(start)


def fmt_span(d: timedelta) -> str:
    """A duration in Chinese: 2小时5分钟, 45分钟, 3天2小时."""
    minutes = max(int(d.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days}天")
    if hours:
        parts.append(f"{hours}小时")
    if mins and not days:
        parts.append(f"{mins}分钟")
    return "".join(parts) or "不到1分钟"


def dashboard_url(
    base: str,
    kind: str | None,
    station_id: str | None,
    start: datetime | None,
) -> str | None:
    if not base:
        return None
    uid = DASHBOARD_UID.get(kind or "air", DASHBOARD_UID["air"])
    query: dict[str, str] = {}
    if station_id:
        query["var-station"] = station_id
    if start is not None:
        query["from"] = str(int((start - timedelta(hours=6)).timestamp() * 1000))
        query["to"] = "now"
    return f"{base.rstrip('/')}/d/{uid}" + (
        f"?{urlencode(query, quote_via=quote)}" if query else ""
    )


@dataclass(frozen=True)
class Message:
    kind: NoticeKind
    severity: str
    title: str
    lines: tuple[tuple[str, str], ...]
    url: str | None
    data: dict[str, Any]

    @property
    def text(self) -> str:
        body = [self.title, *(f"{k}：{v}" for k, v in self.lines)]
        if self.url:
            body.append(f"详情：{self.url}")
        return "\n".join(body)

    def markdown(self, *, coloured: bool = False) -> str:
        title = self.title
        if coloured:
            title = f'<font color="{_WECOM_COLOUR.get(self.severity, "comment")}">{title}</font>'
        body = [f"### {title}", *(f"> **{k}**：{v}" for k, v in self.lines)]
        if self.url:
            body.append(f"\n[在 Grafana 中查看]({self.url})")
        return "\n".join(body)

    def as_payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "lines": [list(x) for x in self.lines],
            "url": self.url,
            "data": self.data,
        }

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> Message:
        return cls(
            p["kind"],
            p["severity"],
            p["title"],
            tuple((str(k), str(v)) for k, v in p["lines"]),
            p.get("url"),
            dict(p.get("data") or {}),
        )


def subject_label(ep: Episode, catalog: Catalog) -> tuple[str, list[tuple[str, str]], str | None]:
    """(short name, descriptive lines, station kind) of an episode's subject."""
    station = catalog.by_id.get(ep.station_id or "")
    if station is not None:
        where = f"{station.city} {station.county}"
        extra = f"，{station.river}" if station.river else ""
        return (
            station.name,
            [("站点", f"{station.name}（{KIND_ZH[station.kind]}，{where}{extra}，{station.id}）")],
            station.kind,
        )
    kind, _, name = ep.subject.partition(":")
    if kind == "city":
        return name, [("城市", name)], "air"
    if kind == "source":
        return f"数据源 {name}", [("数据源", name)], None
    if kind == "region":
        label = str(ep.details.get("region_name") or name)
        return label, [("区域", label)], None
    return ep.subject, [("对象", ep.subject)], None


def render(
    kind: NoticeKind,
    ep: Episode,
    rule_title: str,
    catalog: Catalog,
    grafana_url: str,
    now: datetime,
) -> Message:
    """The message for one transition of an episode."""
    name, where, station_kind = subject_label(ep, catalog)
    d = ep.details
    what = str(d.get("what") or rule_title)
    tag = NOTICE_ZH[kind]
    if ep.flapping and kind == "firing":
        tag = "告警·频繁波动"
    title = f"【{tag}·{SEVERITY_ZH.get(ep.severity, ep.severity)}】{rule_title} — {name}"
    lines: list[tuple[str, str]] = list(where)
    lines.append(("指标", what))
    if kind == "resolved":
        lines.append(("最新值", str(d.get("last_text") or fmt_number(ep.last_value))))
        lines.append(("告警时值", str(d.get("value_text") or fmt_number(ep.value))))
    else:
        lines.append(("监测值", str(d.get("value_text") or fmt_number(ep.value))))
    if d.get("limit_text"):
        lines.append(("限值", str(d["limit_text"])))
    if d.get("category") and kind != "resolved":
        lines.append(("类别", str(d["category"])))
    for k, v in d.get("extra") or []:
        lines.append((str(k), str(v)))
    data_ts = ep.last_ts if kind == "resolved" else ep.first_ts
    lines.append(("数据时间", f"{fmt_data_time(data_ts, d.get('period'))}（北京时间）"))
    lines.append(("开始", f"{fmt_time(ep.started_at)}（北京时间）"))
    if kind == "resolved":
        end = ep.resolved_at or now
        lines.append(("恢复", f"{fmt_time(end)}（北京时间），持续{fmt_span(end - ep.started_at)}"))
    if kind == "escalated":
        lines.append(("升级原因", f"已持续{fmt_span(now - ep.started_at)}仍未确认"))
    if ep.flapping and kind == "firing":
        lines.append(("说明", "该告警近期反复触发，恢复通知将在持续正常后发送"))
    lines.append(("级别", SEVERITY_ZH.get(ep.severity, ep.severity)))
    if ep.id is not None and kind != "resolved":
        lines.append(("告警编号", f"#{ep.id}（确认：envmon alerts ack {ep.id}）"))
    url = dashboard_url(grafana_url, station_kind, ep.station_id, ep.started_at)
    data = {
        "event_id": ep.id,
        "rule": ep.rule,
        "subject": ep.subject,
        "station_id": ep.station_id,
        "city": ep.city,
        "severity": ep.severity,
        "state": kind if kind != "test" else ep.state,  # as of this message
        "parameter": ep.parameter,
        "unit": ep.unit,
        "value": ep.value,
        "last_value": ep.last_value,
        "threshold": ep.threshold,
        "started_at": ep.started_at.isoformat(),
        "first_ts": ep.first_ts.isoformat() if ep.first_ts else None,
        "resolved_at": ep.resolved_at.isoformat() if ep.resolved_at else None,
        "escalated_at": ep.escalated_at.isoformat() if ep.escalated_at else None,
        "flapping": ep.flapping,
        "category": d.get("category"),
    }
    return Message(kind, ep.severity, title, tuple(lines), url, data)


def test_message(channel: str, now: datetime) -> Message:
    return Message(
        "test",
        "info",
        f"【测试·提示】envmon 告警通道测试 — {channel}",
        (
            ("说明", "这是一条测试消息，收到即表示该通道可用"),
            ("时间", f"{fmt_time(now)}（北京时间）"),
        ),
        None,
        {"channel": channel, "sent_at": now.isoformat()},
    )
