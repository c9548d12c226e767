"""Local wall-clock labels -> UTC, with every DST case made explicit instead of guessed.

Vendors that send site-local times without an offset (SolarEdge, SMA cloud, sonnen) hit two
hazards twice a year: the fall-back hour, whose labels occur twice, and the spring-forward
hour, whose labels never happen. `localize_labels` resolves what the payload itself proves
(order of appearance) and reports the rest as a per-row fold status for the vendor parser
to decide on (SolarEdge sums the repeated hour; others are flagged).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

#: fold status values returned by `localize_labels`
OK = "ok"
FOLD_FIRST = "fold_first"  # first pass of a repeated (fall-back) label: DST offset
FOLD_SECOND = "fold_second"  # second pass: standard offset
FOLD_UNKNOWN = "fold_unknown"  # repeated label seen once; pass cannot be proven
NONEXISTENT = "nonexistent"  # spring-forward label that no clock showed


def parse_naive(labels: Iterable, fmt: str | None = None) -> pd.DatetimeIndex:
    """Parse offset-free labels strictly; a label that does not parse raises ValueError."""
    idx = pd.to_datetime(pd.Index(list(labels), dtype=object), format=fmt)
    if idx.tz is not None:
        raise ValueError("expected local labels without an offset")
    return pd.DatetimeIndex(idx)


def localize_labels(naive: pd.DatetimeIndex, tz: str) -> pd.DataFrame:
    """Map naive local labels (in payload order) to UTC plus a fold status per row.

    A repeated label is on its second pass when the same label already appeared, or when a
    later wall time already appeared before it (the clock went back). If the payload shows
    no second pass at all, repeated-hour labels are FOLD_UNKNOWN and placed on the first
    pass; the caller must flag or split them. Nonexistent labels get NaT.
    """
    naive = pd.DatetimeIndex(naive)
    n = len(naive)
    if n == 0:
        return pd.DataFrame({"utc": pd.DatetimeIndex([], tz="UTC"), "status": pd.Series([], dtype=object)})
    first = naive.tz_localize(tz, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT")
    second = naive.tz_localize(tz, ambiguous=np.zeros(n, dtype=bool), nonexistent="NaT")
    nonexistent = np.asarray(first.isna() & naive.notna())
    ambiguous = np.asarray(first != second) & ~nonexistent & np.asarray(naive.notna())

    vals = naive.asi8.copy()
    steps = np.diff(vals)
    descending = bool((steps < 0).sum() > (steps > 0).sum())  # newest-first payloads
    order = np.arange(n)[::-1] if descending else np.arange(n)
    v = vals[order]
    prior_max = np.concatenate([[np.iinfo(np.int64).min], np.maximum.accumulate(v)[:-1]])
    went_back = prior_max > v
    seen = pd.Series(v).groupby(v).cumcount().to_numpy() > 0
    second_pass = np.empty(n, dtype=bool)
    second_pass[order] = went_back | seen
    second_pass &= ambiguous

    has_second = bool(second_pass.any())
    status = np.full(n, OK, dtype=object)
    status[ambiguous & ~second_pass] = FOLD_FIRST if has_second else FOLD_UNKNOWN
    status[second_pass] = FOLD_SECOND
    status[nonexistent] = NONEXISTENT

    utc = first.where(~second_pass, second).tz_convert("UTC")
    return pd.DataFrame({"utc": utc, "status": status})


def fold_partner_utc(utc_first: pd.Series, tz: str) -> pd.Series:
    """For first-pass fold times, the same wall label on the second pass (standard offset)."""
    local = pd.DatetimeIndex(utc_first).tz_convert(tz).tz_localize(None)
    second = local.tz_localize(tz, ambiguous=np.zeros(len(local), dtype=bool), nonexistent="NaT")
    return pd.Series(second.tz_convert("UTC"), index=utc_first.index)


def from_epoch_s(epoch_s) -> pd.DatetimeIndex:
    """UTC timestamps from epoch seconds (ints, floats or numeric strings)."""
    secs = pd.to_numeric(pd.Series(epoch_s), errors="raise").to_numpy(dtype="float64")
    return pd.DatetimeIndex(pd.to_datetime(np.round(secs * 1e9).astype("int64"), utc=True))


def interval_start_from_end(end_utc, interval_s: int) -> pd.DatetimeIndex:
    """Interval-ending labels (Enphase v4 end_at) -> interval-beginning UTC."""
    return pd.DatetimeIndex(end_utc) - pd.Timedelta(seconds=int(interval_s))


def parse_aware(value: str) -> pd.Timestamp:
    """An RFC 3339 string that must carry an offset (Fronius Head/Start); returns UTC."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return ts.tz_convert("UTC")


def floor_s(utc: pd.DatetimeIndex, interval_s: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(utc).floor(f"{int(interval_s)}s")
