"""``envmon dashboards push``: the dashboards into a running Grafana over its HTTP API.

For a Grafana that is not provisioned from ``deploy/grafana/`` (a bureau's own
instance). Everything is addressed by UID — folder ``envmon``, data source
``envmon-postgres``, the six dashboard UIDs — as Grafana 13 requires (its
numeric-id data source routes are off by default). Dashboards go through
``POST /api/dashboards/db`` with ``folderUid`` and ``overwrite``: available on
Grafana 12 and 13 (deprecated in 13 in favour of ``/apis``, not disabled).
The client is ``grafana-client``, the maintained successor of ``grafana-api``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from envmon.dashboards.boards import all_boards
from envmon.dashboards.build import (
    READER_ROLE,
    dashboard_model,
    datasource_provisioning,
    load_board_targets,
)
from envmon.dashboards.panels import Board
from envmon.dashboards.sql import DATASOURCE_UID
from envmon.errors import ConfigError, FatalError, RetriableError
from envmon.settings import GrafanaSettings

logger = logging.getLogger(__name__)

MIN_MAJOR = 12


@dataclass
class PushedDashboard:
    uid: str
    title: str
    version: int | None
    url: str | None


@dataclass
class PushResult:
    grafana_version: str
    folder_created: bool = False
    datasource: str = "unchanged"  # created | updated | unchanged
    dashboards: list[PushedDashboard] = field(default_factory=list)


def _client(settings: GrafanaSettings) -> Any:
    """A ``GrafanaApi`` (untyped library: held as Any)."""
    from grafana_client.api import GrafanaApi

    if not settings.url:
        raise ConfigError(
            "no Grafana to push to: set ENVMON_GRAFANA__URL (e.g. http://grafana:3000)"
        )
    parsed = urlparse(settings.url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"grafana url {settings.url!r} is not an http(s) URL")
    credential: str | None = settings.token.get_secret_value() if settings.token else None
    if credential is None and not (parsed.username and parsed.password):
        raise ConfigError(
            "no Grafana credentials: set ENVMON_GRAFANA__TOKEN (a service-account token)"
        )
    url = settings.url if settings.verify_tls else settings.url + "?verify=false"
    api: Any = GrafanaApi.from_url(url, credential=credential, timeout=settings.timeout_s)
    if settings.org_id is not None:
        api.client.s.headers["X-Grafana-Org-Id"] = str(settings.org_id)
    return api


def _status(err: Exception) -> int:
    return int(getattr(err, "status_code", 0) or 0)


def _translate(err: Exception, what: str) -> Exception:
    """grafana-client / niquests errors → envmon's tree (what the caller should do)."""
    from grafana_client.client import (
        GrafanaClientError,
        GrafanaException,
        GrafanaServerError,
        GrafanaTimeoutError,
        GrafanaUnauthorizedError,
    )

    status = _status(err)
    if isinstance(err, GrafanaUnauthorizedError) or status == 401:
        return FatalError(f"{what}: Grafana rejected the credentials (401); check the token")
    if status == 403:
        return FatalError(f"{what}: the token lacks the permission (403): {err}")
    if isinstance(err, GrafanaServerError | GrafanaTimeoutError):
        return RetriableError(f"{what}: Grafana unavailable: {err}")
    if isinstance(err, GrafanaClientError):
        return FatalError(f"{what}: Grafana refused it ({status}): {err}")
    if isinstance(err, GrafanaException):
        return RetriableError(f"{what}: {err}")
    return RetriableError(f"{what}: cannot reach Grafana: {err}")


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    import niquests
    from grafana_client.client import GrafanaException

    try:
        return fn(*args, **kwargs)
    except (GrafanaException, niquests.exceptions.RequestException) as err:
        raise _translate(err, what) from err


def _missing(fn: Any, *args: Any) -> bool:
    """True when the GET answers 404; the object otherwise."""
    from grafana_client.client import GrafanaClientError

    try:
        fn(*args)
    except GrafanaClientError as err:
        if _status(err) == 404:
            return True
        raise
    return False


def datasource_payload(settings: GrafanaSettings) -> dict[str, Any]:
    """The provisioned data source, with the values provisioning takes from the environment."""
    (ds,) = datasource_provisioning()["datasources"]
    assert settings.db_password is not None
    json_data = dict(ds["jsonData"])
    json_data.update(database=settings.db_name, sslmode=settings.db_sslmode)
    return {
        "uid": DATASOURCE_UID,
        "name": ds["name"],
        "type": ds["type"],
        "access": ds["access"],
        "url": settings.db_host,
        "user": READER_ROLE,
        "isDefault": ds["isDefault"],
        "jsonData": json_data,
        "secureJsonData": {"password": settings.db_password.get_secret_value()},
    }


def _major(version: str) -> int:
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        return 0


def push(settings: GrafanaSettings, *, targets_file: Path | None = None) -> PushResult:
    """Create the folder (and data source) if missing, then upload every dashboard.

    Raises :class:`ConfigError` for bad settings, :class:`FatalError` when Grafana
    refuses (credentials, permissions, a conflicting dashboard), and
    :class:`RetriableError` when it cannot be reached or fails (5xx, timeout).
    """
    boards = all_boards(load_board_targets(targets_file or Path("config") / "targets.yaml"))
    api = _client(settings)
    try:
        return _push(api, settings, boards)
    finally:
        api.client.s.close()


def _push(api: Any, settings: GrafanaSettings, boards: list[Board]) -> PushResult:
    # /api/frontend/settings → buildInfo: what grafana-client's health check reads.
    health = _call("health check", api.health.check)
    version = str(health.get("version", "")) if isinstance(health, dict) else ""
    result = PushResult(grafana_version=version)
    if _major(version) < MIN_MAJOR:
        logger.warning(
            "grafana version=%s: the dashboards target Grafana %s and later",
            version or "unknown",
            MIN_MAJOR,
        )

    if _call("folder lookup", _missing, api.folder.get_folder, settings.folder_uid):
        _call(
            "folder creation",
            api.folder.create_folder,
            settings.folder_title,
            uid=settings.folder_uid,
        )
        result.folder_created = True
        logger.info("grafana folder created uid=%s", settings.folder_uid)

    ds_missing = _call(
        "data source lookup", _missing, api.datasource.get_datasource_by_uid, DATASOURCE_UID
    )
    if settings.db_password is not None:
        payload = datasource_payload(settings)
        if ds_missing:
            _call("data source creation", api.datasource.create_datasource, payload)
            result.datasource = "created"
        else:
            _call(
                "data source update",
                api.datasource.update_datasource_by_uid,
                DATASOURCE_UID,
                payload,
            )
            result.datasource = "updated"
        logger.info("grafana data source %s uid=%s", result.datasource, DATASOURCE_UID)
    elif ds_missing:
        raise ConfigError(
            f"Grafana has no data source with uid {DATASOURCE_UID}: provision it"
            " (deploy/grafana/provisioning/datasources) or set ENVMON_GRAFANA__DB_PASSWORD"
            " (and __DB_HOST, __DB_NAME) so that push creates it"
        )

    for board in boards:
        model = dashboard_model(board)
        model.pop("id", None)
        answer = _call(
            f"dashboard {board.uid}",
            api.dashboard.update_dashboard,
            {
                "dashboard": model,
                "folderUid": settings.folder_uid,
                "overwrite": True,
                "message": "envmon dashboards push",
            },
        )
        answer = answer if isinstance(answer, dict) else {}
        result.dashboards.append(
            PushedDashboard(board.uid, board.title, answer.get("version"), answer.get("url"))
        )
        logger.info("grafana dashboard pushed uid=%s version=%s", board.uid, answer.get("version"))
    return result
