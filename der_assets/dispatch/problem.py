"""The dispatch problem as arrays, and the prices of its objective.

Everything downstream (fast path, cvxpy reference, baselines, comparison) works on one
``DispatchProblem`` so they all see the same caps, needs and prices. Shapes: N batteries,
T intervals; ``(N, T)`` arrays are battery-by-interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Non-performance rates, $/MWh. market-and-anchors.md: PJM PAI rate ~ $2,300/MWh (2027/28, [V3]);
# ISO-NE PFP rate $9,337/MWh since 2025-06-01 ([V3]). NYISO has no verified figure there, so it
# falls back to the PJM rate, the lower (less aggressive) of the two; override with Prices(...).
NON_PERFORMANCE_USD_PER_MWH = {"PJM": 2300.0, "ISO-NE": 9337.0, "ISONE": 9337.0}
DEFAULT_NON_PERFORMANCE_USD_PER_MWH = 2300.0


@dataclass(frozen=True)
class Prices:
    """Prices of the objective terms, in dollars (see docs/dispatch.md "Objective").

    - ``shortfall_usd_per_kwh``: the ISO non-performance rate; kWh of target not delivered.
    - ``retail_usd_per_kwh``: subscriber impact; kWh the subscriber's post-event load would
      have taken from its battery and now buys from the grid. Default: a US average residential
      rate (about 17 c/kWh, an assumption; pass the tariff's rate when known).
    - ``fairness_usd_per_kwh2``: times the sum of squares of per-subscriber energy taken (kWh).
      A quadratic makes equal shares cheapest; small enough that it never buys subscriber impact
      (see ``lexicographic_margin_usd_per_kwh``).
    - ``degradation_usd_per_kwh``: per kWh of cell throughput (discharge p*dt/sqrt(eta)); about a
      battery's replacement cost over its lifetime throughput (an assumption).
    """

    shortfall_usd_per_kwh: float = DEFAULT_NON_PERFORMANCE_USD_PER_MWH / 1000.0
    retail_usd_per_kwh: float = 0.17
    fairness_usd_per_kwh2: float = 0.002
    degradation_usd_per_kwh: float = 0.05

    @classmethod
    def for_iso(cls, iso: str | None, **overrides: float) -> "Prices":
        """Default prices with the shortfall priced at ``iso``'s non-performance rate."""
        key = (iso or "").upper().replace("_", "-")
        rate = NON_PERFORMANCE_USD_PER_MWH.get(key, DEFAULT_NON_PERFORMANCE_USD_PER_MWH)
        return cls(**{"shortfall_usd_per_kwh": rate / 1000.0, **overrides})


@dataclass
class DispatchProblem:
    """One instruction against one fleet, reduced to arrays.

    ``cap_kw[i, t]`` is battery i's discharge cap in interval t after availability, the non-export
    cap and program agreements; the optimizer only ever sees this. ``netload_kw`` (the site's
    max(0, load - pv), NaN where the forecast has no value) is kept so plans can be checked
    against the physics, not just against ``cap_kw``.
    """

    battery_id: np.ndarray
    site_id: np.ndarray
    capacity_kwh: np.ndarray
    soc_kwh: np.ndarray
    reserve_kwh: np.ndarray
    max_discharge_kw: np.ndarray
    max_charge_kw: np.ndarray
    efficiency: np.ndarray
    export_allowed: np.ndarray
    available: np.ndarray
    cap_kw: np.ndarray
    target_kw: np.ndarray
    dt_h: float
    need_kwh: np.ndarray
    netload_kw: np.ndarray | None = None
    interval_start: pd.DatetimeIndex | None = None
    instruction_id: str = ""
    iso: str = "PJM"
    warnings: list[str] = field(default_factory=list)

    @property
    def n_batteries(self) -> int:
        return int(self.cap_kw.shape[0])

    @property
    def n_intervals(self) -> int:
        return int(self.cap_kw.shape[1])

    @property
    def sqrt_eta(self) -> np.ndarray:
        return np.sqrt(self.efficiency)

    @property
    def usable_kwh(self) -> np.ndarray:
        """Energy each battery can deliver at its terminals above reserve: (soc - reserve)*sqrt(eta)."""
        return np.maximum(self.soc_kwh - self.reserve_kwh, 0.0) * self.sqrt_eta

    @property
    def surplus_kwh(self) -> np.ndarray:
        """Usable energy beyond the subscriber's post-event need; taking it hurts nobody."""
        return np.maximum(self.usable_kwh - self.need_kwh, 0.0)

    @property
    def target_kwh(self) -> float:
        return float(self.target_kw.sum() * self.dt_h)

    def default_prices(self) -> Prices:
        return Prices.for_iso(self.iso)


def lexicographic_margin_usd_per_kwh(problem: DispatchProblem, prices: Prices) -> dict[str, float]:
    """How far the prices are from breaking the intended priority order (positive = safe).

    ``shortfall``: shortfall price minus the largest marginal secondary cost of delivering one more
    kWh; positive means the priced optimum has the minimum shortfall. ``impact``: retail price minus
    the most the fairness and degradation terms can gain by shifting one kWh onto a subscriber who
    then loses it; positive means fairness never buys subscriber impact.
    """
    w = 1.0 / problem.sqrt_eta
    e_max = float(problem.usable_kwh.max(initial=0.0))
    worst_secondary = (
        prices.retail_usd_per_kwh + 2 * prices.fairness_usd_per_kwh2 * e_max + prices.degradation_usd_per_kwh * float(w.max(initial=1.0))
    )
    fairness_gain = 2 * prices.fairness_usd_per_kwh2 * e_max + prices.degradation_usd_per_kwh * float(
        w.max(initial=1.0) - w.min(initial=1.0)
    )
    return {
        "shortfall": prices.shortfall_usd_per_kwh - worst_secondary,
        "impact": prices.retail_usd_per_kwh - fairness_gain,
    }
