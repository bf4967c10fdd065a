"""Time in the service's zone: stored times are local wall-clock times; every duration between two
of them (a response clock, a time to answer) is measured between the instants they name, so a
clock that runs across a change of the clocks is right.

When the clocks go forward (last Sunday of March, 01:00 GMT becomes 02:00 BST) an hour of wall
clock does not exist: a report at 00:30 answered at 03:30 was answered in 2 hours, not 3. When
they go back (last Sunday of October, 02:00 BST becomes 01:00 GMT) the hour from 01:00 to 02:00
happens twice; a stored time in that hour is read as the first of the two (as the triage contract
reads it).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from dashboard.config import get_settings


def _zone() -> str:
    return get_settings().timezone


def instants(values: pd.Series) -> pd.Series:
    """Local wall-clock times as UTC instants (the repeated hour read as its first occurrence; a time
    in the skipped hour, which no stored time should be, moved forward)."""
    values = pd.to_datetime(values)
    if values.dt.tz is not None:
        return values.dt.tz_convert("UTC")
    return values.dt.tz_localize(_zone(), ambiguous=True, nonexistent="shift_forward").dt.tz_convert("UTC")


def instant(value: datetime) -> pd.Timestamp:
    return instants(pd.Series([value])).iloc[0]


def local(values: pd.Series) -> pd.Series:
    """UTC instants as local wall-clock times (naive), as they are stored and shown."""
    return values.dt.tz_convert(_zone()).dt.tz_localize(None)


def minutes_between(start: pd.Series, end: pd.Series | datetime) -> pd.Series:
    """Real minutes from each start to each end (local wall-clock times, or one end for all)."""
    end_i = instant(end) if isinstance(end, datetime) else instants(end)
    return (end_i - instants(start)).dt.total_seconds() / 60


def add_minutes(start: pd.Series, minutes: pd.Series) -> pd.Series:
    """The instant (UTC) a number of real minutes after each start. Kept as an instant: a time in
    the repeated hour would be ambiguous again as a wall-clock time."""
    return instants(start) + pd.to_timedelta(minutes, unit="m")

