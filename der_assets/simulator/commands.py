"""Battery setpoint commands: normalization and rasterization onto the interval grid.

A command is ``(site, effective start, effective end, setpoint_kw)`` where the
effective start is when the device acts on it (issued_at + the site's command
latency). A device holds one setpoint at a time, so a command replaces
whatever was in force from its effective start on: per site, each command ends
at the latest at the next command's start. ``setpoint_kw = NaN`` means "back to
self-consumption".

Rasterization turns the commands into, per interval and site, up to three
segments with a constant target (see :mod:`.battery`): the value in force at the
interval start, and the values after the first and the last switch inside the
interval. If more than two switches fall inside one interval (commands shorter
than an interval), the middle ones are dropped; at 5-minute resolution that
only happens for sub-interval commands, which the dispatch contract never sends.
All of it is array code over the command table, never a loop over sites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .battery import N_SEGMENTS

COMMAND_COLUMNS = ["site_idx", "start_s", "end_s", "setpoint_kw", "seq"]


def empty_commands() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_idx": pd.Series(dtype="int64"),
            "start_s": pd.Series(dtype="float64"),
            "end_s": pd.Series(dtype="float64"),
            "setpoint_kw": pd.Series(dtype="float64"),
            "seq": pd.Series(dtype="int64"),
        }
    )


def normalize(commands: pd.DataFrame) -> pd.DataFrame:
    """Make commands non-overlapping per site: a later start (or, at equal starts, a later seq) wins."""
    if commands.empty:
        return empty_commands()
    c = commands.sort_values(["site_idx", "start_s", "seq"], kind="stable").reset_index(drop=True)
    next_start = c.groupby("site_idx", sort=False)["start_s"].shift(-1)
    c["end_s"] = np.fmin(c["end_s"].to_numpy(), next_start.to_numpy())
    return c[c["end_s"] > c["start_s"]].reset_index(drop=True)


def prune(commands: pd.DataFrame, before_s: float) -> pd.DataFrame:
    """Drop normalized commands that can no longer act at or after ``before_s``.

    That is those that ended, and releases (NaN) already in force: with commands
    non-overlapping, a started release is the same as having no command.
    """
    done = (commands["end_s"] <= before_s) | (commands["setpoint_kw"].isna() & (commands["start_s"] <= before_s))
    return commands[~done].reset_index(drop=True)


@dataclass(frozen=True)
class Raster:
    """Command schedule on a window of n_t intervals for n_sites sites.

    value_at_start: (n_t, n_sites) setpoint in force at each interval start, NaN = self.
    inner_*: one entry per (interval, site) with switches inside the interval, sorted by interval:
        first/last switch offset [s] and the value after it.
    """

    interval_s: float
    value_at_start: np.ndarray
    inner_k: np.ndarray
    inner_site: np.ndarray
    off1_s: np.ndarray
    val1: np.ndarray
    off2_s: np.ndarray
    val2: np.ndarray

    def segments(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Segment targets and lengths for interval k, each (N_SEGMENTS, n_sites)."""
        v0 = self.value_at_start[k]
        n = v0.size
        target = np.empty((N_SEGMENTS, n))
        target[:] = v0
        length = np.zeros((N_SEGMENTS, n))
        length[0] = self.interval_s
        lo, hi = np.searchsorted(self.inner_k, [k, k + 1])
        if hi > lo:
            s = self.inner_site[lo:hi]
            o1, o2 = self.off1_s[lo:hi], self.off2_s[lo:hi]
            length[0, s] = o1
            length[1, s] = o2 - o1
            length[2, s] = self.interval_s - o2
            target[1, s] = self.val1[lo:hi]
            target[2, s] = self.val2[lo:hi]
        return target, length


def rasterize(commands: pd.DataFrame, *, window_start_s: float, interval_s: float, n_t: int, n_sites: int) -> Raster:
    """Rasterize normalized commands onto the window [start, start + n_t * interval_s)."""
    value_at_start = np.full((n_t, n_sites), np.nan)
    empty_i = np.zeros(0, dtype=np.int64)
    empty_f = np.zeros(0)
    window_end_s = window_start_s + n_t * interval_s
    c = commands[(commands["end_s"] > window_start_s) & (commands["start_s"] < window_end_s)] if len(commands) else commands
    if c is None or len(c) == 0:
        return Raster(interval_s, value_at_start, empty_i, empty_i, empty_f, empty_f, empty_f, empty_f)

    site = c["site_idx"].to_numpy(np.int64)
    start = c["start_s"].to_numpy(float)
    end = c["end_s"].to_numpy(float)
    value = c["setpoint_kw"].to_numpy(float)
    # an end event is needed unless the same site's next command starts exactly then
    nxt_same = np.r_[site[1:] == site[:-1], False]
    nxt_start = np.r_[start[1:], np.inf]
    needs_end = ~(nxt_same & (nxt_start == end))
    ev_site = np.concatenate([site, site[needs_end]])
    ev_time = np.concatenate([start, end[needs_end]])
    ev_val = np.concatenate([value, np.full(int(needs_end.sum()), np.nan)])
    order = np.lexsort((ev_time, ev_site))
    ev_site, ev_time, ev_val = ev_site[order], ev_time[order], ev_val[order]
    keep = ev_time < window_end_s
    ev_site, ev_time, ev_val = ev_site[keep], ev_time[keep], ev_val[keep]

    rel = (ev_time - window_start_s) / interval_s
    # first interval boundary at or after the event
    kb = np.clip(np.ceil(rel - 1e-9).astype(np.int64), 0, n_t)
    last_idx = np.full((n_t + 1, n_sites), -1, dtype=np.int64)
    # events are time-sorted per site, so the max index per (kb, site) is the last one
    np.maximum.at(last_idx, (kb, ev_site), np.arange(ev_site.size))
    last_idx = np.maximum.accumulate(last_idx, axis=0)[:n_t]
    has = last_idx >= 0
    value_at_start[has] = ev_val[last_idx[has]]

    k_in = np.floor(rel + 1e-9).astype(np.int64)
    off = (rel - k_in) * interval_s
    inner = (k_in >= 0) & (k_in < n_t) & (off > 1e-6)
    if not inner.any():
        return Raster(interval_s, value_at_start, empty_i, empty_i, empty_f, empty_f, empty_f, empty_f)
    k_i, s_i, o_i, v_i = k_in[inner], ev_site[inner], off[inner], ev_val[inner]
    order = np.lexsort((o_i, s_i, k_i))
    k_i, s_i, o_i, v_i = k_i[order], s_i[order], o_i[order], v_i[order]
    new_group = np.r_[True, (k_i[1:] != k_i[:-1]) | (s_i[1:] != s_i[:-1])]
    first = np.flatnonzero(new_group)
    last = np.r_[first[1:] - 1, k_i.size - 1]
    return Raster(
        interval_s,
        value_at_start,
        k_i[first],
        s_i[first],
        o_i[first],
        v_i[first],
        o_i[last],
        v_i[last],
    )
