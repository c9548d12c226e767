"""Meter rows as one dense [meter x time slot] array of kW, so every baseline is array slicing.

Built once per call, for every event and method; each of them after that only gathers the few
slots its rule reads. A slot is NaN unless metered energy covers all of it: a missing reading
never becomes a zero. Building it is the cost of a settlement run, so the usual input takes a
short path: rows sorted by meter (read_meter_csv, the warehouse) give their meter codes from the
run boundaries, without hashing every id, and a complete month of one interval length is its own
matrix. Anything else (gaps, mixed lengths, duplicates, any row order) is binned_matrix, the
general path the short ones are tested equal to.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from der_assets.errors import UserError

NS = 1_000_000_000
MAX_CELLS = 600_000_000  # ~4.8 GB of float64: more is a caller asking for too long a span at once


@dataclasses.dataclass(frozen=True, eq=False)
class MeterMatrix:
    """kw[i, s]: mean grid draw (kW, + import) of meter_ids[i] over [t0 + s*step_s, + step_s), UTC."""

    meter_ids: np.ndarray
    t0_ns: int
    step_s: int
    kw: np.ndarray

    @property
    def n_slots(self) -> int:
        return self.kw.shape[1]

    def slots(self, times_ns: np.ndarray) -> np.ndarray:
        """Slot index per UTC instant (int64 ns); -1 off the grid or outside the matrix."""
        times_ns = np.asarray(times_ns, dtype=np.int64)
        rel = times_ns - self.t0_ns
        step = self.step_s * NS
        slot = np.floor_divide(rel, step)
        ok = (rel % step == 0) & (slot >= 0) & (slot < self.n_slots)
        return np.where(ok, slot, -1)

    def take(self, slots: np.ndarray) -> np.ndarray:
        """kw at slot indices of any shape -> [n_meters, *shape]; NaN where the index is -1."""
        slots = np.asarray(slots)
        flat = slots.reshape(-1)
        if self.n_slots == 0:
            return np.full((self.kw.shape[0],) + slots.shape, np.nan)
        out = self.kw[:, np.where(flat >= 0, flat, 0)]
        if (flat < 0).any():
            out[:, flat < 0] = np.nan
        return out.reshape((self.kw.shape[0],) + slots.shape)

    def time_ns(self, slot: int) -> int:
        return self.t0_ns + int(slot) * self.step_s * NS


def meter_codes(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, meter ids sorted by their text) so that uniques[codes] is the row's meter.

    Rows already grouped by meter in sorted order (what read_meter_csv and the warehouse give)
    are read off their run boundaries, with no hashing of 30 M strings; any other order is
    factorized. Compute it once and pass it to prepare_meter for every span of the same rows.
    """
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes = ids.cat.codes.to_numpy().astype(np.int64)
        uniques = np.asarray(ids.cat.categories, dtype=object)
    else:
        values = ids.to_numpy()
        if values.dtype == object and len(values):
            firsts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1])
            uniques = values[firsts]
            if all(isinstance(u, str) for u in uniques):
                text = uniques.astype(str)
                if (text[1:] > text[:-1]).all():  # each meter one run, runs in sorted order
                    lengths = np.diff(np.append(firsts, len(values)))
                    return np.repeat(np.arange(len(firsts), dtype=np.int64), lengths), uniques
        codes, uniques = pd.factorize(values)
        codes = codes.astype(np.int64)
    # meters in sorted order, whatever order the rows came in
    order = np.argsort(np.asarray(uniques).astype(str), kind="stable")
    if not (order == np.arange(len(order))).all():
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        codes = rank[codes]
    return codes, np.asarray(uniques, dtype=object)[order]


def prepare_meter(meter: pd.DataFrame, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                  *, codes: tuple[np.ndarray, np.ndarray] | None = None) -> MeterMatrix:
    """METER rows (meter_id, interval_start UTC, interval_s, grid_kwh) -> MeterMatrix.

    Only rows starting in [start, end) are kept when given. The slot width is the least common
    multiple of the interval lengths (15-minute rows give 900 s slots; a mix of 15- and 60-minute
    meters gives 3600 s). Call it once and pass the result to compute_baseline for many events.
    codes: meter_codes(meter["meter_id"]), when the caller has it already.
    """
    t = meter["interval_start"]
    if not isinstance(t.dtype, pd.DatetimeTZDtype):
        t = pd.to_datetime(t, utc=True)
    t_ns = pd.DatetimeIndex(t).as_unit("ns").asi8  # UTC epoch nanoseconds
    interval_s = meter["interval_s"].to_numpy(dtype=np.int64)
    kwh = meter["grid_kwh"].to_numpy(dtype=np.float64)
    # a meter with no row in the span keeps its (all-NaN) row, so it is reported as missing rather than dropped
    codes, uniques = codes if codes is not None else meter_codes(meter["meter_id"])
    if len(t_ns):
        complete = _complete_matrix(uniques, codes, t_ns, interval_s, kwh, start, end)
        if complete is not None:
            return complete
    keep = span_mask(t_ns, start, end)
    if len(t_ns) and (keep is None or keep.any()):
        regular = _regular_matrix(uniques, codes, t_ns, interval_s, kwh, keep)
        if regular is not None:
            return regular
    return binned_matrix(uniques, codes, t_ns, interval_s, kwh, keep, start)


def span_mask(t_ns: np.ndarray, start: pd.Timestamp | None, end: pd.Timestamp | None) -> np.ndarray | None:
    """Rows starting in [start, end); None when that is every row."""
    keep = None
    if start is not None:
        keep = t_ns >= pd.Timestamp(start).value
    if end is not None:
        k2 = t_ns < pd.Timestamp(end).value
        keep = k2 if keep is None else keep & k2
    return None if keep is not None and keep.all() else keep


def binned_matrix(uniques: np.ndarray, codes: np.ndarray, t_ns: np.ndarray, interval_s: np.ndarray,
                  kwh: np.ndarray, keep: np.ndarray | None, start: pd.Timestamp | None = None) -> MeterMatrix:
    """The general path, for rows in any order, of mixed lengths, with gaps and duplicates: the kept
    rows' energy and covered seconds summed per slot; a slot is metered only when covered exactly.
    The faster paths of prepare_meter are held equal to it (der_assets_tests/settlement_baselines)."""
    if keep is not None:
        t_ns, interval_s, kwh, codes = t_ns[keep], interval_s[keep], kwh[keep], codes[keep]
    if len(t_ns) == 0:
        return MeterMatrix(uniques, int(pd.Timestamp(start or 0).value), 3600, np.empty((len(uniques), 0)))
    lo, hi = int(interval_s.min()), int(interval_s.max())
    step_s = lo if lo == hi else int(math.lcm(*[int(s) for s in np.unique(interval_s)]))
    step_ns = step_s * NS
    t0 = int(t_ns.min() // step_ns * step_ns)
    slot = (t_ns - t0) // step_ns
    n_slots = int(slot.max()) + 1
    n_cells = _cells(len(uniques), n_slots, step_s)
    flat = codes * n_slots + slot
    if lo == hi and (len(flat) < 2 or bool((flat[1:] > flat[:-1]).all())):  # each row exactly one slot
        kw = np.full(n_cells, np.nan)
        kw[flat] = kwh * (3600.0 / step_s)
    else:
        valid = ~np.isnan(kwh)
        energy = np.bincount(flat[valid], weights=kwh[valid], minlength=n_cells)
        covered = np.bincount(flat[valid], weights=interval_s[valid].astype(np.float64), minlength=n_cells)
        kw = np.where(covered == step_s, energy / (step_s / 3600.0), np.nan)  # a duplicate covers twice: NaN
    return MeterMatrix(uniques, t0, step_s, kw.reshape(len(uniques), n_slots))


def _cells(n_meters: int, n_slots: int, step_s: int) -> int:
    if n_meters * n_slots > MAX_CELLS:
        raise UserError(f"meter data spans {n_meters} meters x {n_slots} slots of {step_s} s: too large at once; "
                        "pass fewer meters or a shorter span")
    return n_meters * n_slots


def _complete_matrix(uniques: np.ndarray, codes: np.ndarray, t_ns: np.ndarray, interval_s: np.ndarray,
                     kwh: np.ndarray, start: pd.Timestamp | None, end: pd.Timestamp | None) -> MeterMatrix | None:
    """The usual AMI month with no mask, division or scatter over its rows: every meter has a row for
    every slot of one interval length, on the grid, in (meter, time) order. The rows then are the
    matrix, and a span is a range of its columns (each column is one instant). None otherwise."""
    m = len(uniques)
    if m == 0 or len(t_ns) % m:
        return None
    n = len(t_ns) // m
    step_s = int(interval_s[0])
    step_ns = step_s * NS
    t0 = int(t_ns[0])
    if t0 % step_ns or not (interval_s == step_s).all():
        return None
    times = t0 + np.arange(n, dtype=np.int64) * step_ns
    if not (t_ns.reshape(m, n) == times).all() or not (codes.reshape(m, n) == np.arange(m)[:, None]).all():
        return None
    c0 = 0 if start is None else int(np.searchsorted(times, pd.Timestamp(start).value))
    c1 = n if end is None else int(np.searchsorted(times, pd.Timestamp(end).value))
    if c1 <= c0 or m * (c1 - c0) > MAX_CELLS:
        return None  # the general path reports an empty span, or refuses one too large
    return MeterMatrix(uniques, int(times[c0]), step_s, kwh.reshape(m, n)[:, c0:c1] * (3600.0 / step_s))


def _regular_matrix(uniques: np.ndarray, codes: np.ndarray, t_ns: np.ndarray, interval_s: np.ndarray,
                    kwh: np.ndarray, keep: np.ndarray | None) -> MeterMatrix | None:
    """Rows with gaps, with no bincount and no row copy: one interval length, rows in (meter, time)
    order with no duplicates, so each row is exactly one slot. The span's columns are cut from the
    matrix of all rows, when they hold exactly the rows in the span and the span keeps most rows
    (else copying the span's rows costs less memory). None otherwise."""
    step_s = int(interval_s[0])
    if not (interval_s == step_s).all():
        return None
    step_ns = step_s * NS
    t0 = int(t_ns.min() // step_ns * step_ns)
    slot = (t_ns - t0) // step_ns
    n_slots = int(slot.max()) + 1
    n_cells = len(uniques) * n_slots
    if n_cells > MAX_CELLS or (keep is not None and 2 * np.count_nonzero(keep) < len(keep)):
        return None  # the general path checks the size of the span alone, and copies only its rows
    flat = codes * n_slots + slot
    if len(flat) > 1 and not bool((flat[1:] > flat[:-1]).all()):
        return None
    c0, c1, first = 0, n_slots, t0
    if keep is not None:
        first = int(t_ns.min(where=keep, initial=np.iinfo(np.int64).max)) // step_ns * step_ns
        c0, c1 = (first - t0) // step_ns, int(slot.max(where=keep, initial=-1)) + 1
        if ((slot >= c0) & (slot < c1) & ~keep).any():  # an off-grid row outside the span shares a column
            return None
    kw = np.full(n_cells, np.nan)
    kw[flat] = kwh * (3600.0 / step_s)
    return MeterMatrix(uniques, first, step_s, kw.reshape(len(uniques), n_slots)[:, c0:c1])
