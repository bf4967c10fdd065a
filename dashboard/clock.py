"""Time in the service's zone. Stored times are instants (TIMESTAMPTZ); they are read back in the
service's time zone, and every duration between two of them (a response clock, a time to answer) is
a difference of instants, so a clock that runs across a change of the clocks is right.

Times that arrive without a zone (a form's date and time, the triage contract, a sample file) are
local wall-clock times. When the clocks go forward (last Sunday of March, 01:00 GMT becomes 02:00
BST) an hour of wall clock does not exist: such a time is moved forward. When they go back (last
Sunday of October, 02:00 BST becomes 01:00 GMT) the hour from 01:00 to 02:00 happens twice: a wall
time in it is read as the first of the two (as the triage contract reads it); a stored instant
in it is never ambiguous.
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


def aware(value: datetime) -> datetime:
    """A time as an instant in the service's zone (a wall-clock time read as :func:`instants` reads it)."""
    if value.tzinfo is not None:  # an instant already: only its zone changes (no frame to build)
        return pd.Timestamp(value).tz_convert(_zone()).to_pydatetime()
    return instant(value).tz_convert(_zone()).to_pydatetime()


def wall(value: datetime) -> datetime:
    """A time as the service's naive wall-clock time (for the code that counts in wall-clock days)."""
    if value.tzinfo is None:
        return value
    return pd.Timestamp(value).tz_convert(_zone()).tz_localize(None).to_pydatetime()


def aware_frame(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """The frame with each named column of wall-clock times as instants (UTC), ready to store."""
    out = frame.copy()
    for col in columns:
        if col in out.columns and pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = instants(out[col])
    return out


def local(values: pd.Series) -> pd.Series:
    """Instants as local wall-clock times (naive), for counting in wall-clock days (a naive time is
    one already)."""
    values = pd.to_datetime(values)
    if values.dt.tz is None:
        return values
    return values.dt.tz_convert(_zone()).dt.tz_localize(None)


def minutes_between(start: pd.Series, end: pd.Series | datetime) -> pd.Series:
    """Real minutes from each start to each end (local wall-clock times, or one end for all)."""
    end_i = instant(end) if isinstance(end, datetime) else instants(end)
    return (end_i - instants(start)).dt.total_seconds() / 60


def add_minutes(start: pd.Series, minutes: pd.Series) -> pd.Series:
    """The instant (UTC) a number of real minutes after each start. Kept as an instant: a time in
    the repeated hour would be ambiguous again as a wall-clock time."""
    return instants(start) + pd.to_timedelta(minutes, unit="m")

