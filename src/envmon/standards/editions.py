"""Which edition of the national standards applies to a day, and the package's error.

On 2026-03-01 HJ 633-2012 (AQI), GB 3095-2012 (limits) and HJ 663-2013
(assessment) were replaced by HJ 633-2026, GB 3095-2026 and HJ 663-2026
(standards.md §0). Every rule in this package is therefore versioned: data for
Beijing days before 2026-03-01 are evaluated with the 2012-era rules, later data
with the 2026 rules. GB 3095-2026 additionally has transitional limits until
2030-12-31 and final limits from 2031-01-01 (GB 3095-2026 §4.4).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final, Literal, TypeAlias

from envmon.errors import EnvmonError
from envmon.timeutil import beijing_day

Edition: TypeAlias = Literal[2012, 2026]
"""HJ 633 / HJ 663 edition, named by year."""

LimitSet: TypeAlias = Literal["2012", "2026-transitional", "2026-final"]
"""The three GB 3095 limit sets a compliance engine must hold (standards.md §2.1)."""

EDITION_2026_FROM: Final = date(2026, 3, 1)
"""HJ 633-2026, GB 3095-2026 and HJ 663-2026 are in force from this Beijing day."""

GB3095_2026_FINAL_FROM: Final = date(2031, 1, 1)
"""GB 3095-2026 §4.4: transitional limits until 2030-12-31, final limits from 2031-01-01."""


class StandardsError(EnvmonError, ValueError):
    """A value or name the national standards cannot evaluate.

    Also a ``ValueError``: a negative concentration, an unknown pollutant or an
    unsupported edition is a bad argument, and callers that only know the
    standard library can still catch it.
    """


def _as_day(day: date | datetime) -> date:
    # datetime is a subclass of date, so test it first; a moment counts on the
    # Beijing natural day it falls in (HJ 633-2026 daily report = 自然日).
    if isinstance(day, datetime):
        return beijing_day(day)
    return day


def edition_for(day: date | datetime) -> Edition:
    """The HJ 633 / HJ 663 edition for a Beijing day (standards.md §0).

    A ``datetime`` is first converted to its Beijing date (naive = Beijing time).
    """
    return 2012 if _as_day(day) < EDITION_2026_FROM else 2026


def limit_set_for(day: date | datetime) -> LimitSet:
    """The GB 3095 limit set in force on a Beijing day (GB 3095-2026 §4.4)."""
    d = _as_day(day)
    if d < EDITION_2026_FROM:
        return "2012"
    if d < GB3095_2026_FINAL_FROM:
        return "2026-transitional"
    return "2026-final"


def check_edition(edition: int) -> Edition:
    """``edition`` narrowed to :data:`Edition`; anything but 2012 or 2026 raises."""
    if edition == 2012:
        return 2012
    if edition == 2026:
        return 2026
    raise StandardsError(f"unsupported edition {edition!r}; expected 2012 or 2026")
