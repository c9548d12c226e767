"""Meter rows as one dense [meter x time slot] array of kW, so every baseline is array slicing.

Built once (one factorize plus two bincounts over the rows, about one pandas groupby pass);
each event and method after that only gathers the few slots its rule reads. A slot is NaN
unless metered energy covers all of it: a missing reading never becomes a zero.
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


def prepare_meter(meter: pd.DataFrame, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
                  ) -> MeterMatrix:
    """METER rows (meter_id, interval_start UTC, interval_s, grid_kwh) -> MeterMatrix.

    Only rows starting in [start, end) are kept when given. The slot width is the least common
    multiple of the interval lengths (15-minute rows give 900 s slots; a mix of 15- and 60-minute
    meters gives 3600 s). Call it once and pass the result to compute_baseline for many events.
    """
    t = meter["interval_start"]
    if not isinstance(t.dtype, pd.DatetimeTZDtype):
        t = pd.to_datetime(t, utc=True)
    t_ns = pd.DatetimeIndex(t).as_unit("ns").asi8  # UTC epoch nanoseconds
    keep = None
    if start is not None:
        keep = t_ns >= pd.Timestamp(start).value
    if end is not None:
        k2 = t_ns < pd.Timestamp(end).value
        keep = k2 if keep is None else keep & k2
    ids = meter["meter_id"]
    interval_s = meter["interval_s"].to_numpy(dtype=np.int64)
    kwh = meter["grid_kwh"].to_numpy(dtype=np.float64)
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes = ids.cat.codes.to_numpy().astype(np.int64)
        uniques = np.asarray(ids.cat.categories, dtype=object)
    else:
        codes, uniques = pd.factorize(ids.to_numpy())
        codes = codes.astype(np.int64)
    # meters in sorted order, whatever order the rows came in; a meter with no row in the span
    # keeps its (all-NaN) row, so it is reported as missing rather than dropped
    order = np.argsort(np.asarray(uniques).astype(str), kind="stable")
    if not (order == np.arange(len(order))).all():  # rows sorted by meter already give sorted codes
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        codes = rank[codes]
    uniques = np.asarray(uniques, dtype=object)[order]
    if keep is not None and keep.all():
        keep = None  # nothing outside the span: no copies
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
    n_cells = len(uniques) * n_slots
    if n_cells > MAX_CELLS:
        raise UserError(f"meter data spans {len(uniques)} meters x {n_slots} slots of {step_s} s: too large at once; "
                        "pass fewer meters or a shorter span")
    flat = codes * n_slots + slot
    if lo == hi and (len(flat) < 2 or bool((flat[1:] > flat[:-1]).all())):
        # one interval length, rows in order, no duplicates: each row is exactly one slot
        if len(flat) == n_cells:  # every slot present: the rows already are the matrix
            kw = kwh * (3600.0 / step_s)
        else:
            kw = np.full(n_cells, np.nan)
            kw[flat] = kwh * (3600.0 / step_s)
    else:
        valid = ~np.isnan(kwh)
        energy = np.bincount(flat[valid], weights=kwh[valid], minlength=n_cells)
        covered = np.bincount(flat[valid], weights=interval_s[valid].astype(np.float64), minlength=n_cells)
        kw = np.where(covered == step_s, energy / (step_s / 3600.0), np.nan)  # a duplicate covers twice: NaN
    return MeterMatrix(uniques, t0, step_s, kw.reshape(len(uniques), n_slots))
