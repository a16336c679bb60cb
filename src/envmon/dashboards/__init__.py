"""Grafana dashboards, alert rules and their deployment, as code (issues 7 and 11).

All of envmon's Grafana code lives here, on the one data source uid
:data:`.sql.DATASOURCE_UID`:

* :mod:`.boards` — the six dashboards, one module each (``boards/overview.py`` …);
  :mod:`.panels` their building blocks (colours, SQL fragments, panel builders,
  the panel registry), :mod:`.variables` the template variables, :mod:`.goals`
  the zone's targets baked into SQL, :mod:`.sql` the typed PostgreSQL dataquery;
* :mod:`.build` — ``envmon dashboards build [--check]``: the committed JSON and
  provisioning under ``deploy/grafana/``;
* :mod:`.alert_rules` — ``envmon alerts grafana [--check]``: ``config/alerts.yaml``
  as Grafana-managed alert rules (``deploy/grafana/provisioning/alerting/``);
* :mod:`.push` — ``envmon dashboards push``: the same dashboards over Grafana's HTTP API;
* :mod:`.macros` — Grafana's PostgreSQL macro and variable expansion, ported, and
  :mod:`.runner` — a dashboard's queries expanded as Grafana would run them.
"""
