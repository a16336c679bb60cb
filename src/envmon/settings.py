"""Settings: one object built at start-up and passed down (prefix ``ENVMON_``).

Nested groups use ``__`` in the environment, e.g. ``ENVMON_HJ212__PORT=9212``.
This is the only module that reads the environment, and it imports nothing of
the subsystems: each subsystem takes its own group. The paths of the files a
bureau edits (stations, sources, targets, alert rules, HJ 212) are resolved
once, here, when the settings are built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EvaluateSettings(BaseModel):
    """Conventions of the official statistics the standards leave open (issue 15).

    ``city_o3``: a city's O3 daily max 8-h value from its city-mean hourly series
    (``city_hourly``, the national platform's practice) or as the mean of its points'
    own MDA8s (``station_mean``). ``incomplete_days``: a day missing a pollutant counts
    in the good-day ratio by the AQI of the others, in both editions (``computed``), or
    only where an AQI was published (``published``: HJ 633-2026 §5.3.1 NA days drop out).
    ``dust_unit``: a dust period deducts the whole day it touches (``day``) or only its
    hours (``hour``); CNEMC's deduction unit is not public.
    """

    city_o3: Literal["city_hourly", "station_mean"] = "city_hourly"
    incomplete_days: Literal["computed", "published"] = "computed"
    dust_unit: Literal["day", "hour"] = "day"


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
    auth_deadline_s: float = Field(
        default=30.0, gt=0, description="Close a connection that has not authenticated by then."
    )
    max_connections_per_address: int = Field(
        default=64, ge=1, description="Open connections from one IP address at most."
    )
    max_rejects_per_connection: int = Field(
        default=50,
        ge=1,
        description="Rejects stored per connection; then one summary row at its end.",
    )
    # Device access passwords by MN. Never in the catalog: a secrets file
    # (YAML mapping MN → password) and/or ENVMON_HJ212__PASSWORDS='{"MN": "pw"}'.
    secrets_file: Path | None = Field(
        default=None, description="Default: DATA_DIR/hj212-secrets.yaml."
    )
    config_file: Path | None = Field(default=None, description="Default: <config_dir>/hj212.yaml.")
    passwords: dict[str, SecretStr] = Field(default_factory=dict)
    archive_retention_days: int = Field(default=90, ge=1)
    gap_recovery: bool = True
    gap_recovery_max_hours: int = Field(default=72, ge=1)
    gap_recovery_max_requests: int = Field(
        default=6,
        ge=1,
        description="History requests per station per recovery: one per run of missing "
        "hours; beyond that the runs closest together are merged (every missing hour is "
        "still asked for).",
    )
    split_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="A split upload still incomplete this long after its last packet is "
        "rejected (its packets are kept in DATA_DIR/hj212/open-splits until then).",
    )
    split_max_groups: int = Field(
        default=20_000, ge=1, description="Open split groups at most (the oldest is rejected)."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Receiver processes sharing the port (SO_REUSEPORT; `envmon run "
        "--workers N`): each device is served by one of them, its home, whichever accepted "
        "its connection (docs/scaling.md).",
    )
    worker_derive: bool = Field(
        default=True,
        description="Receiver workers run the derive job over what they stored (off: the "
        "main process's derive job finds it within a minute).",
    )
    worker_index: int = Field(
        default=0,
        ge=0,
        description="Set by `envmon run` for its receiver workers (0: the main process). "
        "A worker keeps its spool, archive and split journal under DATA_DIR/workers/<index>.",
    )
    crc_auto: bool = Field(
        default=False,
        description="Devices without a crc: in config/hj212.yaml may use any CRC variant "
        "(Annex A, MODBUS, byte-swapped MODBUS); off: Annex A only.",
    )


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


class AlertSettings(BaseModel):
    """Where the rules are, how often scheduled rules run, how delivery retries."""

    enabled: bool = True
    rules_file: Path | None = Field(
        default=None, description="The rules file; unset = <config_dir>/alerts.yaml."
    )
    targets_file: Path | None = Field(
        default=None,
        description="Set from ``Settings.targets_file`` (one targets file for everything).",
    )
    grafana_url: str = Field(
        default="",
        description="Set from ``ENVMON_GRAFANA__URL``: the dashboard link in every message; "
        "unset = messages carry no link (a link to a Grafana that does not run there is "
        "worse than none).",
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
    single_owner: bool = Field(
        default=True,
        description="``envmon run`` judges alerts in one instance of all that share the "
        "database (the holder of the advisory lock ``envmon.alerts``); the others forward "
        "their stored batches to it (docs/scaling.md).",
    )
    claim_s: float = Field(
        default=1.0,
        gt=0,
        description="How often an instance asks for the alert ownership (and the owner "
        "stores how far it has judged).",
    )
    catch_up_margin_s: float = Field(
        default=30.0,
        ge=0,
        description="An instance taking the alert ownership over judges the readings stored "
        "since the last owner's watermark less this (the writers' transactions still open).",
    )


class ApiSettings(BaseModel):
    """The HTTP API served inside ``envmon run``.

    Tokens are sent as ``Authorization: Bearer <token>``. The read token is for
    analysts (every GET); the admin token can do everything the read token can,
    and acknowledge and silence alerts. With no read token configured the API
    still starts, but every data endpoint answers 401: nothing is ever served
    without a token.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535, description="0 = any free port.")
    read_token: SecretStr | None = None
    admin_token: SecretStr | None = None
    targets_file: Path | None = Field(
        default=None,
        description="Set from ``Settings.targets_file`` (one targets file for everything).",
    )
    metrics_public: bool = Field(
        default=False, description="Serve /metrics without a token (a private scrape network)."
    )
    # Limits: a request that would exceed them is a 400 that says which limit and why.
    default_page_size: int = Field(default=1000, ge=1)
    max_page_size: int = Field(default=10_000, ge=1)
    max_range_days: int = Field(
        default=4018, ge=1, description="Longest from–to range of any request (11 years)."
    )
    max_station_days: int = Field(
        default=80_000,
        ge=1,
        description="Exports: stations × days at most (a year of all 207 stations of the "
        "zone, or one station for the 11 years of max_range_days). Exports are streamed.",
    )
    max_points: int = Field(
        default=120_000,
        ge=1,
        description="JSON series (/aqi): stations × periods at most; use an export beyond.",
    )
    max_concurrent_exports: int = Field(default=2, ge=1)
    export_chunk_rows: int = Field(default=50_000, ge=1000)
    statement_timeout_s: float = Field(
        default=30.0, gt=0, description="Per JSON request; exports are not limited."
    )


class GrafanaSettings(BaseModel):
    """Grafana for ``envmon dashboards push`` (``ENVMON_GRAFANA__*``)."""

    url: str = Field(
        default="",
        description="Grafana's base URL as on-call opens it (a sub-path such as "
        "https://host/grafana works): where `envmon dashboards push` sends the dashboards "
        "and what alert messages link to (no link while unset).",
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


class CollectSettings(BaseModel):
    """The collectors' settings (``Settings.collect``, ``ENVMON_COLLECT__*``)."""

    enabled: bool = True
    sources_file: Path | None = Field(
        default=None, description="Default: <config_dir>/sources.yaml."
    )
    # API keys / passwords by source name, never in sources.yaml:
    # ENVMON_COLLECT__SECRETS='{"openaq": "…", "cma-surface": "…"}'
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    user_agent: str = "envmon/0.1 (Taiyuan-Xinzhou environmental monitoring)"
    max_connections: int = Field(default=32, ge=1, description="HTTP connections in all.")


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
    stations_file: Path | None = Field(
        default=None, description="Default: <config_dir>/stations.yaml."
    )
    targets_file: Path | None = Field(
        default=None, description="Default: <config_dir>/targets.yaml."
    )
    pg_bindir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ENVMON_PG_BINDIR", "PG_BINDIR", "pg_bindir"),
        description="PostgreSQL server binaries for the embedded cluster (default: found).",
    )
    user: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ENVMON_USER", "user"),
        description="Who runs a command (alert acks, silences); default: the login name.",
    )
    log_level: str = "INFO"
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)
    writer: WriterSettings = Field(default_factory=WriterSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    hj212: Hj212Settings = Field(default_factory=Hj212Settings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    collect: CollectSettings = Field(default_factory=CollectSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @model_validator(mode="after")
    def _resolve_once(self) -> Settings:
        """Resolve the config files' paths and the shared values once, into the groups."""
        cfg = self.config_dir
        self.stations_file = self.stations_file or cfg / "stations.yaml"
        self.targets_file = self.targets_file or cfg / "targets.yaml"
        self.alerts.rules_file = self.alerts.rules_file or cfg / "alerts.yaml"
        self.alerts.targets_file = self.targets_file
        self.alerts.grafana_url = self.grafana.url or ""
        self.api.targets_file = self.targets_file
        self.collect.sources_file = self.collect.sources_file or cfg / "sources.yaml"
        self.hj212.config_file = self.hj212.config_file or cfg / "hj212.yaml"
        self.hj212.secrets_file = self.hj212.secrets_file or self.data_dir / "hj212-secrets.yaml"
        return self

    @property
    def stations_path(self) -> Path:
        assert self.stations_file is not None  # resolved in _resolve_once
        return self.stations_file

    @property
    def targets_path(self) -> Path:
        assert self.targets_file is not None
        return self.targets_file

    @property
    def sources_path(self) -> Path:
        assert self.collect.sources_file is not None
        return self.collect.sources_file

    @property
    def alerts_path(self) -> Path:
        assert self.alerts.rules_file is not None
        return self.alerts.rules_file

    @property
    def hj212_config_path(self) -> Path:
        assert self.hj212.config_file is not None
        return self.hj212.config_file

    @property
    def process_dir(self) -> Path:
        """Where this process keeps its own files (spool, archive, split journal):
        DATA_DIR, or DATA_DIR/workers/<index> for an HJ 212 receiver worker."""
        k = self.hj212.worker_index
        return self.data_dir if k == 0 else self.workers_dir / str(k)

    @property
    def workers_dir(self) -> Path:
        """Where the HJ 212 receiver workers keep their files, one folder each."""
        return self.data_dir / "workers"

    def for_worker(self, index: int) -> Settings:
        """These settings as receiver worker ``index`` has them (0: the main process)."""
        return self.model_copy(
            update={"hj212": self.hj212.model_copy(update={"worker_index": index})}
        )

    @property
    def spool_dir(self) -> Path:
        return self.process_dir / "spool"

    @property
    def hj212_secrets_path(self) -> Path:
        assert self.hj212.secrets_file is not None
        return self.hj212.secrets_file

    @property
    def archive_dir(self) -> Path:
        return self.process_dir / "archive"

    @property
    def split_journal_dir(self) -> Path:
        return self.process_dir / "hj212" / "open-splits"

    @property
    def uses_embedded(self) -> bool:
        return self.database_url is None

    @property
    def simulator_enabled(self) -> bool:
        if self.simulator.enabled is None:
            return self.uses_embedded
        return self.simulator.enabled


def environment() -> Mapping[str, str]:
    """The process environment, for the secrets a config file names by variable
    (``secret_env:`` of an alert channel). The only other read of the environment."""
    return os.environ
