"""Lifetime energy counters -> per-interval energy on a fixed UTC grid.

Registers (SolarEdge /meters, Enphase gateway, Fronius archive, sonnen kwh_*, SunSpec WH)
are read at irregular times and sometimes wrap (fixed-width registers) or restart (firmware
resets, meter swaps). We difference them, unwrap rollovers, refuse to invent energy across
a reset, and interpolate the counter linearly at grid boundaries so that the interval
energies add up exactly to the counter difference. Every departure from "two clean readings
bracket this interval" is flagged, never smoothed over.

Quality per interval (worst wins): missing (no bracketing readings, a reset inside, or a
reading gap longer than `max_spread_s`, a day by default; value null) > suspect (a step larger
than `max_step`, or a reading that a second reading of the same instant contradicts) >
estimated (a reading gap longer than `max_gap_s` was spread linearly) > measured.

A gap is spread only up to `max_spread_s`: two readings a year apart say how much energy the
year held, not how it fell into quarter-hours, so no interval of such a gap is estimated
(issue 17: one absurd stamp in a poll log made months of invented 'estimated' energy).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pandas as pd

FLAG_NONE = ""
FLAG_ROLLOVER = "rollover"
FLAG_RESET = "reset"
FLAG_GAP = "gap"
FLAG_SPIKE = "spike"
FLAG_NO_READING = "no_reading"
FLAG_DUPLICATE = "duplicate"

#: longest reading gap whose energy is spread over the intervals inside it (module docstring)
MAX_SPREAD_S = 86400.0

_NS = 10**9


class NegativeCounterError(ValueError):
    """A lifetime register below zero: the unit, the field or the device is wrong."""


def counter_steps(
    counter: np.ndarray, *, rollover_at: Optional[float] = None, max_step: Optional[float] = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy between consecutive readings of a monotone counter.

    Returns (step, is_rollover, is_reset), each of length len(counter) - 1. A decrease is a
    rollover when adding `rollover_at` gives a plausible step (<= max_step, or a quarter of the
    register), else a reset; a reset step is 0 here and must be treated as unknown energy.
    """
    c = np.asarray(counter, dtype="float64")
    d = np.diff(c)
    dec = d < 0
    roll = np.zeros_like(dec)
    if rollover_at:
        lim = max_step if max_step is not None else rollover_at / 4.0
        wrapped = d + rollover_at
        roll = dec & (wrapped >= 0) & (wrapped <= lim)
    reset = dec & ~roll
    step = np.where(roll, d + (rollover_at or 0.0), d)
    step = np.where(reset, 0.0, step)
    return step, roll, reset


def _window_edges(t_ns: np.ndarray, interval_ns: int, window) -> Tuple[int, int]:
    """Grid edges: the window rounded outward, or else the reading span rounded inward."""
    if window is not None and window[0] is not None:
        lo = (pd.Timestamp(window[0]).value // interval_ns) * interval_ns
    else:
        lo = -((-int(t_ns[0])) // interval_ns) * interval_ns
    if window is not None and window[1] is not None:
        hi = -((-pd.Timestamp(window[1]).value) // interval_ns) * interval_ns
    else:
        hi = (int(t_ns[-1]) // interval_ns) * interval_ns
    return lo, max(hi, lo)


def _range_count(flags: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How many flagged steps fall in step-index ranges [lo, hi] (steps numbered from 1)."""
    cum = np.concatenate([[0], np.cumsum(flags.astype("int64"))])
    return cum[hi] - cum[lo - 1]


def counter_to_intervals(
    read_at,
    counter,
    *,
    interval_s: int,
    rollover_at: Optional[float] = None,
    max_gap_s: Optional[float] = None,
    max_step: Optional[float] = None,
    window=None,
    bidirectional: bool = False,
    max_spread_s: Optional[float] = MAX_SPREAD_S,
) -> pd.DataFrame:
    """Interval energies (same unit as `counter`) on a UTC grid of `interval_s`.

    read_at: UTC timestamps of the readings (any order; NaN readings are dropped; of duplicate
    times the last is kept, and when their values differ the intervals that reading feeds are
    suspect, flag "duplicate"). Without a window only intervals inside the reading span come back
    (a payload claims nothing outside it). window: optional (start, end) UTC the payload
    claims to cover; its intervals without bracketing readings come back as missing rows. bidirectional:
    for net registers (Enphase net-consumption whLifetime) that may legitimately fall; no
    reset or rollover detection then. Returns columns interval_start, energy, quality, flag.
    """
    interval_ns = int(interval_s) * _NS
    t = pd.DatetimeIndex(pd.to_datetime(pd.Index(read_at), utc=True)).asi8
    c = np.asarray(counter, dtype="float64")
    if len(t) != len(c):
        raise ValueError("read_at and counter differ in length")
    keep = ~np.isnan(c) & (t != np.iinfo(np.int64).min)
    t, c = t[keep], c[keep]
    order = np.argsort(t, kind="stable")
    t, c = t[order], c[order]
    conflict = np.zeros(len(t), dtype=bool)
    if len(t):
        same = t[1:] == t[:-1]
        clash = same & (c[1:] != c[:-1])
        if clash.any():
            clashing_t = np.unique(t[1:][clash])
            conflict = np.isin(t, clashing_t)
        last = np.concatenate([~same, [True]])
        t, c, conflict = t[last], c[last], conflict[last]
    if not bidirectional and len(c) and (c < 0).any():
        i = int(np.argmax(c < 0))
        raise NegativeCounterError(
            f"negative lifetime counter {c[i]!r} at {pd.Timestamp(t[i], tz='UTC').isoformat()}"
        )
    if len(t) == 0 and window is None:
        return _frame(np.array([], dtype="int64"), np.array([]), np.array([], dtype=object), np.array([], dtype=object))
    if len(t) == 0:
        lo, hi = _window_edges(np.array([pd.Timestamp(window[0]).value]), interval_ns, window)
        starts = np.arange(lo, hi, interval_ns, dtype="int64")
        return _frame(starts, np.full(len(starts), np.nan), np.full(len(starts), "missing", dtype=object),
                      np.full(len(starts), FLAG_NO_READING, dtype=object))

    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, not warned about
        if bidirectional:
            step = np.diff(c)
            roll = reset = np.zeros(len(step), dtype=bool)
        else:
            step, roll, reset = counter_steps(c, rollover_at=rollover_at, max_step=max_step)
        energy_cum = np.concatenate([[0.0], np.cumsum(step)])
    spike = (step > max_step) if max_step is not None else np.zeros(len(step), dtype=bool)
    dt_s = np.diff(t) / _NS
    gap = (dt_s > max_gap_s) if max_gap_s is not None else np.zeros(len(step), dtype=bool)

    unspread = (dt_s > max_spread_s) if max_spread_s is not None else np.zeros(len(step), dtype=bool)
    dup_step = conflict[:-1] | conflict[1:] if len(t) > 1 else np.zeros(0, dtype=bool)

    if not np.isfinite(energy_cum).all():
        raise OverflowError("counter readings overflow when differenced (a register beyond any meter's range)")
    lo_edge, hi_edge = _window_edges(t, interval_ns, window)
    bounds = np.arange(lo_edge, hi_edge + interval_ns, interval_ns, dtype="int64")
    starts, ends = bounds[:-1], bounds[1:]
    covered = (starts >= t[0]) & (ends <= t[-1]) & (len(t) > 1)
    e_b = np.interp(bounds.astype("float64"), t.astype("float64"), energy_cum)
    energy = e_b[1:] - e_b[:-1]
    if not bidirectional:
        energy = np.maximum(energy, 0.0)  # only float round-off can go below 0 here

    n = len(t)
    lo = np.clip(np.searchsorted(t, starts, side="right"), 1, max(n - 1, 1))
    hi = np.clip(np.searchsorted(t, ends, side="left"), 1, max(n - 1, 1))
    hi = np.maximum(hi, lo)
    if n > 1:
        n_reset = _range_count(reset, lo, hi)
        n_roll = _range_count(roll, lo, hi)
        n_gap = _range_count(gap, lo, hi)
        n_spike = _range_count(spike, lo, hi)
        n_dup = _range_count(dup_step, lo, hi)
        n_unspread = _range_count(unspread, lo, hi)
    else:
        n_reset = n_roll = n_gap = n_spike = n_dup = n_unspread = np.zeros(len(starts), dtype="int64")

    quality = np.full(len(starts), "measured", dtype=object)
    flag = np.full(len(starts), FLAG_NONE, dtype=object)
    flag[n_roll > 0] = FLAG_ROLLOVER
    quality[n_gap > 0] = "estimated"
    flag[n_gap > 0] = FLAG_GAP
    quality[n_spike > 0] = "suspect"
    flag[n_spike > 0] = FLAG_SPIKE
    quality[n_dup > 0] = "suspect"
    flag[n_dup > 0] = FLAG_DUPLICATE
    missing = ~covered | (n_reset > 0) | (n_unspread > 0)
    quality[missing] = "missing"
    flag[(n_unspread > 0) & covered] = FLAG_GAP
    flag[(n_reset > 0) & covered] = FLAG_RESET
    flag[~covered] = FLAG_NO_READING
    energy = np.where(missing, np.nan, energy)
    return _frame(starts, energy, quality, flag)


def _frame(starts_ns, energy, quality, flag) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "interval_start": pd.to_datetime(np.asarray(starts_ns, dtype="int64"), utc=True),
            "energy": np.asarray(energy, dtype="float64"),
            "quality": np.asarray(quality, dtype=object),
            "flag": np.asarray(flag, dtype=object),
        }
    )


def combine_net(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """a - b for two register series on the same grid (import - export, discharge - charge).

    The worse quality of the two wins; a missing side makes the result missing.
    """
    rank = {"measured": 0, "estimated": 1, "suspect": 2, "missing": 3}
    m = a.merge(b, on="interval_start", how="outer", suffixes=("_a", "_b")).sort_values("interval_start")
    qa = m["quality_a"].map(rank).fillna(3)
    qb = m["quality_b"].map(rank).fillna(3)
    inv = {v: k for k, v in rank.items()}
    q = np.maximum(qa, qb).map(inv)
    energy = m["energy_a"] - m["energy_b"]
    energy = energy.where(q != "missing")
    flag = (m["flag_a"].fillna(FLAG_NO_READING) + "," + m["flag_b"].fillna(FLAG_NO_READING)).str.strip(",")
    return pd.DataFrame(
        {"interval_start": m["interval_start"].to_numpy(), "energy": energy.to_numpy(), "quality": q.to_numpy(), "flag": flag.to_numpy()}
    ).reset_index(drop=True)
