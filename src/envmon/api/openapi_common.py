"""Building blocks of the OpenAPI document (shared by :mod:`openapi` and its parts)."""

from __future__ import annotations

from typing import Any, Final

from envmon.catalog.names import REGIONS, region_choices
from envmon.parameters import BY_CODE

J: Final = "application/json"
PROBLEM: Final = "application/problem+json"

# Patterns keep generated examples meaningful (and document the accepted forms).
# Days 29–31 are valid in months that have them; the server answers 400 for a day
# its month lacks (2025-02-30), which a pattern cannot express.
_DAY = r"(0[1-9]|[12][0-9]|3[01])"
DATE_RE: Final = r"^20[0-9]{2}-(0[1-9]|1[0-2])-" + _DAY + "$"
MONTH_RE: Final = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
MOMENT_RE: Final = (
    r"^20[0-9]{2}-(0[1-9]|1[0-2])-"
    + _DAY
    + r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?$"
)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def n(schema: dict[str, Any]) -> dict[str, Any]:
    """Nullable."""
    return {**schema, "nullable": True}


NUM: Final = {"type": "number"}
INT: Final = {"type": "integer"}
STR: Final = {"type": "string"}
BOOL: Final = {"type": "boolean"}
STRS: Final = {"type": "array", "items": {"type": "string"}}


def obj(
    props: dict[str, Any], required: list[str] | None = None, extra: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required is None:
        required = list(props)
    if required:
        out["required"] = required
    if not extra:
        out["additionalProperties"] = False
    return out


def q(
    name: str,
    schema: dict[str, Any],
    description: str,
    *,
    required: bool = False,
    explode: bool | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }
    if explode is not None:
        p["style"] = "form"
        p["explode"] = explode
    return p


def problems(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid parameters or a range over the limits (problem details list each).",
        401: "No token or a wrong token.",
        403: "The route needs the admin token.",
        404: "Unknown station, alert or path.",
        413: "Request body too large.",
        422: "The request cannot be evaluated with the stored data (e.g. a missing baseline).",
        429: "Too many exports running; retry after the Retry-After seconds.",
        503: "The database (or the alert engine) is not available; or the query timed out.",
    }
    return {
        str(c): {"description": text[c], "content": {PROBLEM: {"schema": ref("Problem")}}}
        for c in codes
    }


def ok(schema: dict[str, Any], description: str = "OK", status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {J: {"schema": schema}}}}


STATION_LIST: Final = {"type": "array", "items": {"type": "string", "maxLength": 64}}
REGION: Final = {
    "type": "string",
    "enum": list(region_choices()),
    "description": "A region by id, pinyin or Chinese name (zone, taiyuan, 太原市, 忻州…).",
}
REGION_ID: Final = {"type": "string", "enum": list(REGIONS)}
FROM_MOMENT = q(
    "from",
    {"type": "string", "pattern": MOMENT_RE},
    "Start (included): ISO 8601 date or date-time; without an offset, Beijing time.",
    required=True,
)
TO_MOMENT = q("to", {"type": "string", "pattern": MOMENT_RE}, "End (excluded).", required=True)
READING_FILTERS: Final = [
    q(
        "station",
        STATION_LIST,
        "Station ids (comma-separated); all if absent.",
        explode=False,
    ),
    q(
        "parameter",
        {"type": "array", "items": {"type": "string", "enum": list(BY_CODE)}},
        "Parameter codes (comma-separated); all if absent.",
        explode=False,
    ),
    FROM_MOMENT,
    TO_MOMENT,
]
