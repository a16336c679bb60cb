"""OpenAPI paths of the data review (issue 14): ``/api/v1/review/…`` and a reading's history."""

from __future__ import annotations

from typing import Any

from envmon.api.openapi_common import INT, MOMENT_RE, STR, J, obj, ok, problems, q

_TEXT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 500}
_ACTION = obj(
    {
        "id": INT,
        "action": {"type": "string", "enum": ["invalidate", "restore"]},
        "station_id": STR,
        "parameter": STR,
        "from": STR,
        "to": STR,
        "readings": INT,
        "reason": STR,
        "by": STR,
        "at": STR,
    }
)
_HISTORY = obj(
    {
        "station_id": STR,
        "parameter": STR,
        "time": STR,
        "history": {"type": "array", "items": {"type": "object"}},
    }
)


def _review_op(action: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"review{action.title()}",
            "summary": summary,
            "description": "Covers every period starting in [from, to). Refused (400, nothing "
            "changed): an unknown station or parameter, a parameter the station does not "
            "measure, an empty range, a range in the future. Logged in review_action.",
            "requestBody": {
                "required": True,
                "content": {
                    J: {
                        "schema": obj(
                            {
                                "station": {**_TEXT, "description": "id, pinyin or 中文名"},
                                "parameter": _TEXT,
                                "from": {"type": "string", "pattern": MOMENT_RE},
                                "to": {"type": "string", "pattern": MOMENT_RE},
                                "reason": _TEXT,
                                "by": _TEXT,
                            },
                            required=["station", "parameter", "from", "to", "reason", "by"],
                            extra=False,
                        )
                    }
                },
            },
            "responses": {**ok(_ACTION), **problems(400, 401, 403, 413, 503)},
        }
    }


def review_paths() -> dict[str, Any]:
    return {
        "/api/v1/review/invalidate": _review_op(
            "invalidate", "Mark readings invalid: they leave the statistics (admin token)"
        ),
        "/api/v1/review/restore": _review_op(
            "restore", "Make invalidated readings valid again (admin token)"
        ),
        "/api/v1/readings/history": {
            "get": {
                "operationId": "readingHistory",
                "summary": "Every version and review action of one reading, oldest first "
                "(admin token)",
                "parameters": [
                    q("station", _TEXT, "Station id, pinyin or 中文名.", required=True),
                    q("parameter", _TEXT, "Parameter code.", required=True),
                    q(
                        "time",
                        {"type": "string", "pattern": MOMENT_RE},
                        "Start of the reading's period.",
                        required=True,
                    ),
                ],
                "responses": {**ok(_HISTORY), **problems(400, 401, 403, 503)},
            }
        },
    }
