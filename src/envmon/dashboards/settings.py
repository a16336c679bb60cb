"""Settings of the Grafana side: where ``envmon dashboards push`` sends the dashboards.

A nested group of :class:`envmon.settings.Settings` (``ENVMON_GRAFANA__*``), e.g.
``ENVMON_GRAFANA__URL=https://grafana.example.cn`` and
``ENVMON_GRAFANA__TOKEN=glsa_…`` (a service-account token).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class GrafanaSettings(BaseModel):
    """Grafana for ``envmon dashboards push`` (``ENVMON_GRAFANA__*``)."""

    url: str = Field(
        default="http://localhost:3000",
        description="Grafana's base URL (a sub-path such as https://host/grafana works).",
    )
    token: SecretStr | None = Field(
        default=None,
        description="Service-account token: Editor rights on the folder; Admin to create the"
        " data source. Unset: basic-auth credentials in the URL, if any.",
    )
    folder_uid: str = Field(default="envmon", min_length=1)
    folder_title: str = Field(default="环境监测", min_length=1)
    timeout_s: float = Field(default=10.0, gt=0)
    verify_tls: bool = True
    org_id: int | None = Field(default=None, ge=1, description="X-Grafana-Org-Id; unset: default")
    # The data source push creates (or updates) when db_password is set; without it,
    # push only checks that the data source exists (provisioning created it).
    db_host: str = Field(default="db:5432", description="host:port as Grafana reaches it")
    db_name: str = "envmon"
    db_sslmode: str = "disable"
    db_password: SecretStr | None = Field(
        default=None, description="grafana_reader's password (the data source's)"
    )
