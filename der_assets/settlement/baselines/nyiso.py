"""NYISO: the Average Day CBL (energy payments) and the SCR Average Coincident Load (capacity).

Average Day (every number UNVERIFIED: NYISO EDRP Manual 7 §4 was unreadable; the values follow a
third-party implementation, GitHub SumedhSankhe/NYISO_Baseline, as the reference notes say):
weekday event -> of the 10 most recent eligible weekdays within 30 days (no holidays, event days,
the day before the event, or low-usage days under 25% of the first ten's mean), average the 5
with the highest event-period load; weekend -> 2 highest of the 3 most recent like days; then
the in-day adjustment: x mean(actual) / mean(CBL) over the 2 hours starting 4 hours before the
event, kept within ±20% (the cap is UNVERIFIED). With solar, a non-positive window CBL leaves
no factor: the CBL is NaN rather than a ratio to zero.

ACL (VERIFIED: FERC 145 FERC ¶61,192; MST §2.3): the mean of the SCR's top 20 hourly loads among
the 40 SCR Load Zone Peak Hours (hour beginning 11-19) of the prior equivalent Capability Period.
NYISO determines those 40 hours from zone load; give them as `peak_hours_utc`. Without them a
proxy is used (the meters' own top hours) and the run says so.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import pandas as pd

from der_assets.settlement import calendar
from der_assets.settlement.baselines.common import (H_NS, Computed, EventGrid, adjust, event_load, gather,
                                                    like_day_cbl, v, window_ns)
from der_assets.settlement.baselines.matrix import MeterMatrix
from der_assets.settlement.baselines.parameters import Param
from der_assets.settlement.events import Event


# --- Average Day CBL -------------------------------------------------------------------------

def _avg_history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    return event.start - pd.Timedelta(days=v(p, "lookback_days") + 2), event.end + pd.Timedelta(hours=1)


def _average_day(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, **_) -> Computed:
    """CBL (kW) per meter and event interval: the kept days' mean times the in-day factor."""
    kind = calendar.day_types([event.local_date], holidays_as_sunday=v(p, "nerc_holidays_as_sunday"))[0]
    prefix = "weekday" if kind == calendar.WEEKDAY else "weekend"
    extra = {event.local_date - dt.timedelta(days=1)} if v(p, "exclude_day_before_event") else set()
    cbl, cbl_w, actual_w, _ = like_day_cbl(
        mx, event, p, grid, n_select=v(p, f"{prefix}_days_selected"), n_keep=v(p, f"{prefix}_days_kept"),
        min_days=v(p, f"{prefix}_min_days"), low_usage_fraction=v(p, "low_usage_fraction"), extra_excluded=extra)
    adjusted, factor = adjust(cbl, cbl_w, actual_w, v(p, "adjustment"), v(p, "adjustment_cap_fraction"))
    notes = []
    if v(p, "adjustment") == "multiplicative":
        n_bad = int((np.isnan(factor) & ~np.isnan(cbl).all(axis=1) & ~np.isnan(actual_w).any(axis=1)).sum())
        if n_bad:
            notes.append(f"nyiso_average_day: {n_bad} meter(s) have a non-positive CBL in the adjustment window "
                         "(net export): no in-day factor, CBL NaN")
    return Computed(grid.to_bins(adjusted), event_load(mx, grid), notes=notes)


average_day = SimpleNamespace(__doc__=__doc__, history=_avg_history, compute=_average_day)


# --- SCR Average Coincident Load --------------------------------------------------------------

def prior_capability_period(day: dt.date, p: Mapping[str, Param]) -> tuple[dt.date, dt.date]:
    """[first, last + 1) local dates of the Capability Period before the one of the same season."""
    first, last = v(p, "summer_first_month"), v(p, "summer_last_month")
    if first <= day.month <= last:
        return dt.date(day.year - 1, first, 1), dt.date(day.year - 1, last + 1, 1)
    start_year = day.year if day.month > last else day.year - 1  # this winter began in start_year
    end_month = first
    return dt.date(start_year - 1, last + 1, 1), dt.date(start_year, end_month, 1)


def _period_span(event: Event, p) -> tuple[pd.Timestamp, pd.Timestamp]:
    a, b = prior_capability_period(event.local_date, p)
    return calendar.local_midnight_utc(a, event.timezone), calendar.local_midnight_utc(b, event.timezone)


def _acl_history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    a, _ = _period_span(event, p)
    return a, event.end + pd.Timedelta(hours=1)


def _hourly(mx: MeterMatrix, hour_ns: np.ndarray) -> np.ndarray:
    """[m, hours] mean kW over each clock hour starting at hour_ns (NaN if any slot missing)."""
    k = max(3600 // mx.step_s, 1)
    sub = hour_ns[:, None] + np.arange(k, dtype=np.int64)[None, :] * mx.step_s * 1_000_000_000
    return gather(mx, sub).mean(axis=2)


def peak_hours_ns(mx: MeterMatrix, event: Event, p: Mapping[str, Param]) -> tuple[np.ndarray, list[str]]:
    """The 40 SCR Load Zone Peak Hours (UTC hour starts): given, else the meters' own proxy."""
    given = v(p, "peak_hours_utc")
    if given is not None:
        return pd.DatetimeIndex(pd.to_datetime(given, utc=True)).asi8, []
    a, b = _period_span(event, p)
    hours = window_ns(mx, a.value, b.value)
    hours = hours[(hours - mx.t0_ns) % H_NS == 0] if mx.step_s <= 3600 else hours
    local_hour = pd.DatetimeIndex(hours.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(event.timezone).hour
    hours = hours[(local_hour >= v(p, "first_hour_beginning")) & (local_hour <= v(p, "last_hour_beginning"))]
    note = (f"nyiso_acl: no peak_hours_utc given; proxy = the top {v(p, 'peak_hours_count')} hours "
            "(HB11-HB19) of these meters' mean load, not NYISO's Load Zone Peak Hours")
    if hours.size == 0:
        return hours, [note]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an hour no meter has: NaN, ranked last
        zone = np.nanmean(_hourly(mx, hours), axis=0)
    order = np.argsort(-np.where(np.isnan(zone), -np.inf, zone), kind="stable")[:v(p, "peak_hours_count")]
    return np.sort(hours[order[np.isfinite(zone[order])]]), [note]


def _acl(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, **_) -> Computed:
    """ACL (kW) per meter: mean of its top 20 loads in the peak hours; NaN with fewer than 20."""
    hours, notes = peak_hours_ns(mx, event, p)
    top = v(p, "top_hours")
    if hours.size == 0:
        acl = np.full(len(mx.meter_ids), np.nan)
    else:
        loads = _hourly(mx, hours)
        ranked = -np.sort(-np.where(np.isnan(loads), -np.inf, loads), axis=1)[:, :top]
        enough = np.isfinite(ranked).sum(axis=1) >= top
        with np.errstate(invalid="ignore"):
            acl = np.where(enough, np.where(np.isfinite(ranked), ranked, 0.0).sum(axis=1) / top, np.nan)
    load = event_load(mx, grid)
    return Computed(np.repeat(acl[:, None], load.shape[1], axis=1), load, notes=notes)


acl = SimpleNamespace(__doc__=__doc__, history=_acl_history, compute=_acl)
