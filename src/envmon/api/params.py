"""Query-string parsing with one clear 400 per bad request, listing every bad parameter.

Times: ISO 8601; a date alone is 00:00; without an offset it is Beijing time
(as everywhere in envmon). Ranges are half-open: ``from`` included, ``to`` not.
Lists: comma-separated or the parameter repeated (``station=a,b`` = ``station=a&station=b``).
Unknown parameters are an error too: a typo (``form=``) must not silently widen a query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from datetime import date, datetime, time
from typing import Final

from multidict import MultiMapping

from envmon.api.problems import bad_request
from envmon.catalog.model import Station
from envmon.catalog.names import AmbiguousName, StationNames, UnknownName, region_of
from envmon.timeutil import BEIJING

_MONTH = re.compile(r"(\d{4})-(\d{2})")
# C0 controls (NUL above all) and DEL have no place in a query value; PostgreSQL
# refuses NUL in text, so they are turned away here with a 400, not left to fail there.
# Lone surrogates are bytes that were not UTF-8 (decoded with surrogateescape).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_EARLIEST: Final = date(2000, 1, 1)
_LATEST: Final = date(2100, 1, 1)


class Query:
    """Typed access to ``request.query``; collect errors, then :meth:`done` raises them all."""

    def __init__(self, query: MultiMapping[str], allowed: Iterable[str]) -> None:
        self.query = query
        self.errors: list[dict[str, str]] = []
        known = set(allowed)
        for name in sorted(set(query) - known):
            shown = name if not _CONTROL.search(name) else repr(name)
            self.error(shown, f"unknown parameter (expected one of: {', '.join(sorted(known))})")
        for name in sorted(set(query) & known):
            if any(_CONTROL.search(v) or "\ufffd" in v for v in query.getall(name)):
                self.error(name, "contains control characters or bytes that are not UTF-8")
        self.bad = {e["parameter"] for e in self.errors}

    def error(self, name: str, message: str) -> None:
        self.errors.append({"parameter": name, "message": message})

    def done(self) -> None:
        if self.errors:
            names = ", ".join(dict.fromkeys(e["parameter"] for e in self.errors))
            raise bad_request(f"invalid query parameter(s): {names}", self.errors)

    def _raw(self, name: str, required: bool) -> str | None:
        if name in self.bad:
            return None
        values = self.query.getall(name, [])
        if len(values) > 1:
            self.error(name, "given more than once")
            return None
        if not values:
            if required:
                self.error(name, "required")
            return None
        if not values[0].strip():
            self.error(name, "empty value (leave the parameter out instead)")
            return None
        return values[0]

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        choices: Collection[str] | None = None,
        default: str | None = None,
        max_length: int = 200,
    ) -> str | None:
        raw = self._raw(name, required)
        if raw is None:
            return default
        if len(raw) > max_length:
            self.error(name, f"longer than {max_length} characters")
            return default
        if choices is not None and raw not in choices:
            self.error(name, f"'{raw}' is not one of: {', '.join(choices)}")
            return default
        return raw

    def strings(self, name: str, *, max_items: int = 500) -> list[str]:
        out: list[str] = []
        if name in self.bad:
            return out
        for raw in self.query.getall(name, []):
            parts = [p.strip() for p in raw.split(",")]
            if not all(parts):
                self.error(name, "an empty item (leave the parameter out instead)")
                return []
            out += parts
        if len(out) > max_items:
            self.error(name, f"more than {max_items} values")
            return []
        return list(dict.fromkeys(out))

    def region(self, name: str, *, default: str | None = None) -> str | None:
        """A region by id, pinyin or Chinese name (``taiyuan``, ``太原市``) → its id."""
        raw = self._raw(name, False)
        if raw is None:
            return default
        try:
            return region_of(raw)
        except UnknownName as err:
            self.error(name, str(err))
            return default

    def stations(
        self, name: str, names: StationNames[Station], kinds: Collection[str] | None = None
    ) -> list[str]:
        """Stations by id, Chinese name or pinyin → ids.

        A name the catalog does not know is passed through unchanged, so the
        database check answers 404 for it; a name shared by several stations is a 400.
        """
        out: list[str] = []
        for text in self.strings(name):
            try:
                out.append(names.resolve(text, kinds).id)
            except AmbiguousName as err:
                self.error(name, str(err))
            except UnknownName:
                out.append(text)
        return list(dict.fromkeys(out))

    def station(
        self, name: str, names: StationNames[Station], kinds: Collection[str] | None = None
    ) -> str | None:
        raw = self._raw(name, False)
        if raw is None:
            return None
        try:
            return names.resolve(raw, kinds).id
        except AmbiguousName as err:
            self.error(name, str(err))
            return None
        except UnknownName:
            return raw

    def integer(
        self, name: str, *, default: int | None = None, low: int, high: int, required: bool = False
    ) -> int | None:
        raw = self._raw(name, required)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.error(name, f"'{raw}' is not an integer")
            return default
        if not low <= value <= high:
            self.error(name, f"{value} is outside {low}–{high}")
            return default
        return value

    def number(self, name: str, *, default: float, low: float, high: float) -> float:
        raw = self._raw(name, False)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.error(name, f"'{raw}' is not a number")
            return default
        if not math.isfinite(value) or not low <= value <= high:
            self.error(name, f"{raw} is outside {low}–{high}")
            return default
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        raw = self._raw(name, False)
        if raw is None:
            return default
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        self.error(name, f"'{raw}' is not true or false")
        return default

    def day(self, name: str, *, required: bool = False) -> date | None:
        raw = self._raw(name, required)
        if raw is None:
            return None
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            self.error(name, f"'{raw}' is not a date (YYYY-MM-DD)")
            return None
        return self._in_range(name, value)

    def month(self, name: str, *, required: bool = False) -> date | None:
        """``YYYY-MM`` (or a date: its month)."""
        raw = self._raw(name, required)
        if raw is None:
            return None
        m = _MONTH.fullmatch(raw)
        try:
            value = (
                date(int(m.group(1)), int(m.group(2)), 1)
                if m
                else date.fromisoformat(raw).replace(day=1)
            )
        except ValueError:
            self.error(name, f"'{raw}' is not a month (YYYY-MM)")
            return None
        return self._in_range(name, value)

    def moment(self, name: str, *, required: bool = False) -> datetime | None:
        """An aware datetime; a date alone is 00:00, a naive time is Beijing time."""
        raw = self._raw(name, required)
        if raw is None:
            return None
        try:
            if len(raw) == 10:
                value = datetime.combine(date.fromisoformat(raw), time(0), tzinfo=BEIJING)
            else:
                value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
                if value.tzinfo is None:
                    value = value.replace(tzinfo=BEIJING)
        except ValueError:
            self.error(name, f"'{raw}' is not an ISO 8601 date or time")
            return None
        if self._in_range(name, value.astimezone(BEIJING).date()) is None:
            return None
        return value

    def _in_range(self, name: str, value: date) -> date | None:
        if not _EARLIEST <= value < _LATEST:
            self.error(name, f"{value.isoformat()} is outside {_EARLIEST.year}–{_LATEST.year - 1}")
            return None
        return value
