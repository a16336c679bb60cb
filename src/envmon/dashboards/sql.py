"""A typed dataquery for Grafana's PostgreSQL data source (``grafana-postgresql-datasource``).

The foundation SDK ships dataqueries for many data sources but not for the
SQL ones, so this module adds one in the SDK's own shape: a model
(:class:`Dataquery`, a ``cogvariants.Dataquery`` with ``to_json``/``from_json``)
and a builder (:class:`SqlQuery`), registered with the SDK's runtime so that a
dashboard JSON read back through the SDK's models decodes its targets into
this class instead of an untyped bag.

The JSON keys are those Grafana's SQL query editor saves (``rawSql``,
``format``, ``rawQuery``, ``editorMode``, ``refId``, ``datasource``);
``sqleng.QueryJson`` reads ``rawSql`` and ``format``.
"""

from __future__ import annotations

import enum
import warnings
from typing import Any, Final, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common

DATASOURCE_TYPE: Final = "grafana-postgresql-datasource"
DATASOURCE_UID: Final = "envmon-postgres"
# Grafana 10.x and earlier called the plugin "postgres"; dashboards saved by them
# still carry that type, so both names decode into this class.
LEGACY_DATASOURCE_TYPE: Final = "postgres"


class Format(enum.StrEnum):
    """How Grafana turns the result into a data frame (``sqleng`` dataQueryFormat)."""

    TIME_SERIES = "time_series"
    TABLE = "table"


class EditorMode(enum.StrEnum):
    CODE = "code"
    BUILDER = "builder"


def datasource_ref(uid: str = DATASOURCE_UID) -> common.DataSourceRef:
    return common.DataSourceRef(type_val=DATASOURCE_TYPE, uid=uid)


class Dataquery(cogvariants.Dataquery):
    """One SQL target of a panel."""

    ref_id: str | None
    raw_sql: str
    format_val: Format
    raw_query: bool | None
    editor_mode: EditorMode | None
    hide: bool | None
    datasource: common.DataSourceRef | None

    def __init__(
        self,
        ref_id: str | None = None,
        raw_sql: str = "",
        format_val: Format | None = None,
        raw_query: bool | None = None,
        editor_mode: EditorMode | None = None,
        hide: bool | None = None,
        datasource: common.DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val if format_val is not None else Format.TIME_SERIES
        self.raw_query = raw_query
        self.editor_mode = editor_mode
        self.hide = hide
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"format": self.format_val, "rawSql": self.raw_sql}
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        if self.raw_query is not None:
            payload["rawQuery"] = self.raw_query
        if self.editor_mode is not None:
            payload["editorMode"] = self.editor_mode
        if self.hide is not None:
            payload["hide"] = self.hide
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        args: dict[str, Any] = {}
        if "refId" in data:
            args["ref_id"] = data["refId"]
        if "rawSql" in data:
            args["raw_sql"] = data["rawSql"]
        if "format" in data:
            args["format_val"] = Format(data["format"])
        if "rawQuery" in data:
            args["raw_query"] = data["rawQuery"]
        if "editorMode" in data:
            args["editor_mode"] = EditorMode(data["editorMode"])
        if "hide" in data:
            args["hide"] = data["hide"]
        if "datasource" in data:
            args["datasource"] = common.DataSourceRef.from_json(data["datasource"])
        return cls(**args)


class SqlQuery(cogbuilder.Builder[Dataquery]):
    """Builder: ``SqlQuery("A").sql("SELECT …").table()``; code mode, raw SQL."""

    _internal: Dataquery

    def __init__(self, ref_id: str = "A") -> None:
        self._internal = Dataquery(
            ref_id=ref_id,
            raw_query=True,
            editor_mode=EditorMode.CODE,
            datasource=datasource_ref(),
        )

    def build(self) -> Dataquery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql.strip()
        return self

    def format(self, format_val: Format) -> Self:
        self._internal.format_val = format_val
        return self

    def time_series(self) -> Self:
        return self.format(Format.TIME_SERIES)

    def table(self) -> Self:
        return self.format(Format.TABLE)

    def hide(self, hide: bool) -> Self:
        self._internal.hide = hide
        return self

    def datasource(self, datasource: common.DataSourceRef) -> Self:
        self._internal.datasource = datasource
        return self


def variant_config(identifier: str = DATASOURCE_TYPE) -> cogruntime.DataqueryConfig:
    return cogruntime.DataqueryConfig(identifier=identifier, from_json_hook=Dataquery.from_json)


def register() -> None:
    """Register the SDK's own plugins and this dataquery (idempotent)."""
    with warnings.catch_warnings():  # the classic dashboard model warns at import (see _sdk)
        warnings.simplefilter("ignore", DeprecationWarning)
        from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    cogruntime.register_dataquery_variant(variant_config(DATASOURCE_TYPE))
    cogruntime.register_dataquery_variant(variant_config(LEGACY_DATASOURCE_TYPE))
