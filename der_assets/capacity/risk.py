"""The screening risk model of a commitment Q (kW of ICAP), DESIGN.md "Capacity contract".

    revenue(Q) = Q * class_rating * capacity_price_usd_mw_day * days_in_period / 1000
    penalty(Q) = penalty_rate_usd_mwh * event_hours * mean_d max(0, Q - fleet_kw(d)) / 1000

revenue - penalty is concave and piecewise linear in Q with breakpoints at the daily totals,
so its maximum over [0, max daily total] is at 0 or at one of the totals: all are evaluated
exactly (no grid search). Among equal optima the smallest Q is taken (less exposure for the
same expected value). This is the newsvendor rule: commit up to the total that is met on a
share of days of at least 1 - revenue slope / penalty slope.
"""

from __future__ import annotations

import numpy as np

from der_assets.capacity.distribution import exceedance_quantile


def revenue_usd(commit_kw: np.ndarray | float, class_rating: float, price_usd_mw_day: float, days: int) -> np.ndarray:
    """Expected capacity revenue for commitment(s) in kW of ICAP, USD."""
    return np.asarray(commit_kw, dtype=float) * class_rating * price_usd_mw_day * days / 1000.0


def penalty_usd(commit_kw: np.ndarray | float, daily_kw: np.ndarray, rate_usd_mwh: float, event_hours: float) -> np.ndarray:
    """Expected non-performance charge: rate x hours x mean shortfall over sample days, USD."""
    q = np.atleast_1d(np.asarray(commit_kw, dtype=float))
    shortfall = np.maximum(0.0, q[:, None] - np.asarray(daily_kw, dtype=float)[None, :]).mean(axis=1)
    out = rate_usd_mwh * event_hours * shortfall / 1000.0
    return out if np.ndim(commit_kw) else out[0]


def recommended_commit_kw(daily_kw: np.ndarray, class_rating: float, price_usd_mw_day: float, days: int,
                          rate_usd_mwh: float, event_hours: float) -> float:
    """The Q in [0, max daily total] maximizing revenue - penalty, evaluated at every breakpoint, kW."""
    x = np.sort(np.asarray(daily_kw, dtype=float))
    n = x.size
    candidates = np.concatenate([[0.0], x])
    # mean max(0, x_k - x_j) over j, for each candidate, by cumulative sums (O(n log n))
    below = np.searchsorted(x, candidates, side="right")
    csum = np.concatenate([[0.0], np.cumsum(x)])
    mean_short = (below * candidates - csum[below]) / n
    value = (candidates * class_rating * price_usd_mw_day * days / 1000.0
             - rate_usd_mwh * event_hours * mean_short / 1000.0)
    best = np.flatnonzero(value >= value.max() - 1e-9 * max(1.0, abs(value.max())))[0]
    return float(candidates[best])


def commit_at_risk_kw(daily_kw: np.ndarray, risk: float) -> float:
    """The commitment met on a share `risk` of sample days (risk 0.9 -> deliverable P90), kW."""
    return float(exceedance_quantile(np.asarray(daily_kw, dtype=float), risk))
