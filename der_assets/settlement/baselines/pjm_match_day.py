"""PJM Match Day (3-day average).

"The Match Day (3-day average) method uses an average of the three non-event days with the most
similar load to the non-event hours on the event day. The hour before and after the event are
excluded from the 'non-event' hours." (RTO Insider, 2025-02-25, VERIFIED-SECONDARY.)
Not stated there, so UNVERIFIED parameters: the lookback, the similarity measure (RMSE over the
non-event slots by default) and whether only like days (weekday / Saturday / Sunday-holiday) count.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from der_assets.settlement import calendar
from der_assets.settlement.baselines.common import (H_NS, Computed, EventGrid, candidate_days, event_load, gather,
                                                    mean_over_days, v, wall_clock_ns, window_ns)
from der_assets.settlement.baselines.matrix import MeterMatrix
from der_assets.settlement.baselines.parameters import Param
from der_assets.settlement.events import Event

NAME = "pjm_match_day"


def history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    return event.start - pd.Timedelta(days=v(p, "lookback_days") + 2), event.end + pd.Timedelta(days=2)


def comparison_ns(mx: MeterMatrix, event: Event, gap_h: float) -> np.ndarray:
    """The event day's non-event slots: the whole local day minus the event and `gap_h` either side."""
    day0 = calendar.local_midnight_utc(event.local_date, event.timezone).value
    day1 = calendar.local_midnight_utc(event.local_date + pd.Timedelta(days=1), event.timezone).value
    allday = window_ns(mx, day0, day1)
    gap = int(round(gap_h * H_NS))
    return allday[(allday < event.start.value - gap) | (allday >= event.end.value + gap)]


def compute(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, **_) -> Computed:
    """CBL (kW): mean of the `days_kept` eligible days closest to the event day's non-event load."""
    days = candidate_days(event, v(p, "lookback_days"))
    types = calendar.day_types(days + [event.local_date], holidays_as_sunday=v(p, "nerc_holidays_as_sunday"))
    excluded = set(event.other_event_days) if v(p, "exclude_event_days") else set()
    ok_day = np.array([(t == types[-1] or not v(p, "same_day_type")) and d not in excluded
                       for d, t in zip(days, types[:-1], strict=True)], dtype=bool)
    compare = comparison_ns(mx, event, v(p, "excluded_gap_h"))
    today = gather(mx, compare)  # [m, c]
    has_today = ~np.isnan(today)
    n_today = has_today.sum(axis=1)
    measure = v(p, "similarity")
    if measure not in ("rmse", "mae"):
        raise ValueError(f"pjm_match_day.similarity: unknown {measure!r} (rmse | mae)")
    walls_c = wall_clock_ns(compare, event.timezone, days)
    walls_e = wall_clock_ns(grid.flat_ns, event.timezone, days)
    n_m = len(mx.meter_ids)
    distance = np.full((n_m, len(days)), np.inf)
    profiles = np.full((n_m, len(days), grid.flat_ns.size), np.nan)
    for j in range(len(days)):  # one day at a time: [meter, slot] arrays, not [meter, day, slot]
        if not ok_day[j] or (walls_e[j] < 0).any():
            continue
        other = gather(mx, walls_c[j])
        event_slots = gather(mx, walls_e[j])
        diff = other - today  # NaN where either day lacks the slot
        complete = ~np.isnan(event_slots).any(axis=1) & ~(np.isnan(other) & has_today).any(axis=1)
        diff = np.where(has_today, diff, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = (np.sqrt((diff ** 2).sum(axis=1) / n_today) if measure == "rmse"
                 else np.abs(diff).sum(axis=1) / n_today)
        usable = complete & (n_today > 0) & np.isfinite(d)
        distance[:, j] = np.where(usable, d, np.inf)
        profiles[:, j] = event_slots
    order = np.argsort(distance, axis=1, kind="stable")[:, :v(p, "days_kept")]
    chosen = np.zeros_like(distance, dtype=bool)
    np.put_along_axis(chosen, order, True, axis=1)
    chosen &= np.isfinite(distance)
    chosen &= (chosen.sum(axis=1) >= v(p, "days_kept"))[:, None]
    cbl = mean_over_days(np.nan_to_num(profiles, nan=0.0), chosen)
    return Computed(grid.to_bins(cbl), event_load(mx, grid))
