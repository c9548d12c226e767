"""A fleet-day's gap grid and quality flags on flat arrays, without sorting or merging rows.

`quality.py` holds the readable pandas definitions (`complete_grid`, `flag_suspect`,
`review_items`). This module computes the same result for 10,000 sites at once. Series with
the same interval length form a matrix, one row per series (in key order) and one column per
interval of the day, stored as a slice of flat arrays; each reported value is scattered into its
cell; stuck registers and review runs are found along the rows. Tests hold it equal to the
pandas definitions on random and twin-made data.

Rows arrive as `RowBlock`s: per-row time, value and quality, and per-segment (a run of rows of
one series from one payload) the series code, interval, received_at and payload order, so
nothing per row is a Python object and per-row metadata is never repeated.

Row order of the result: by interval length, then series keys, then interval_start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from der_assets.telemetry.quality import SPIKE_MARGIN, STUCK_CHANNELS, STUCK_INTERVALS
from der_assets.telemetry.schema import CANONICAL_COLUMNS, QUALITIES, QUALITY_CODE, empty_frame

NS = 10**9
SERIES_KEYS = ["site_id", "device_id", "source", "channel"]
MISSING, SUSPECT = QUALITY_CODE["missing"], QUALITY_CODE["suspect"]
# review issue codes: 0 none, 1 gap, 2 + flag code (0 none, 1 spike, 2 stuck) for suspect cells
ISSUE_NAMES = np.array(["", "gap", "suspect_value", "suspect_spike", "suspect_stuck"], dtype=object)
ENERGY_CHANNELS = ("pv_kwh", "battery_kwh")  # compared with nameplate for spikes
_UTC = pd.DatetimeTZDtype("ns", "UTC")


def timestamp_ns(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).tz_convert("UTC").as_unit("ns").value)


def utc_index(ns: np.ndarray):
    """datetime64[ns, UTC] values over int64 UTC nanoseconds, sharing their memory where pandas
    allows (a fleet-day's column is 46 MB; localizing would copy it)."""
    m8 = np.asarray(ns, dtype=np.int64).view("datetime64[ns]")
    try:
        return pd.arrays.DatetimeArray._simple_new(m8, dtype=_UTC)
    except (AttributeError, TypeError):  # pandas without the constructor: the copying public path
        return pd.DatetimeIndex(m8).tz_localize("UTC").array


class SeriesKeys:
    """Interning table: (site_id, device_id, source, channel) -> small integer code."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str, str, str], int] = {}
        self.keys: list[tuple[str, str, str, str]] = []

    def code(self, site_id: str, device_id: str, source: str, channel: str) -> int:
        key = (site_id, device_id, source, channel)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.keys)
            self.keys.append(key)
        return found

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Codes for the series columns of a frame, one per row."""
        if frame.empty:
            return np.zeros(0, dtype=np.int64)
        cols = frame[SERIES_KEYS].astype(str)
        group = cols.groupby(SERIES_KEYS, sort=False).ngroup().to_numpy()
        firsts = cols.drop_duplicates().itertuples(index=False, name=None)  # in ngroup order
        per_group = np.array([self.code(*k) for k in firsts], dtype=np.int64)
        return per_group[group]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class RowBlock:
    """Canonical rows in segments; a segment is a run of rows of one series from one payload.

    `sorted_grid` promises every segment is strictly increasing and on its interval's grid (the
    batch parsers check it), which lets the scatter skip per-row checks.
    """

    seg_series: np.ndarray  # int64 code into SeriesKeys
    seg_rows: np.ndarray  # int64 number of rows
    seg_interval_s: np.ndarray  # int64
    seg_received_ns: np.ndarray  # int64 UTC ns
    seg_order: np.ndarray  # int64: among reports of one cell received at the same instant, the higher wins
    start_ns: np.ndarray  # int64 UTC ns per row
    value: np.ndarray  # float64 per row, NaN = missing
    quality: np.ndarray  # int8 per row, code into QUALITIES
    sorted_grid: bool = False

    @staticmethod
    def from_frame(rows: pd.DataFrame, keys: SeriesKeys, order: int) -> "RowBlock":
        """Canonical rows (device ids assigned) of one payload."""
        quality = pd.Categorical(rows["quality"], categories=QUALITIES).codes.astype(np.int8)
        if (quality < 0).any():
            raise ValueError(f"unknown quality values {sorted(set(rows['quality']) - set(QUALITIES))}")
        series = keys.codes(rows)
        interval = rows["interval_s"].to_numpy(dtype=np.int64)
        received = utc_ns(rows["received_at"])
        by = np.lexsort((received, interval, series))
        series, interval, received = series[by], interval[by], received[by]
        new = np.ones(len(by), dtype=bool)
        new[1:] = (series[1:] != series[:-1]) | (interval[1:] != interval[:-1]) | (received[1:] != received[:-1])
        first = np.flatnonzero(new)
        return RowBlock(seg_series=series[first], seg_rows=np.diff(np.append(first, len(by))),
                        seg_interval_s=interval[first], seg_received_ns=received[first],
                        seg_order=np.full(len(first), order, dtype=np.int64), start_ns=utc_ns(rows["interval_start"])[by],
                        value=rows["value"].to_numpy(dtype=np.float64)[by], quality=quality[by])


def utc_ns(values) -> np.ndarray:
    """int64 UTC nanoseconds of timestamps (a Series, an index or a list of aware Timestamps)."""
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8.copy()


@dataclass
class DenseDay:
    """The completed, flagged grid.

    series: SERIES_KEYS + interval_s + code (SeriesKeys) + offset (first cell) + n_cells, in row
    order of the result.
    Per cell: value, quality (code), received_ns, flag (0 none, 1 spike, 2 stuck), start_ns.
    """

    series: pd.DataFrame
    value: np.ndarray
    quality: np.ndarray
    received_ns: np.ndarray
    flag: np.ndarray
    start_ns: np.ndarray

    def frame(self) -> pd.DataFrame:
        """The canonical rows. Key and quality columns are categorical (the codes are shared with
        the grid, a fraction of the memory of 5 million Python strings); values compare as str."""
        if not len(self.value):
            return empty_frame()
        n_cells = self.series["n_cells"].to_numpy()
        cols = {}
        for name in SERIES_KEYS:
            codes, categories = pd.factorize(self.series[name], sort=True)
            dtype = np.int8 if len(categories) < 128 else np.int16 if len(categories) < 32768 else np.int32
            cols[name] = pd.Categorical.from_codes(np.repeat(codes.astype(dtype), n_cells),
                                                   categories=pd.Index(categories, dtype=object))
        cols["interval_start"] = utc_index(self.start_ns)
        cols["interval_s"] = np.repeat(self.series["interval_s"].to_numpy(dtype=np.int64), n_cells)
        cols["value"] = self.value
        cols["quality"] = pd.Categorical.from_codes(self.quality, categories=pd.Index(QUALITIES, dtype=object))
        cols["received_at"] = utc_index(self.received_ns)
        cols["revision"] = np.zeros(len(self.value), dtype=np.int64)
        assert list(cols) == CANONICAL_COLUMNS
        return pd.DataFrame(cols, copy=False)  # already in order: selecting columns would copy them

    def review(self) -> pd.DataFrame:
        """One row per run of consecutive missing or suspect cells in a series (quality.review_items)."""
        columns = [*SERIES_KEYS, "issue", "first_interval", "last_interval", "n_intervals"]
        idx = np.flatnonzero(self.quality >= MISSING)  # missing or suspect
        if not len(idx):
            return pd.DataFrame(columns=columns)
        q = self.quality[idx]
        issue = np.where(q == MISSING, 1, 2 + self.flag[idx]).astype(np.int8)
        offsets = self.series["offset"].to_numpy()
        row = np.searchsorted(offsets, idx, side="right") - 1  # series of each cell
        new = np.ones(len(idx), dtype=bool)
        new[1:] = (idx[1:] != idx[:-1] + 1) | (issue[1:] != issue[:-1]) | (row[1:] != row[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], len(idx)) - 1
        out = pd.DataFrame({name: self.series[name].to_numpy(dtype=object)[row[starts]] for name in SERIES_KEYS})
        out["issue"] = ISSUE_NAMES[issue[starts]]
        out["first_interval"] = utc_index(self.start_ns[idx[starts]])
        out["last_interval"] = utc_index(self.start_ns[idx[ends]])
        out["n_intervals"] = (ends - starts + 1).astype(np.int64)
        return out[columns]


def complete_day(
    blocks: list[RowBlock],
    keys: SeriesKeys,
    expected: pd.DataFrame,
    *,
    day_start: pd.Timestamp,
    day_end: pd.Timestamp,
    believed_at: pd.Timestamp,
    nameplate_kw: pd.Series,
    stuck_intervals: int = STUCK_INTERVALS,
) -> DenseDay:
    """complete_grid + flag_suspect of quality.py, for revision-0 rows.

    expected: SERIES_KEYS + interval_s from the registry (a silent device is a day of `missing`).
    nameplate_kw: rated AC kW by device_id, for spikes.
    """
    t0, t1 = timestamp_ns(day_start), timestamp_ns(day_end)
    exp_codes = np.array([keys.code(*k) for k in expected[SERIES_KEYS].astype(str).itertuples(index=False, name=None)],
                         dtype=np.int64)
    table = _layout(blocks, keys, exp_codes, expected["interval_s"].to_numpy(dtype=np.int64), t0, t1)
    total = int(table["n_cells"].sum())
    n_series = len(keys)
    where = np.full(n_series, -1, dtype=np.int64)  # first cell of each series in the result
    where[table["code"].to_numpy()] = table["offset"].to_numpy()
    interval = np.zeros(n_series, dtype=np.int64)
    interval[table["code"].to_numpy()] = table["interval_s"].to_numpy()

    start_ns = np.empty(total, dtype=np.int64)
    for s, off, _, n, g in _classes(table):
        start_ns[off:off + n * g].reshape(n, g)[:] = t0 + np.arange(g, dtype=np.int64) * s * NS
    value = np.full(total, np.nan)
    quality = np.full(total, -1, dtype=np.int8)  # -1: not written yet
    received = np.full(total, timestamp_ns(believed_at), dtype=np.int64)

    written = 0
    for b in blocks:
        cells, rows = _cells(b, where, interval, t0, t1)
        value[cells] = b.value[rows] if rows is not None else b.value
        quality[cells] = b.quality[rows] if rows is not None else b.quality
        rec = np.repeat(b.seg_received_ns, b.seg_rows)
        received[cells] = rec[rows] if rows is not None else rec
        written += len(cells)
    if written != int(np.count_nonzero(quality >= 0)):
        _resolve_overlaps(blocks, where, interval, t0, t1, value, quality, received)
    quality[np.isnan(value)] = MISSING

    flag = np.zeros(total, dtype=np.int8)
    _flag_stuck(table, value, flag, stuck_intervals)
    _flag_spikes(table, value, flag, nameplate_kw)
    quality[flag > 0] = SUSPECT  # a flagged cell always has a value
    return DenseDay(series=table, value=value, quality=quality, received_ns=received, flag=flag, start_ns=start_ns)


def _layout(blocks, keys: SeriesKeys, exp_codes, exp_interval, t0: int, t1: int) -> pd.DataFrame:
    """Which series the day has (expected or reported in it), their interval and their cells.

    A reported series takes one interval, as complete_grid does: among its reports in the day,
    one with a value beats one without, one with a measured value beats one with only
    estimates, the finer interval beats the coarser, then the latest received, then the later
    payload. Only reports at that interval fill its cells.
    """
    n_series = len(keys)
    interval = np.zeros(n_series, dtype=np.int64)
    interval[exp_codes] = exp_interval
    present = np.zeros(n_series, dtype=bool)
    present[exp_codes] = True
    parts = []  # per in-day segment: block, its index there, series, interval, received, order
    for i, b in enumerate(blocks):
        if not len(b.seg_series):
            continue
        inside = (b.start_ns >= t0) & (b.start_ns < t1)
        in_day = b.seg_rows > 0 if inside.all() else _per_segment(b, inside) > 0
        if in_day.any():
            idx = np.flatnonzero(in_day)
            parts.append((np.full(len(idx), i), idx, b.seg_series[idx], b.seg_interval_s[idx],
                          b.seg_received_ns[idx], b.seg_order[idx]))
    if parts:
        block, idx, seg, iv, rec, order = (np.concatenate([p[k] for p in parts]) for k in range(6))
        any_iv = np.zeros(n_series, dtype=np.int64)
        any_iv[seg] = iv
        if (iv == any_iv[seg]).all():  # the common case: one length per series
            interval[seg] = iv
        else:
            # per segment, its best row as complete_grid ranks rows: 3 a measured value, 2 only
            # estimated values, 1 a reported gap not marked estimated, 0 none of these
            rank = np.zeros(len(seg), dtype=np.int8)  # only needed to break this tie
            for i in np.unique(block):
                b = blocks[i]
                inside = (b.start_ns >= t0) & (b.start_ns < t1)
                has, direct = ~np.isnan(b.value), b.quality != QUALITY_CODE["estimated"]
                mine = block == i
                for level, rows in ((1, inside & ~has & direct), (2, inside & has), (3, inside & has & direct)):
                    hit = _per_segment(b, rows)[idx[mine]] > 0
                    rank[mine] = np.where(hit, level, rank[mine])
            last = np.lexsort((order, rec, -iv, rank, seg))  # by series, then the rule above: the last one wins
            last = last[np.r_[seg[last][1:] != seg[last][:-1], True]]
            interval[seg[last]] = iv[last]
        present[seg] = True
    table = pd.DataFrame(keys.keys, columns=SERIES_KEYS)
    table["interval_s"] = interval
    table["code"] = np.arange(n_series)
    table = table[present].sort_values(["interval_s", *SERIES_KEYS], kind="stable").reset_index(drop=True)
    step = table["interval_s"].to_numpy() * NS
    n_cells = -(-(t1 - t0) // step) if len(table) else np.zeros(0, dtype=np.int64)
    table["n_cells"] = n_cells
    table["offset"] = np.concatenate([[0], np.cumsum(n_cells)[:-1]]).astype(np.int64) if len(table) else n_cells
    return table


def _per_segment(b: RowBlock, mask: np.ndarray) -> np.ndarray:
    """How many rows of each segment `mask` holds."""
    ends = np.cumsum(b.seg_rows)
    counts = np.r_[0, np.cumsum(mask)]
    return counts[ends] - counts[ends - b.seg_rows]


def _classes(table: pd.DataFrame):
    """(interval_s, first cell, first series row, series count, cells per series) per interval
    length; the table is sorted by interval first, so each class is a contiguous matrix."""
    interval = table["interval_s"].to_numpy()
    for first in np.flatnonzero(np.r_[True, interval[1:] != interval[:-1]]) if len(interval) else []:
        n = int(np.searchsorted(interval, interval[first], side="right")) - int(first)
        yield (int(interval[first]), int(table["offset"].iat[first]), int(first), n,
               int(table["n_cells"].iat[first]))


def _cells(b: RowBlock, where: np.ndarray, interval: np.ndarray, t0: int, t1: int):
    """Target cell of each row of the block that lands on the grid, and which rows those are
    (None = all rows, in order)."""
    if not len(b.start_ns):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    seg_ok = (b.seg_interval_s == interval[b.seg_series]) & (where[b.seg_series] >= 0)
    seg_step = np.maximum(interval[b.seg_series], 1) * NS  # a series absent from the day has no cells anyway
    one_step = len(np.unique(seg_step)) == 1
    if b.sorted_grid and one_step and seg_ok.all() and t0 % int(seg_step[0]) == 0:
        step = int(seg_step[0])
        ends = np.cumsum(b.seg_rows)[b.seg_rows > 0]  # an empty body is an empty segment
        firsts, lasts = b.start_ns[ends - b.seg_rows[b.seg_rows > 0]], b.start_ns[ends - 1]
        if ((firsts >= t0) & (lasts < t1)).all():
            cells = np.repeat(where[b.seg_series], b.seg_rows)
            cells += (b.start_ns - t0) // step
            return cells, None
    rel = b.start_ns - t0
    step_r = np.repeat(seg_step, b.seg_rows)
    ok = np.repeat(seg_ok, b.seg_rows) & (rel >= 0) & (rel < t1 - t0) & (rel % step_r == 0)
    rows = np.flatnonzero(ok)
    return np.repeat(where[b.seg_series], b.seg_rows)[rows] + rel[rows] // step_r[rows], rows


def _resolve_overlaps(blocks, where, interval, t0, t1, value, quality, received) -> None:
    """Cells reported more than once, by complete_grid's rule: a reported value beats a reported gap,
    a measured value beats an estimate, then the latest belief wins; among equals, the later payload."""
    parts = []
    for b in blocks:
        cells, rows = _cells(b, where, interval, t0, t1)
        rows = np.arange(len(b.start_ns)) if rows is None else rows
        parts.append((cells, b.value[rows], b.quality[rows], np.repeat(b.seg_received_ns, b.seg_rows)[rows],
                      np.repeat(b.seg_order, b.seg_rows)[rows]))
    cells, val, qual, rec, order = (np.concatenate([p[k] for p in parts]) for k in range(5))
    counts = np.bincount(cells, minlength=len(value))
    dup = np.flatnonzero(counts[cells] > 1)
    direct = qual[dup] != QUALITY_CODE["estimated"]
    by = dup[np.lexsort((order[dup], rec[dup], direct, ~np.isnan(val[dup]), cells[dup]))]
    last = by[np.r_[cells[by][1:] != cells[by][:-1], True]]
    value[cells[last]] = val[last]
    quality[cells[last]] = qual[last]
    received[cells[last]] = rec[last]


def other_length_reports(blocks: list[RowBlock], keys: SeriesKeys, day: DenseDay, *, day_start: pd.Timestamp,
                         day_end: pd.Timestamp) -> pd.DataFrame:
    """SERIES_KEYS + interval_start of the day's reports at a length their series does not take
    (quality.other_length_reports on blocks; usually none, so only those segments are expanded)."""
    t0, t1 = timestamp_ns(day_start), timestamp_ns(day_end)
    series_s = np.zeros(len(keys), dtype=np.int64)
    series_s[day.series["code"].to_numpy()] = day.series["interval_s"].to_numpy()
    codes, starts = [], []
    for b in blocks:
        odd = (series_s[b.seg_series] > 0) & (b.seg_interval_s != series_s[b.seg_series])
        if not odd.any():
            continue
        row_odd = np.repeat(odd, b.seg_rows) & (b.start_ns >= t0) & (b.start_ns < t1)
        codes.append(np.repeat(b.seg_series, b.seg_rows)[row_odd])
        starts.append(b.start_ns[row_odd])
    if not codes:
        return pd.DataFrame(columns=[*SERIES_KEYS, "interval_start"])
    code = np.concatenate(codes)
    out = pd.DataFrame([keys.keys[c] for c in code], columns=SERIES_KEYS)
    out["interval_start"] = utc_index(np.concatenate(starts))
    return out


def _flag_stuck(table: pd.DataFrame, value: np.ndarray, flag: np.ndarray, k: int) -> None:
    """Runs of >= k equal non-zero values along a series (flag 2), on its energy channels."""
    stuck_ok = table["channel"].isin(STUCK_CHANNELS).to_numpy()
    for _, off, first, n, g in _classes(table):
        rows = np.flatnonzero(stuck_ok[first:first + n])
        if not len(rows) or g < k:
            continue
        v = value[off:off + n * g].reshape(n, g)
        v = v if len(rows) == n else v[rows]
        if k <= 1:
            hit = ~np.isnan(v) & (v != 0)
        else:
            eq = v[:, 1:] == v[:, :-1]  # NaN never equals: a gap breaks a run
            window = eq[:, : g - k + 1].copy()  # window j: cells j .. j+k-1 all equal
            for j in range(1, k - 1):
                window &= eq[:, j: j + g - k + 1]
            hit = np.zeros(v.shape, dtype=bool)
            for j in range(k):
                hit[:, j: j + g - k + 1] |= window
            hit &= v != 0
        f = flag[off:off + n * g].reshape(n, g)
        if len(rows) == n:
            f[hit] = 2
        else:
            sub = f[rows]
            sub[hit] = 2
            f[rows] = sub


def _flag_spikes(table: pd.DataFrame, value: np.ndarray, flag: np.ndarray, nameplate_kw: pd.Series) -> None:
    """|energy| above nameplate x interval x margin (flag 1, over stuck)."""
    plate = table["device_id"].map(nameplate_kw[~nameplate_kw.index.duplicated()]).to_numpy(dtype=np.float64)
    limit = np.where(table["channel"].isin(ENERGY_CHANNELS).to_numpy(),
                     plate * table["interval_s"].to_numpy() / 3600.0 * SPIKE_MARGIN, np.nan)
    for _, off, first, n, g in _classes(table):
        lim = limit[first:first + n]
        if not np.isfinite(lim).any():
            continue
        v = value[off:off + n * g].reshape(n, g)
        with np.errstate(invalid="ignore"):
            top = np.fmax(np.fmax.reduce(v, axis=1), -np.fmin.reduce(v, axis=1))
            over_rows = np.flatnonzero(top > lim)
        for r in over_rows:
            with np.errstate(invalid="ignore"):
                over = np.abs(v[r]) > lim[r]
            flag[off + r * g: off + (r + 1) * g][over] = 1
