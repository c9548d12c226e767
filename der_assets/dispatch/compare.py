"""Side-by-side comparison of the optimizer and the two rule baselines.

Reports, per plan: shortfall, subscriber energy lost (bought back at retail), how unevenly the
burden falls (Gini and max/mean of energy taken per subscriber), the priced objective and any
hard-constraint violations. Burden is measured per subscriber (site) over those who could take
part at all, so opted-out subscribers do not make every plan look unfair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.dispatch.baselines import iso_first, self_consumption_first
from der_assets.dispatch.optimizer import check_hard_constraints, evaluate_plan, solve_fast
from der_assets.dispatch.problem import DispatchProblem, Prices


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 = all equal, ->1 = one carries everything."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0 or x.sum() <= 0:
        return 0.0
    n = x.size
    ranks = np.arange(1, n + 1)
    return float((2 * ranks - n - 1) @ x / (n * x.sum()))


def compare_plans(problem: DispatchProblem, plans: dict[str, np.ndarray] | None = None, prices: Prices | None = None) -> pd.DataFrame:
    """One row per plan; defaults to optimizer, iso_first and self_consumption_first."""
    prices = prices or problem.default_prices()
    if plans is None:
        plans = {
            "optimizer": solve_fast(problem, prices).setpoint_kw,
            "iso_first": iso_first(problem),
            "self_consumption_first": self_consumption_first(problem),
        }
    participating = (problem.cap_kw > 0).any(axis=1) & (problem.usable_kwh > 0)
    sites = pd.Index(problem.site_id[participating].astype(str))
    rows = []
    for name, setpoint in plans.items():
        ev = evaluate_plan(problem, setpoint, prices)
        per_site = pd.Series(ev["taken_kwh"][participating]).groupby(sites).sum().to_numpy()
        mean = per_site.mean() if per_site.size else 0.0
        rows.append(
            {
                "plan": name,
                "shortfall_kwh": ev["shortfall_kwh"],
                "delivered_kwh": ev["delivered_kwh"],
                "subscriber_energy_lost_kwh": ev["subscriber_impact_kwh"],
                "subscribers_hurt": int((ev["impact_kwh"] > 1e-6).sum()),
                "taken_gini": gini(per_site),
                "taken_max_over_mean": float(per_site.max() / mean) if mean > 0 else 0.0,
                "objective_usd": ev["objective_usd"],
                "violations": len(check_hard_constraints(problem, setpoint)),
            }
        )
    return pd.DataFrame(rows).set_index("plan")
