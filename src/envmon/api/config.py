"""Settings of the analysts' HTTP API (``ENVMON_API__*``), nested in ``Settings.api``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


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
        default=None, description="Targets YAML for /targets (default: config_dir/targets.yaml)."
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
