"""NERC holidays and the day types the ISO baselines choose days by.

NERC's six holidays (the "NERC holidays" of PJM's and other ISOs' off-peak definitions): New
Year's Day, Memorial Day, Independence Day, Labor Day, Thanksgiving Day and Christmas Day; one
that falls on a Sunday is observed the Monday after, one on a Saturday is not moved (NERC,
"Additional Off-Peak Days", as published by NERC's Operating Committee; the dates are built from
the `holidays` package's US federal calendar, filtered to those six).
"""

from __future__ import annotations

import datetime as dt
import functools

import holidays
import numpy as np
import pandas as pd

NERC_HOLIDAY_NAMES = ("New Year's Day", "Memorial Day", "Independence Day", "Labor Day", "Thanksgiving Day",
                      "Christmas Day")

WEEKDAY, SATURDAY, SUNDAY_HOLIDAY = 0, 1, 2
DAY_TYPE_NAMES = {WEEKDAY: "weekday", SATURDAY: "saturday", SUNDAY_HOLIDAY: "sunday_holiday"}


@functools.cache
def nerc_holidays(year: int) -> frozenset[dt.date]:
    """The NERC holidays of one year, with the Monday after a Sunday holiday."""
    us = holidays.US(years=year, observed=False)
    out = set()
    for day, name in us.items():
        if name in NERC_HOLIDAY_NAMES:
            out.add(day)
            if day.weekday() == 6:
                out.add(day + dt.timedelta(days=1))
    missing = set(NERC_HOLIDAY_NAMES) - set(us.values())
    if missing:  # a renamed holiday in a future `holidays` release must not drop silently
        raise RuntimeError(f"holidays package lacks {sorted(missing)} for {year}")
    return frozenset(out)


def is_nerc_holiday(day: dt.date) -> bool:
    return day in nerc_holidays(day.year)


def day_types(days: list[dt.date] | np.ndarray, *, holidays_as_sunday: bool = True) -> np.ndarray:
    """WEEKDAY, SATURDAY or SUNDAY_HOLIDAY per local date (a NERC holiday counts with Sundays)."""
    days = list(days)
    wd = np.array([d.weekday() for d in days], dtype=int)
    out = np.where(wd == 5, SATURDAY, np.where(wd == 6, SUNDAY_HOLIDAY, WEEKDAY))
    if holidays_as_sunday:
        hol = np.array([is_nerc_holiday(d) for d in days], dtype=bool)
        out = np.where(hol, SUNDAY_HOLIDAY, out)
    return out


def local_midnight_utc(day: dt.date, tz: str) -> pd.Timestamp:
    """The UTC instant a local calendar day starts."""
    return pd.Timestamp(day).tz_localize(tz).tz_convert("UTC")
