"""Settings: one object built at start-up and passed down (prefix ``ENVMON_``).

Nested groups use ``__`` in the environment, e.g. ``ENVMON_HJ212__PORT=9212``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from envmon.alerts.settings import AlertSettings
from envmon.api.config import ApiSettings
from envmon.dashboards.settings import GrafanaSettings
from envmon.ingest.sources_config import CollectSettings


class WriterSettings(BaseModel):
    """The database writer and its spool."""

    batch_size: int = Field(default=20_000, ge=1, description="Rows per COPY batch.")
    max_future_minutes: float = Field(
        default=10.0, ge=0, description="A reading further in the future than this is rejected."
    )


class Hj212Settings(BaseModel):
    """The HJ 212 TCP receiver (``ENVMON_HJ212__*``)."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=9212, ge=0, le=65535)
    max_connections: int = Field(default=1000, ge=1)
    idle_timeout_s: float = Field(default=600.0, gt=0, description="Close a silent connection.")
    max_buffer_bytes: int = Field(default=65536, ge=1024)
    auth_failures_before_close: int = Field(default=3, ge=1)
    # Device access passwords by MN. Never in the catalog: a secrets file
    # (YAML mapping MN → password) and/or ENVMON_HJ212__PASSWORDS='{"MN": "pw"}'.
    secrets_file: Path | None = None
    passwords: dict[str, SecretStr] = Field(default_factory=dict)
    archive_retention_days: int = Field(default=90, ge=1)
    gap_recovery: bool = True
    gap_recovery_max_hours: int = Field(default=72, ge=1)


class RetentionSettings(BaseModel):
    """How long short-lived data is kept (``ENVMON_RETENTION__*``, days; 0 = for good).

    Hourly and daily readings and the derived tables are always kept.
    """

    minute_days: int = Field(
        default=90, ge=0, description="Sub-hourly readings (periods rt, 1min, 5min)."
    )
    rejects_days: int = Field(default=365, ge=0, description="Rejected rows.")
    alert_log_days: int = Field(default=365, ge=0, description="The alert delivery log.")


class SimulatorSettings(BaseModel):
    """The built-in simulator (``ENVMON_SIMULATOR__*``): the demo of ``make run``.

    ``enabled`` unset means: on with the embedded database, off with an external
    one (a production server never gets simulated data by accident).
    """

    enabled: bool | None = None
    seed: int = 2025
    recent_days: int = Field(default=7, ge=0, description="History loaded at start-up.")
    history_years: list[int] = Field(
        default_factory=lambda: [2020, 2025],
        description="Whole years of air and water data loaded in the background "
        "(the 2020 baseline and the 2025 target year).",
    )
    history_current_year: bool = Field(
        default=True, description="Also load the current year up to the recent days."
    )
    live_interval_s: float = Field(default=60.0, gt=0)


class Settings(BaseSettings):
    """Everything envmon needs to know about where it runs."""

    model_config = SettingsConfigDict(
        env_prefix="ENVMON_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: SecretStr | None = Field(
        default=None,
        description="An external PostgreSQL/TimescaleDB server; unset = the embedded one.",
    )
    database_password: SecretStr | None = Field(
        default=None,
        description="The password for DATABASE_URL, kept apart so that any character "
        "(@ / # %) works without URL quoting.",
    )
    database_app_role: str | None = Field(
        default=None,
        description="envmon migrate (as an administrator) creates this login role, not a "
        "superuser, owning envmon's schema; the service then connects as it.",
    )
    database_app_password: SecretStr | None = Field(
        default=None, description="The password migrate gives DATABASE_APP_ROLE."
    )
    timescaledb_required: bool = Field(
        default=False,
        description="migrate stops with an error where TimescaleDB cannot be used "
        "(instead of carrying on as plain PostgreSQL).",
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    data_dir: Path = Field(
        default=Path("var"), description="Embedded cluster, spool, raw-frame archive."
    )
    embedded_port: int = Field(default=5433, ge=1024, le=65535)
    config_dir: Path = Field(default=Path("config"))
    stations_file: Path | None = None
    log_level: str = "INFO"
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)
    writer: WriterSettings = Field(default_factory=WriterSettings)
    hj212: Hj212Settings = Field(default_factory=Hj212Settings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    collect: CollectSettings = Field(default_factory=CollectSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @property
    def stations_path(self) -> Path:
        return self.stations_file or self.config_dir / "stations.yaml"

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def hj212_secrets_path(self) -> Path:
        return self.hj212.secrets_file or self.data_dir / "hj212-secrets.yaml"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def uses_embedded(self) -> bool:
        return self.database_url is None

    @property
    def simulator_enabled(self) -> bool:
        if self.simulator.enabled is None:
            return self.uses_embedded
        return self.simulator.enabled
