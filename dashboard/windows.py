"""Drug-effect windows: the one definition of a window and of a day, for the engine and the timeline.

A day is the calendar date of a stored time in the service's time zone (stored times are instants,
read in that zone; a wall-clock time is its own date), in Python ``day_of`` and in SQL ``DAY_SQL``
(the connection's TimeZone is the service's). An effect's onset window counts calendar days
after a dose: day 0 is the dose's own date, and a window "1-3" covers days 1, 2 and 3. A report fits
a window when its onset day (the report's day less the days the pain has lasted; the report's own
day when the duration is unknown) is one of the window's days and the dose was given at or before
the report: explained when the pain has lasted no longer than the effect usually does, possible
when the duration is unknown.

The engine (``dashboard.triage``) builds its SQL from :func:`window_offsets` and ``DAY_SQL``; the
timeline draws each window as a band from local midnight of its first day to local midnight after
its last (:func:`band`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from dashboard.rules import Effect

# The calendar day of a stored time, in SQL (a DATE).
DAY_SQL = "{col}::DATE"


def day_of(value: Any) -> date:
    """The calendar day of a stored time."""
    return pd.Timestamp(value).date()


def day_sql(col: str) -> str:
    return DAY_SQL.format(col=col)


def window_offsets(effect: Effect) -> tuple[int, int | None]:
    """The first and last day of an effect's window, in days after the dose's day (None: open-ended)."""
    w = effect.onset_window
    return w.start_day, w.end_day


def window_days(effect: Effect, given_at: Any) -> tuple[date, date | None]:
    """The first and last calendar day of an effect's window after a dose given at ``given_at``."""
    start, end = window_offsets(effect)
    day = day_of(given_at)
    return day + timedelta(days=start), None if end is None else day + timedelta(days=end)


def band(first: date, last: date | None, *, until: datetime | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A window's days as a band of time: from local midnight of its first day to local midnight after
    its last (an open-ended window runs to ``until``), as instants in the service's zone."""
    from dashboard.clock import instant
    from dashboard.config import get_settings

    zone = get_settings().timezone
    start = pd.Timestamp(first).tz_localize(zone)
    if last is None:
        if until is None:
            raise ValueError("an open-ended window needs an end")
        return start, instant(until).tz_convert(zone)
    return start, (pd.Timestamp(last) + pd.Timedelta(days=1)).tz_localize(zone)


def onset_day(reported_at: Any, duration_days: int | None) -> date:
    """The day the pain began: the report's day less its duration (the report's day when unknown)."""
    days = 0 if duration_days is None or pd.isna(duration_days) else int(duration_days)
    return day_of(reported_at) - timedelta(days=days)


def effect_fit(effect: Effect, given_at: Any, reported_at: Any, duration_days: int | None) -> str | None:
    """How a dose's effect fits a report: "explained", "possible" or None (as the engine decides)."""
    if pd.Timestamp(given_at) > pd.Timestamp(reported_at):
        return None
    first, last = window_days(effect, given_at)
    onset = onset_day(reported_at, duration_days)
    if onset < first or (last is not None and onset > last):
        return None
    if duration_days is None or pd.isna(duration_days):
        return "possible"
    if effect.lasts_at_most_days is not None and int(duration_days) > effect.lasts_at_most_days:
        return None
    return "explained"
