"""Fleet distribution: sum the sites per day first, then take quantiles of the daily totals.

The fleet P90 is never the sum of the sites' P90s: a hot day empties many batteries at once,
so site shortfalls are correlated and only the daily sum sees that.

Quantile rule (exceedance, no interpolation): with n daily totals sorted ascending x(1..n),
deliverable_pXX is the largest total met or exceeded on at least XX % of the days, i.e.
x(floor(n * (1 - XX/100)) + 1). For totals 1..10, P90 = 2 (9 of 10 days reach it) and P50 = 6
(5 of 10 days). Every reported quantile is one of the observed totals, so a synthetic fleet
recovers it exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def exceedance_quantile(totals_kw: np.ndarray, level: float, axis: int = -1) -> np.ndarray:
    """Largest value met or exceeded on at least `level` (0-1) of the samples along `axis`, kW.

    level 0.9 gives P90 (the 10th percentile read from below, no interpolation).
    """
    x = np.sort(np.asarray(totals_kw, dtype=float), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("no samples")
    k = int(np.floor(n * (1.0 - level) + 1e-9))
    k = min(max(k, 0), n - 1)
    return np.take(x, k, axis=axis)


def daily_totals(deliverable_kw: np.ndarray, groups: np.ndarray | None = None, n_groups: int = 1) -> np.ndarray:
    """(n_groups, n_days) sums of site deliverables per day, kW; one fleet row when groups is None."""
    if groups is None:
        return deliverable_kw.sum(axis=0, keepdims=True)
    out = np.zeros((n_groups, deliverable_kw.shape[1]))
    np.add.at(out, groups, deliverable_kw)
    return out


def bootstrap_interval(totals_kw: np.ndarray, level: float, n_boot: int = 1000, seed: int = 0,
                       ci: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap interval over days for the exceedance quantile of each row of totals_kw (groups x days).

    Days are resampled with replacement (seeded, so reruns agree); the interval is the
    central `ci` of the resampled quantiles.
    """
    totals_kw = np.atleast_2d(totals_kw)
    n = totals_kw.shape[1]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    lows, highs = [], []
    for row in totals_kw:  # one pass per group (resources, zones: few), vectorized over resamples
        q = exceedance_quantile(row[idx], level, axis=1)
        lows.append(np.quantile(q, lo_q))
        highs.append(np.quantile(q, hi_q))
    return np.array(lows), np.array(highs)


def by_group(deliverable_kw: np.ndarray, sites: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """P50 and P90 of the daily totals per resource, zone and ISO, with bootstrap intervals (kW)."""
    frames = []
    for level_name in ("resource", "zone", "iso"):
        codes, names = pd.factorize(sites[level_name].astype(str))
        totals = daily_totals(deliverable_kw, codes, len(names))
        row = {"level": level_name, "group": list(names), "n_sites": np.bincount(codes, minlength=len(names)),
               "nameplate_kw": np.bincount(codes, weights=sites["nameplate_kw"], minlength=len(names))}
        for lvl, tag in ((0.5, "p50"), (0.9, "p90")):
            lo, hi = bootstrap_interval(totals, lvl, n_boot=n_boot, seed=seed)
            row[f"deliverable_{tag}_kw"] = exceedance_quantile(totals, lvl, axis=1)
            row[f"deliverable_{tag}_lo_kw"] = lo
            row[f"deliverable_{tag}_hi_kw"] = hi
        frames.append(pd.DataFrame(row))
    return pd.concat(frames, ignore_index=True)
