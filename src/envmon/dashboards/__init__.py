"""Grafana dashboards and their deployment, as code (issue 7).

* :mod:`.dashboards` — the six dashboards (foundation SDK builders), :mod:`.panels`
  their building blocks, :mod:`.sql` the typed PostgreSQL dataquery;
* :mod:`.build` — ``envmon dashboards build [--check]``: the committed JSON and
  provisioning under ``deploy/grafana/``;
* :mod:`.push` — ``envmon dashboards push``: the same dashboards over Grafana's HTTP API;
* :mod:`.macros` — Grafana's PostgreSQL macro and variable expansion, ported, and
  :mod:`.runner` — a dashboard's queries expanded as Grafana would run them.
"""
