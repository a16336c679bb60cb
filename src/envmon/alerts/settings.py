"""Settings of the alert service (``ENVMON_ALERTS__*`` once nested in ``Settings``).

Secrets never live here or in ``config/alerts.yaml``: the rules file names an
environment variable per secret (``secret_env: ENVMON_ALERT_WEBHOOK_SECRET``)
and the variable is read when the file is loaded.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class AlertSettings(BaseModel):
    """Where the rules are, how often scheduled rules run, how delivery retries."""

    enabled: bool = True
    rules_file: Path | None = Field(
        default=None, description="The rules file; unset = <config_dir>/alerts.yaml."
    )
    targets_file: Path | None = Field(
        default=None,
        description="Targets for target-risk rules; unset = <config_dir>/targets.yaml.",
    )
    grafana_url: str = Field(
        default="",
        description="Base URL of the Grafana on-call can open (e.g. http://grafana.bureau:3000),"
        " for the dashboard link in every message; unset = messages carry no link (a link to"
        " a Grafana that does not run there is worse than none).",
    )
    tick_s: float = Field(
        default=15.0,
        ge=0,
        description="How often scheduled rules, escalation and silence expiry are checked "
        "(0 = never by itself; call run_scheduled()).",
    )
    delivery_workers: int = Field(default=4, ge=1)
    max_attempts: int = Field(default=8, ge=1, description="Attempts before a dead letter.")
    backoff_initial_s: float = Field(default=2.0, ge=0)
    backoff_max_s: float = Field(default=600.0, ge=0)
    http_timeout_s: float = Field(default=10.0, gt=0)
    startup_grace_s: float = Field(
        default=900.0,
        ge=0,
        description="After start-up, offline and data-quality rules wait this long "
        "(stations reconnect; the accepted-reading counts fill up).",
    )


def rules_path(settings: AlertSettings, config_dir: Path) -> Path:
    return settings.rules_file or config_dir / "alerts.yaml"


def targets_path(settings: AlertSettings, config_dir: Path) -> Path:
    return settings.targets_file or config_dir / "targets.yaml"
