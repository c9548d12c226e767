"""The two simple rules the optimizer has to beat.

Both are myopic (interval by interval, no look-ahead) and respect every hard constraint, so the
comparison is about the trade-off, not about validity.

- ``iso_first``: the ISO gets everything. Each interval the target is split across batteries in
  proportion to their remaining usable energy (they drain pro rata), capped by power.
- ``self_consumption_first``: each battery only gives its surplus over its subscriber's own
  post-event need; the same pro-rata split on what is left of that surplus.
"""

from __future__ import annotations

import numpy as np

from der_assets.dispatch.problem import DispatchProblem


def _pro_rata(problem: DispatchProblem, budget_kwh: np.ndarray) -> np.ndarray:
    dt = problem.dt_h
    n, t_n = problem.cap_kw.shape
    remaining = np.maximum(budget_kwh.astype(float), 0.0).copy()
    out = np.zeros((n, t_n))
    for t in range(t_n):
        cap = np.minimum(problem.cap_kw[:, t], remaining / dt)
        cap = np.maximum(cap, 0.0)
        want = min(float(problem.target_kw[t]), float(cap.sum()))
        if want <= 0:
            continue
        weight = remaining
        # p_i = min(cap_i, alpha * weight_i); find alpha with sum p = want (bisection, monotone).
        lo, hi = 0.0, 1.0
        while np.minimum(cap, hi * weight).sum() < want and hi < 1e30:
            hi *= 2.0
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if np.minimum(cap, mid * weight).sum() < want:
                lo = mid
            else:
                hi = mid
        p = np.minimum(cap, lo * weight)  # alpha from below: never above target
        out[:, t] = p
        remaining = np.maximum(remaining - p * dt, 0.0)
    return out


def iso_first(problem: DispatchProblem) -> np.ndarray:
    """Setpoints (kW) that drain every battery pro rata towards the target, ignoring subscribers."""
    return _pro_rata(problem, problem.usable_kwh)


def self_consumption_first(problem: DispatchProblem) -> np.ndarray:
    """Setpoints (kW) that give the ISO only each battery's surplus over its subscriber's need."""
    return _pro_rata(problem, problem.surplus_kwh)
