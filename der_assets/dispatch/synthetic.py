"""Random but plausible fleets, for tests and benchmarks (no files, arrays straight away).

Sizes and power ratings follow common residential products (10-20 kWh, 5-11.5 kW); round-trip
efficiency 0.80-0.95; ~30% non-export sites and ~8% unavailable. The target profile is scaled to a
fraction of what the fleet could deliver, so a benchmark can choose an easy or impossible event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.dispatch.problem import DispatchProblem


def random_problem(
    n_batteries: int,
    n_intervals: int = 48,
    *,
    seed: int = 0,
    target_fraction: float = 0.8,
    interval_minutes: int = 5,
    iso: str = "PJM",
) -> DispatchProblem:
    """A single-battery-per-site fleet with per-interval caps, needs and a varying target.

    ``target_fraction`` is total target energy over the fleet's usable energy; above ~1 the
    event cannot be met and the plan has a shortfall.
    """
    rng = np.random.default_rng(seed)
    n, t_n = n_batteries, n_intervals
    dt = interval_minutes / 60.0
    capacity = rng.choice([10.0, 13.5, 18.0, 20.0], size=n)
    soc = capacity * rng.uniform(0.15, 1.0, size=n)
    reserve = capacity * rng.choice([0.1, 0.2, 0.3], size=n)
    max_dis = rng.choice([5.0, 7.6, 9.0, 11.5], size=n)
    max_chg = max_dis * rng.uniform(0.6, 1.0, size=n)
    eta = rng.uniform(0.80, 0.95, size=n)
    export_allowed = rng.random(n) > 0.3
    available = rng.random(n) > 0.08
    hours = (np.arange(t_n) * dt)[None, :]
    load = np.clip(rng.uniform(0.5, 3.0, (n, 1)) + rng.normal(0, 0.8, (n, t_n)), 0, None)
    pv = np.clip(rng.uniform(0.0, 4.0, (n, 1)) * np.maximum(1 - hours / 3.0, 0) + rng.normal(0, 0.2, (n, t_n)), 0, None)
    netload = np.maximum(load - pv, 0.0)
    cap = np.where(available, max_dis, 0.0)[:, None] * np.ones((1, t_n))
    cap = np.where(~export_allowed[:, None], np.minimum(cap, netload), cap)
    need = rng.uniform(0.0, 12.0, size=n)
    usable = np.maximum(soc - reserve, 0) * np.sqrt(eta)
    deliverable = np.minimum(usable, cap.sum(axis=1) * dt).sum()
    shape = 1.0 + 0.4 * np.sin(np.linspace(0, np.pi, t_n)) + rng.uniform(-0.3, 0.3, t_n)
    target = shape / (shape.sum() * dt) * deliverable * target_fraction
    return DispatchProblem(
        battery_id=np.array([f"B{i}" for i in range(n)], dtype=object),
        site_id=np.array([f"S{i}" for i in range(n)], dtype=object),
        capacity_kwh=capacity,
        soc_kwh=soc,
        reserve_kwh=reserve,
        max_discharge_kw=max_dis,
        max_charge_kw=max_chg,
        efficiency=eta,
        export_allowed=export_allowed,
        available=available,
        cap_kw=cap,
        target_kw=target,
        dt_h=dt,
        need_kwh=need,
        netload_kw=netload,
        interval_start=pd.date_range("2026-07-15T18:00:00Z", periods=t_n, freq=f"{interval_minutes}min"),
        instruction_id=f"SYNTH-{n}x{t_n}-{seed}",
        iso=iso,
    )
