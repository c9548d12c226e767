"""Event performance: delivered against instructed, per instruction interval, from battery telemetry.

Delivered energy is the commanded batteries' discharge (+ battery_kwh). A telemetry interval
longer than the instruction's (Enphase reports batteries every 15 minutes) is spread evenly
over the instruction intervals it covers, and those intervals say so (`apportioned`).

Telemetry arrives after the event (pulls run every 15 minutes, vendors upload late), so a
figure computed too soon is mostly missing batteries. A battery that has not reported is
unknown, never zero: `delivered_kwh` is the energy measured from the batteries that reported
(NaN when none did), `batteries_missing` says how many are not in it, and `coverage` says how
much of the event the telemetry covers. The figure is provisional until coverage reaches a
threshold (or a give-up horizon passes), and only a final figure is judged.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _battery_rows(battery_rows: pd.DataFrame, batteries: list[str]) -> pd.DataFrame:
    rows = battery_rows[(battery_rows["channel"] == "battery_kwh") & battery_rows["device_id"].isin(batteries)]
    return with_row_end(rows)


def delivery(battery_rows: pd.DataFrame, instruction_start: pd.DatetimeIndex, target_kw: np.ndarray,
             interval_minutes: int, batteries: list[str]) -> pd.DataFrame:
    """Per instruction interval: instructed_kwh, delivered_kwh, delivered_pct, apportioned, batteries_reported,
    batteries_missing.

    delivered_kwh sums the batteries that reported in the interval; with none it is NaN (unknown),
    and delivered_pct with it. A battery that did not report adds nothing and is counted missing.
    """
    dt_h = interval_minutes / 60.0
    step = pd.Timedelta(minutes=interval_minutes)
    rows = _battery_rows(battery_rows, batteries)
    out = []
    for t, kw in zip(instruction_start, target_kw, strict=True):
        inside, share = overlap_share(rows, t, t + step)
        measured = inside["value"].notna()
        delivered = float((inside["value"] * share)[measured].sum()) if measured.any() else np.nan
        reported = set(inside.loc[measured, "device_id"])
        instructed = float(kw) * dt_h
        out.append({"interval_start": t, "instructed_kwh": round(instructed, 6),
                    "delivered_kwh": round(delivered, 6) if not np.isnan(delivered) else np.nan,
                    "delivered_pct": round(100.0 * delivered / instructed, 2)
                    if instructed > 0 and not np.isnan(delivered) else np.nan,
                    "apportioned": bool((share < 1 - 1e-9).any()),
                    "batteries_reported": len(reported & set(batteries)),
                    "batteries_missing": len(set(batteries) - reported)})
    return pd.DataFrame(out)


def coverage(battery_rows: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, batteries: list[str]) -> pd.DataFrame:
    """Per commanded battery: the share of [start, end) its measured battery_kwh rows cover, in %.

    Coverage counts seconds, so a 15-minute bucket covers three 5-minute intervals and a row
    whose value is null (quality missing) covers nothing. Overlapping rows never count twice.
    """
    rows = _battery_rows(battery_rows, batteries)
    rows = rows[rows["value"].notna() & (rows["interval_start"] < end) & (rows["row_end"] > start)]
    span_s = (end - start).total_seconds()
    out = []
    for battery in sorted(batteries):
        mine = rows[rows["device_id"] == battery].sort_values("interval_start")
        covered_s, reach = 0.0, start
        for lo, hi in zip(mine["interval_start"].clip(lower=start), mine["row_end"].clip(upper=end), strict=True):
            lo = max(lo, reach)
            if hi > lo:
                covered_s += (hi - lo).total_seconds()
                reach = hi
        out.append({"battery_id": battery, "covered_s": covered_s,
                    "coverage_pct": round(100.0 * covered_s / span_s, 2) if span_s > 0 else 100.0})
    return pd.DataFrame(out, columns=["battery_id", "covered_s", "coverage_pct"])


@dataclass(frozen=True)
class Verdict:
    """Whether an event's delivery figure can be judged yet."""

    status: str  # "provisional" or "final"
    coverage_pct: float  # share of the commanded battery-seconds the telemetry covers
    incomplete: bool  # final only because the give-up horizon passed, below the threshold
    missing: tuple[str, ...]  # batteries whose telemetry does not cover the whole event

    @property
    def final(self) -> bool:
        return self.status == "final"


def verdict(per_battery: pd.DataFrame, *, threshold_pct: float, now: pd.Timestamp, event_end: pd.Timestamp,
            give_up: pd.Timedelta) -> Verdict:
    """Final when coverage reaches `threshold_pct`, or (flagged incomplete) once `give_up` has passed
    since the event ended; provisional otherwise. No commanded battery means nothing to wait for."""
    if per_battery.empty:
        return Verdict("final", 100.0, False, ())
    pct = round(float(per_battery["coverage_pct"].mean()), 2)
    missing = tuple(per_battery.loc[per_battery["coverage_pct"] < 100.0 - 1e-9, "battery_id"])
    if pct >= threshold_pct:
        return Verdict("final", pct, False, missing)
    if now >= event_end + give_up:
        return Verdict("final", pct, True, missing)
    return Verdict("provisional", pct, False, missing)
