"""What the day-matching baselines share: the event's output grid, the same local wall-clock times
on earlier days (DST-safe), like-day selection with its exclusions, and the in-day adjustments.

Arrays are [meter, day, time] or [meter, time]; kW throughout; days are ordered most recent first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from der_assets.settlement import calendar
from der_assets.settlement.baselines.matrix import NS, MeterMatrix
from der_assets.settlement.baselines.parameters import Param
from der_assets.settlement.events import Event

H_NS = 3600 * NS


@dataclasses.dataclass(frozen=True)
class EventGrid:
    """The event's output intervals (bins of the method's resolution) and the matrix slots in them.

    bin_start_ns[b] is the UTC start of output interval b; sub_ns[b, k] the UTC start of its k-th
    matrix slot. A bin is reported when it overlaps [start, end).
    """

    bin_s: int
    bin_start_ns: np.ndarray
    sub_ns: np.ndarray
    notes: tuple[str, ...] = ()

    @property
    def flat_ns(self) -> np.ndarray:
        return self.sub_ns.reshape(-1)

    def to_bins(self, values: np.ndarray) -> np.ndarray:
        """[..., n_bins * k] slot values -> [..., n_bins] bin means (NaN if any slot is NaN)."""
        shape = values.shape[:-1] + self.sub_ns.shape
        return values.reshape(shape).mean(axis=-1)


def event_grid(mx: MeterMatrix, event: Event, interval_s: int) -> EventGrid:
    """The output grid of an event at `interval_s`, coarsened to the meter slot width if needed."""
    notes = []
    bin_s = int(interval_s)
    if bin_s % mx.step_s:
        coarse = int(np.lcm(bin_s, mx.step_s))
        notes.append(f"meter intervals ({mx.step_s} s) are coarser than the method's {bin_s} s: "
                     f"reported at {coarse} s")
        bin_s = coarse
    step = bin_s * NS
    first = event.start.value // step * step
    last = -(-event.end.value // step) * step
    bins = np.arange(first, last, step, dtype=np.int64)
    if first != event.start.value or last != event.end.value:
        notes.append(f"event {event.event_id} edges are not on the {bin_s} s grid: "
                     "the partly covered intervals are reported whole")
    k = bin_s // mx.step_s
    sub = bins[:, None] + np.arange(k, dtype=np.int64)[None, :] * mx.step_s * NS
    return EventGrid(bin_s, bins, sub, tuple(notes))


def window_ns(mx: MeterMatrix, a_ns: int, b_ns: int) -> np.ndarray:
    """UTC starts of the matrix slots whose start lies in [a, b)."""
    step = mx.step_s * NS
    first = -(-(a_ns - mx.t0_ns) // step) * step + mx.t0_ns
    return np.arange(first, b_ns, step, dtype=np.int64)


def candidate_days(event: Event, lookback_days: int) -> list[dt.date]:
    """Local dates before the event day, most recent first, within the lookback."""
    d0 = event.local_date
    return [d0 - dt.timedelta(days=i) for i in range(1, int(lookback_days) + 1)]


def wall_clock_ns(times_ns: np.ndarray, tz: str, days: list[dt.date]) -> np.ndarray:
    """[n_days, n_times] UTC ns of the same local wall-clock times as `times_ns` on each of `days`.

    A wall time that does not exist that day (spring forward) is -1; an ambiguous one (fall back)
    takes its first occurrence. This is what makes a 92- or 100-quarter-hour day work.
    """
    if len(times_ns) == 0 or not days:
        return np.full((len(days), len(times_ns)), -1, dtype=np.int64)
    local = pd.DatetimeIndex(times_ns.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz).tz_localize(None)
    offset = (local - local.normalize()).to_numpy().astype(np.int64)
    day_ns = pd.DatetimeIndex(pd.to_datetime(days)).to_numpy().astype("datetime64[ns]").view(np.int64)
    naive = (day_ns[:, None] + offset[None, :]).reshape(-1)
    idx = pd.DatetimeIndex(naive.astype("datetime64[ns]"))
    aware = idx.tz_localize(tz, ambiguous=np.ones(len(idx), dtype=bool), nonexistent="NaT")
    out = aware.tz_convert("UTC").asi8.copy()
    out[aware.isna()] = -1
    return out.reshape(len(days), len(times_ns))


def gather(mx: MeterMatrix, times_ns: np.ndarray) -> np.ndarray:
    """kW at UTC instants (any shape, -1 = none) -> [n_meters, *shape], NaN where no data."""
    times_ns = np.asarray(times_ns, dtype=np.int64)
    slots = np.where(times_ns >= 0, mx.slots(times_ns), -1)
    return mx.take(slots)


def anchor_ns(event: Event, anchor: str) -> int:
    """The instant an in-day adjustment window is measured back from."""
    if anchor == "event_start" or event.notified_at is None:
        return event.start.value
    if anchor == "notified_at":
        return min(event.notified_at.value, event.start.value)
    raise ValueError(f"adjustment_anchor: unknown {anchor!r} (event_start | notified_at)")


def day_selection(eligible: np.ndarray, score: np.ndarray, n_select: int, n_keep: int, min_days: int,
                  low_usage_fraction: float | None = None) -> np.ndarray:
    """[meter, day] mask of the days a like-day baseline averages.

    Take the `n_select` most recent eligible days; with a low-usage screen, drop days whose score
    is below the fraction of that first selection's mean score and take the next older ones
    instead; keep the `n_keep` highest-scoring; none at all when fewer than `min_days` qualify.
    Ties go to the more recent day.
    """
    def first_n(mask):
        return mask & (np.cumsum(mask, axis=1) <= n_select)

    chosen = first_n(eligible)
    if low_usage_fraction:
        n = chosen.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(chosen, score, 0.0).sum(axis=1) / n  # NaN for a meter with no day
        low = score < (low_usage_fraction * mean)[:, None]
        chosen = first_n(eligible & ~low)
    if n_keep < n_select:
        ranked = np.where(chosen, score, -np.inf)
        order = np.argsort(-ranked, axis=1, kind="stable")
        top = np.zeros_like(chosen)
        np.put_along_axis(top, order[:, :n_keep], True, axis=1)
        chosen &= top
    enough = chosen.sum(axis=1) >= max(int(min_days), 1)
    return chosen & enough[:, None]


def mean_over_days(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """[meter, day, time] averaged over the chosen days -> [meter, time]; NaN where none is chosen."""
    n = chosen.sum(axis=1)
    total = np.where(chosen[:, :, None], values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n[:, None] > 0, total / n[:, None], np.nan)


def adjust(cbl: np.ndarray, cbl_window: np.ndarray, actual_window: np.ndarray, kind: str,
           cap_fraction: float | None) -> tuple[np.ndarray, np.ndarray]:
    """In-day adjustment of a [meter, time] CBL from its [meter, window] values and the event day's.

    additive: + mean(actual - CBL) over the window, at most cap x |window CBL| either way.
    multiplicative: x mean(actual) / mean(CBL), kept in [1 - cap, 1 + cap]; NaN where the window
    CBL is not positive (a ratio to zero or to an exporting net load means nothing).
    Returns (adjusted CBL, adjustment per meter). Any missing window value gives NaN.
    """
    if kind == "none" or cbl_window.shape[1] == 0:
        return cbl, np.zeros(cbl.shape[0]) if kind == "none" else np.full(cbl.shape[0], np.nan)
    a = actual_window.mean(axis=1)
    c = cbl_window.mean(axis=1)
    if kind == "additive":
        delta = a - c
        if cap_fraction is not None:
            delta = np.clip(delta, -cap_fraction * np.abs(c), cap_fraction * np.abs(c))
        return cbl + delta[:, None], delta
    if kind == "multiplicative":
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(c > 0, a / c, np.nan)
        if cap_fraction is not None:
            factor = np.clip(factor, 1 - cap_fraction, 1 + cap_fraction)
        return cbl * factor[:, None], factor
    raise ValueError(f"adjustment: unknown {kind!r} (additive | multiplicative | none)")


@dataclasses.dataclass
class Computed:
    """A method's answer on the event grid: [meter, bin] kW arrays and notes for the warnings."""

    baseline_kw: np.ndarray
    load_kw: np.ndarray
    reduction_kw: np.ndarray | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def v(params: Mapping[str, Param], name: str):
    """A parameter's value."""
    return params[name].value


def like_day_cbl(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, *,
                 n_select: int, n_keep: int, min_days: int, low_usage_fraction: float | None,
                 extra_excluded: set[dt.date] = frozenset(), same_type_only: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The unadjusted like-day CBL on the event slots plus what an adjustment needs.

    Candidate days: like days (weekday / Saturday / Sunday-holiday) before the event day within
    the lookback, minus other event days and `extra_excluded`; a day is eligible for a meter only
    with every event-window and adjustment-window slot metered that day.
    Returns (cbl [m, slots], cbl over the adjustment window [m, w], actual on the event day over
    the window [m, w], chosen-day mask [m, candidate days of the event's type]).
    """
    days = candidate_days(event, v(p, "lookback_days"))
    types = calendar.day_types(days + [event.local_date], holidays_as_sunday=v(p, "nerc_holidays_as_sunday"))
    excluded = set(extra_excluded)
    if v(p, "exclude_event_days"):
        excluded |= set(event.other_event_days)
    days = [d for d, t in zip(days, types[:-1], strict=True)
            if (t == types[-1] or not same_type_only) and d not in excluded]  # only these are read
    adj_ns = adjustment_window_ns(mx, event, p)
    times = np.concatenate([grid.flat_ns, adj_ns])
    walls = wall_clock_ns(times, event.timezone, days)  # [day, time]
    values = gather(mx, walls)  # [m, day, time]
    n_event = grid.flat_ns.size
    eligible = ~np.isnan(values).any(axis=2) & (walls >= 0).all(axis=1)[None, :]
    with np.errstate(invalid="ignore"):
        score = values[:, :, :n_event].mean(axis=2)
    chosen = day_selection(eligible, score, n_select, n_keep, min_days, low_usage_fraction)
    profile = mean_over_days(values, chosen)
    actual_window = gather(mx, adj_ns)
    return profile[:, :n_event], profile[:, n_event:], actual_window, chosen


def adjustment_window_ns(mx: MeterMatrix, event: Event, p: Mapping[str, Param]) -> np.ndarray:
    """UTC slot starts of the in-day adjustment window: `adjustment_window_h` ending
    `adjustment_gap_h` before the anchor (event start or notification)."""
    if "adjustment" not in p or v(p, "adjustment") == "none":
        return np.zeros(0, dtype=np.int64)
    end = anchor_ns(event, v(p, "adjustment_anchor")) - int(round(v(p, "adjustment_gap_h") * H_NS))
    start = end - int(round(v(p, "adjustment_window_h") * H_NS))
    return window_ns(mx, start, end)


def event_load(mx: MeterMatrix, grid: EventGrid) -> np.ndarray:
    """Metered kW per meter and output bin on the event day (NaN if any slot is missing)."""
    return grid.to_bins(gather(mx, grid.flat_ns))
