"""Final event performance from the utility meters, once AMI data has arrived.

The battery telemetry (performance.py) says what the batteries put out; the ISO settles on the
meter. Here each commanded site's drop in grid draw below a baseline is measured per instruction
interval, from revision-1 AMI rows (Green Button, quality-flagged like every series).

Baseline: PJM's "Same Day (3+2)" customer baseline, computed by the settlement package
(der_assets.settlement.baselines.pjm_same_day, one rule for dispatch and settlement; its window
lengths are data in settlement/params/baselines.csv, VERIFIED-SECONDARY, RTO Insider
2025-02-25): the average hourly load over the 3 hours before the event, after skipping the hour
just before it, and the 2 hours after the event, after skipping the hour just after it (event
HE13-17 -> HE9-11 and HE19-20). Here "load" is the site's net grid energy at the meter
(grid_kwh, + import), the quantity a behind-the-meter battery changes. The baseline is one flat
level per site for the whole event.

Nothing is filled in: a site without every baseline interval, or without a meter value for an
event interval, contributes nothing to that interval and is counted in `sites_missing`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.dispatch.performance import overlap_share, with_row_end
from der_assets.settlement.baselines import method_params, prepare_meter
from der_assets.settlement.baselines import pjm_same_day

BASELINE_METHOD = pjm_same_day.NAME


def baseline_windows(event_start: pd.Timestamp, event_end: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The two [start, end) windows the Same Day (3+2) baseline averages, UTC."""
    return pjm_same_day.windows(event_start, event_end, method_params(BASELINE_METHOD))


def same_day_baseline_kw(ami: pd.DataFrame, sites: list[str], event_start: pd.Timestamp,
                         event_end: pd.Timestamp) -> pd.Series:
    """Per site: mean grid draw (kW) over the baseline windows; NaN unless every interval of
    both windows has a metered value.

    ami: canonical grid_kwh rows (site_id, interval_start, interval_s, value, quality).
    """
    params = method_params(BASELINE_METHOD)
    (a, _), (_, b) = pjm_same_day.windows(event_start, event_end, params)
    grid = ami[(ami["channel"] == "grid_kwh") & ami["site_id"].isin(sites)]
    meter = pd.DataFrame({"meter_id": grid["site_id"].astype(str), "interval_start": grid["interval_start"],
                          "interval_s": grid["interval_s"], "grid_kwh": grid["value"]})
    mx = prepare_meter(meter, a, b)
    kw = pd.Series(pjm_same_day.level_kw(mx, event_start, event_end, params), index=mx.meter_ids, dtype=float)
    return kw.reindex(sites)


def metered_delivery(ami: pd.DataFrame, sites: list[str], instruction_start: pd.DatetimeIndex,
                     target_kw: np.ndarray, interval_minutes: int) -> pd.DataFrame:
    """Per instruction interval: instructed_kwh, baseline_kwh, metered_kwh, reduction_kwh,
    delivered_pct, apportioned, sites, sites_missing.

    A meter interval longer than the instruction's (AMI is usually 15 or 60 minutes) is spread
    evenly over the instruction intervals it covers, and those intervals say so (`apportioned`).
    """
    step = pd.Timedelta(minutes=interval_minutes)
    dt_h = interval_minutes / 60.0
    event_start, event_end = instruction_start[0], instruction_start[-1] + step
    base_kw = same_day_baseline_kw(ami, sites, event_start, event_end)
    grid = ami[(ami["channel"] == "grid_kwh") & ami["site_id"].isin(sites)]
    grid = with_row_end(grid)
    out = []
    for t, kw in zip(instruction_start, target_kw, strict=True):
        t_end = t + step
        inside, share = overlap_share(grid, t, t_end)
        metered = (inside["value"] * share).groupby(inside["site_id"]).sum(min_count=1)
        covered = (share * inside["interval_s"]).where(inside["value"].notna()).groupby(inside["site_id"]).sum()
        full = covered[covered >= step.total_seconds() - 1e-6].index
        counted = [s for s in sites if s in full and np.isfinite(base_kw.get(s, np.nan))]
        # no site measurable in this interval: unknown (NaN), never a measured 0 kWh reduction
        baseline = float(base_kw[counted].sum() * dt_h) if counted else np.nan
        meter = float(metered[counted].sum()) if counted else np.nan
        reduction = baseline - meter
        instructed = float(kw) * dt_h
        out.append({"interval_start": t, "instructed_kwh": round(instructed, 6), "baseline_kwh": round(baseline, 6),
                    "metered_kwh": round(meter, 6), "reduction_kwh": round(reduction, 6),
                    "delivered_pct": round(100.0 * reduction / instructed, 2) if instructed > 0 and counted else np.nan,
                    "apportioned": bool((share < 1 - 1e-9).any()), "sites": len(counted),
                    "sites_missing": len(sites) - len(counted)})
    return pd.DataFrame(out)
