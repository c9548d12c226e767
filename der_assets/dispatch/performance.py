"""Event performance: delivered against instructed, per instruction interval, from battery telemetry.

Delivered energy is the commanded batteries' discharge (+ battery_kwh). A telemetry interval
longer than the instruction's (Enphase reports batteries every 15 minutes) is spread evenly
over the instruction intervals it covers, and those intervals say so (`apportioned`). A
battery that did not report is counted as not delivered and counted in `batteries_missing`,
never filled in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def with_row_end(rows: pd.DataFrame) -> pd.DataFrame:
    """Canonical rows with the end of each interval, for overlap_share."""
    return rows.assign(row_end=rows["interval_start"] + pd.to_timedelta(rows["interval_s"], unit="s"))


def overlap_share(rows: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    """Rows (with row_end) overlapping [start, end) and the share of each row's interval inside it:
    a 15-minute value is spread evenly over the 5-minute intervals it covers."""
    inside = rows[(rows["interval_start"] < end) & (rows["row_end"] > start)]
    overlap_s = (inside["row_end"].clip(upper=end) - inside["interval_start"].clip(lower=start)).dt.total_seconds()
    return inside, overlap_s / inside["interval_s"]


def delivery(battery_rows: pd.DataFrame, instruction_start: pd.DatetimeIndex, target_kw: np.ndarray,
             interval_minutes: int, batteries: list[str]) -> pd.DataFrame:
    """Per instruction interval: instructed_kwh, delivered_kwh, delivered_pct, apportioned, batteries_missing."""
    dt_h = interval_minutes / 60.0
    step = pd.Timedelta(minutes=interval_minutes)
    rows = battery_rows[(battery_rows["channel"] == "battery_kwh") & battery_rows["device_id"].isin(batteries)]
    rows = with_row_end(rows)
    out = []
    for t, kw in zip(instruction_start, target_kw, strict=True):
        t_end = t + step
        inside, share = overlap_share(rows, t, t_end)
        delivered = float((inside["value"] * share).sum(min_count=1)) if not inside.empty else np.nan
        reported = set(inside.loc[inside["value"].notna(), "device_id"])
        instructed = float(kw) * dt_h
        delivered = 0.0 if np.isnan(delivered) else delivered
        out.append({"interval_start": t, "instructed_kwh": round(instructed, 6), "delivered_kwh": round(delivered, 6),
                    "delivered_pct": round(100.0 * delivered / instructed, 2) if instructed > 0 else np.nan,
                    "apportioned": bool((share < 1 - 1e-9).any()),
                    "batteries_missing": len(set(batteries) - reported)})
    return pd.DataFrame(out)
