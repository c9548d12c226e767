"""Small meters with easy numbers, built in local time so a DST day has 92 or 100 quarter-hours."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from der_assets.settlement.events import Event

TZ = "America/New_York"


def local_day_starts(day: dt.date, interval_s: int = 900, tz: str = TZ) -> pd.DatetimeIndex:
    """UTC interval starts covering one local calendar day."""
    a = pd.Timestamp(day).tz_localize(tz)
    b = pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(tz)
    return pd.date_range(a, b, freq=f"{interval_s}s", inclusive="left").tz_convert("UTC")


def meter_rows(meter_id: str, days, kw_of, interval_s: int = 900, tz: str = TZ) -> pd.DataFrame:
    """Rows for every interval of every local day; kw_of(day, local wall-clock hours as float) -> kW."""
    frames = []
    for day in days:
        starts = local_day_starts(day, interval_s, tz)
        local = starts.tz_convert(tz)
        hours = local.hour + local.minute / 60.0
        kw = np.array([kw_of(day, h) for h in hours], dtype=float)
        frames.append(pd.DataFrame({"meter_id": meter_id, "interval_start": starts, "interval_s": interval_s,
                                    "grid_kwh": kw * interval_s / 3600.0}))
    return pd.concat(frames, ignore_index=True)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def local_event(day: dt.date, start_h: int, end_h: int, *, event_id="E1", iso="PJM", tz=TZ, **kw) -> Event:
    """An event from whole local wall-clock hours on `day` (hour beginning start_h to end_h)."""
    start = pd.Timestamp(dt.datetime.combine(day, dt.time(start_h))).tz_localize(tz).tz_convert("UTC")
    end = pd.Timestamp(dt.datetime.combine(day, dt.time(end_h))).tz_localize(tz).tz_convert("UTC")
    return Event(event_id, iso, start, end, tz, **kw)


def by_meter(frame: pd.DataFrame, meter_id: str, column: str) -> list[float]:
    return frame.loc[frame["meter_id"] == meter_id, column].tolist()
