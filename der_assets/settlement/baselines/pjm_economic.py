"""PJM economic CBL, "High 4 of 5" with the Symmetric Additive Adjustment.

As believed (PJM Manual 11 §10 / OA Sched. 1 §3.3A; the bodies were not readable, so every
number is an UNVERIFIED parameter in params/baselines.csv):
- weekday event: of the 5 most recent eligible weekdays within 45 days (no weekends, NERC
  holidays, event days, or low-usage days under 25% of the first five's mean event-period
  load), average the 4 with the highest event-period load, interval by interval;
- Saturday event: highest 2 of the 3 most recent Saturdays; Sunday/holiday: of Sundays/holidays;
- SAA: mean(actual - CBL) over the 3 hours ending 1 hour before the event start, added to every
  event interval, up or down.
Event-day exclusion is VERIFIED-SECONDARY (RTO Insider MRC brief).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from der_assets.settlement import calendar
from der_assets.settlement.baselines.common import (Computed, EventGrid, adjust, event_load, like_day_cbl, v)
from der_assets.settlement.baselines.matrix import MeterMatrix
from der_assets.settlement.baselines.parameters import Param
from der_assets.settlement.events import Event

NAME = "pjm_high_4_of_5"


def history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC span of meter data the rule reads."""
    return event.start - pd.Timedelta(days=v(p, "lookback_days") + 2), event.end + pd.Timedelta(hours=1)


def day_counts(event: Event, p: Mapping[str, Param]) -> tuple[int, int, int]:
    """(selected, kept, minimum) for the event day's type."""
    kind = calendar.day_types([event.local_date], holidays_as_sunday=v(p, "nerc_holidays_as_sunday"))[0]
    prefix = "weekday" if kind == calendar.WEEKDAY else "weekend"
    return v(p, f"{prefix}_days_selected"), v(p, f"{prefix}_days_kept"), v(p, f"{prefix}_min_days")


def compute(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, **_) -> Computed:
    """CBL (kW) per meter and event interval: the kept days' mean, plus the SAA."""
    n_select, n_keep, min_days = day_counts(event, p)
    cbl, cbl_w, actual_w, _chosen = like_day_cbl(mx, event, p, grid, n_select=n_select, n_keep=n_keep,
                                                 min_days=min_days, low_usage_fraction=v(p, "low_usage_fraction"))
    adjusted, _ = adjust(cbl, cbl_w, actual_w, v(p, "adjustment"), v(p, "adjustment_cap_fraction"))
    return Computed(grid.to_bins(adjusted), event_load(mx, grid))
