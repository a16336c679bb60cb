"""Alerts for on-call staff: rules on every batch and on a schedule, episodes,
escalation, silences, and delivery to webhooks, e-mail, WeCom and DingTalk robots.

Entry points: :class:`AlertService` (``async with AlertService(pool, catalog,
settings, sink=sink)``: listens to the sink's stored batches),
:func:`load_config` (``config/alerts.yaml``), :mod:`envmon.alerts.cli`
(``envmon alerts …``). The settings group is ``envmon.settings.AlertSettings``.
"""
