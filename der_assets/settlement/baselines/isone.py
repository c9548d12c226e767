"""ISO-NE "mean 10 of 10" demand response baseline with its same-day adjustment.

VERIFIED-SECONDARY (Troutman, Nov 2015; ISO-NE Markets Committee slides 2015 and 2018): since
June 1, 2018 the baseline is the mean of the 10 most recent non-dispatched days of the event's
day type (weekday, Saturday, Sunday/holiday), per 5-minute interval. UNVERIFIED (Market Rule 1
§III.8 unreadable): the lookback, counts for weekend day types, holiday list, and the adjustment
(believed additive, from meter data in the hour before the dispatch notice, no cap).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from der_assets.settlement import calendar
from der_assets.settlement.baselines.common import Computed, EventGrid, adjust, event_load, like_day_cbl, v
from der_assets.settlement.baselines.matrix import MeterMatrix
from der_assets.settlement.baselines.parameters import Param
from der_assets.settlement.events import Event

NAME = "isone_mean_10_of_10"
COUNT = {calendar.WEEKDAY: "weekday_days", calendar.SATURDAY: "saturday_days",
         calendar.SUNDAY_HOLIDAY: "sunday_holiday_days"}


def history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    return event.start - pd.Timedelta(days=v(p, "lookback_days") + 2), event.end + pd.Timedelta(hours=1)


def compute(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, **_) -> Computed:
    """Baseline (kW) per meter and interval: the plain mean over the day type's recent days, adjusted."""
    kind = calendar.day_types([event.local_date], holidays_as_sunday=v(p, "nerc_holidays_as_sunday"))[0]
    n = v(p, COUNT[kind])
    cbl, cbl_w, actual_w, _ = like_day_cbl(mx, event, p, grid, n_select=n, n_keep=n, min_days=n,
                                           low_usage_fraction=None)
    adjusted, _ = adjust(cbl, cbl_w, actual_w, v(p, "adjustment"), v(p, "adjustment_cap_fraction"))
    return Computed(grid.to_bins(adjusted), event_load(mx, grid))
